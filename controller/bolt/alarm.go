package bolt

import (
	"bytes"
	"cmp"
	"container/heap"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// DefaultAlarmLimit and MaxAlarmLimit bound FindAlarms, a listing for
// people; FindOpenAlarms has no bound.
const (
	DefaultAlarmLimit = 1000
	MaxAlarmLimit     = 10000
)

// AlarmService stores alarms and self-test runs.
type AlarmService struct {
	db *DB
}

var (
	_ loaxa.AlarmService    = (*AlarmService)(nil)
	_ loaxa.SelfTestService = (*AlarmService)(nil)
)

// NewAlarmService returns an AlarmService on db.
func NewAlarmService(db *DB) *AlarmService { return &AlarmService{db: db} }

// seqID formats a sequence number as an id with prefix; seqOf parses it
// back (0 for an id that is not one of prefix's).
func seqID(prefix string, seq uint64) string { return fmt.Sprintf("%s%06d", prefix, seq) }

func seqOf(prefix, id string) uint64 {
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok {
		return 0
	}
	n, err := strconv.ParseUint(rest, 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// alarmEndKey is the key in alarm_ends of alarm seq, which ends at end
// (zero: open): by end, the open ones last, so that the alarms open at
// some time after a moment are one range scan from it.
func alarmEndKey(end time.Time, seq uint64) []byte {
	k := u64(^uint64(0))
	if !end.IsZero() {
		k = msKey(end)
	}
	return append(k, u64(seq)...)
}

// indexAlarmEnds (schema 6 → 7) indexes the stored alarms by their end,
// so that a report reads the alarms of its range instead of every alarm
// ever raised.
func indexAlarmEnds(tx *bbolt.Tx, step *upgradeStep) error {
	ends := tx.Bucket(bucketAlarmEnds)
	return tx.Bucket(bucketAlarms).ForEach(func(k, v []byte) error {
		step.read()
		var a struct{ End time.Time }
		if err := json.Unmarshal(v, &a); err != nil {
			return fmt.Errorf("decode alarm %x: %w", k, err)
		}
		return ends.Put(alarmEndKey(a.End, binary.BigEndian.Uint64(k)), nil)
	})
}

// openAlarmEnd is the end part of the alarm_ends keys of the open alarms:
// they sort last, by sequence, so that the open alarms are read without
// reading the ended ones (a typhoon's 5,000 among a year's 100,000).
var openAlarmEnd = u64(^uint64(0))

// openAlarms calls fn with the key and stored value of each open alarm,
// oldest first, or newest first if newest, until fn returns false.
func openAlarms(tx *bbolt.Tx, newest bool, fn func(k, v []byte) (bool, error)) error {
	alarms := tx.Bucket(bucketAlarms)
	c := tx.Bucket(bucketAlarmEnds).Cursor()
	var k []byte
	if newest {
		k, _ = c.Last()
	} else {
		k, _ = c.Seek(openAlarmEnd)
	}
	for k != nil && bytes.HasPrefix(k, openAlarmEnd) {
		v := alarms.Get(k[8:])
		if v == nil {
			return fmt.Errorf("alarm end index %x: no alarm %d", k, binary.BigEndian.Uint64(k[8:]))
		}
		more, err := fn(k[8:], v)
		if err != nil || !more {
			return err
		}
		if newest {
			k, _ = c.Prev()
		} else {
			k, _ = c.Next()
		}
	}
	return nil
}

// alarmSpanKey is the key in alarm_spans of alarm seq, ended at end after
// it started at start: the class of its length (the bits of its length in
// milliseconds: class c lasted less than 2^c ms), then its end. An alarm
// open at some time before to and ended after it began before to, so it
// ended before to + 2^c: each class is one range scan bounded on both
// sides, and a report of January asked in December reads January's
// alarms, not eleven months of them. Open alarms have no span (they are
// the open tail of alarm_ends).
func alarmSpanKey(start, end time.Time, seq uint64) []byte {
	var class byte
	if ms := end.UnixMilli() - start.UnixMilli(); ms > 0 {
		class = byte(bits.Len64(uint64(ms)))
	}
	k := make([]byte, 0, 17)
	k = append(k, class)
	k = append(k, msKey(end)...)
	return append(k, u64(seq)...)
}

// putAlarmSpan indexes alarm seq in alarm_spans if it has ended.
func putAlarmSpan(tx *bbolt.Tx, start, end time.Time, seq uint64) error {
	if end.IsZero() {
		return nil
	}
	return tx.Bucket(bucketAlarmSpans).Put(alarmSpanKey(start, end, seq), nil)
}

// indexAlarmSpans (schema 7 → 8) indexes the ended alarms by the class
// of their length and their end (alarmSpanKey).
func indexAlarmSpans(tx *bbolt.Tx, step *upgradeStep) error {
	return tx.Bucket(bucketAlarms).ForEach(func(k, v []byte) error {
		step.read()
		var a struct{ Start, End time.Time }
		if err := json.Unmarshal(v, &a); err != nil {
			return fmt.Errorf("decode alarm %x: %w", k, err)
		}
		return putAlarmSpan(tx, a.Start, a.End, binary.BigEndian.Uint64(k))
	})
}

// alarmPlaceKey is the key in alarm_nodes or alarm_areas of alarm seq
// raised on place (a node or an area), open or ended: a place's open
// alarms and its ended ones are each one range, newest last, so that a
// cluster's history, a quiet commune's open alarms or an area's closed
// ones are read without the rest of a typhoon year's.
func alarmPlaceKey(place string, open bool, seq uint64) []byte {
	return append(alarmPlacePrefix(place, open), u64(seq)...)
}

// alarmPlacePrefix is the part of alarmPlaceKey before the sequence.
func alarmPlacePrefix(place string, open bool) []byte {
	state := byte('e')
	if open {
		state = 'o'
	}
	return append(prefix(place), state)
}

// alarmPlaces puts (or, if !put, deletes) alarm seq's keys in alarm_nodes
// (a bulletin's alarm has no node, so none) and alarm_areas.
func alarmPlaces(tx *bbolt.Tx, node, area string, open bool, seq uint64, put bool) error {
	keys := []struct {
		bucket []byte
		place  string
	}{{bucketAlarmNodes, node}, {bucketAlarmAreas, area}}
	if node == "" {
		keys = keys[1:]
	}
	for _, k := range keys {
		b, key := tx.Bucket(k.bucket), alarmPlaceKey(k.place, open, seq)
		var err error
		if put {
			err = b.Put(key, nil)
		} else {
			err = b.Delete(key)
		}
		if err != nil {
			return fmt.Errorf("index alarm %s in %s: %w", seqID("al", seq), k.bucket, err)
		}
	}
	return nil
}

// indexAlarmPlaces (schema 8 → 9) indexes the stored alarms by their node
// and by their area, open or ended (alarmPlaceKey). The keys are put in
// their order: bbolt splits the pages a transaction writes only at its
// commit, so a year's alarms put in the order they were raised (every
// node's in turn) moved one ever longer page in memory at each put (16 s
// for 105,000 alarms; BenchmarkOpenIndexesAlarmPlaces).
func indexAlarmPlaces(tx *bbolt.Tx, step *upgradeStep) error {
	var nodes, areas [][]byte
	err := tx.Bucket(bucketAlarms).ForEach(func(k, v []byte) error {
		step.read()
		var a struct {
			Node, Area string
			End        time.Time
		}
		if err := json.Unmarshal(v, &a); err != nil {
			return fmt.Errorf("decode alarm %x: %w", k, err)
		}
		seq := binary.BigEndian.Uint64(k)
		if a.Node != "" {
			nodes = append(nodes, alarmPlaceKey(a.Node, a.End.IsZero(), seq))
		}
		areas = append(areas, alarmPlaceKey(a.Area, a.End.IsZero(), seq))
		return nil
	})
	if err != nil {
		return err
	}
	for _, index := range []struct {
		bucket []byte
		keys   [][]byte
	}{{bucketAlarmNodes, nodes}, {bucketAlarmAreas, areas}} {
		slices.SortFunc(index.keys, bytes.Compare)
		b := tx.Bucket(index.bucket)
		for _, k := range index.keys {
			if err := b.Put(k, nil); err != nil {
				return fmt.Errorf("index alarms in %s: %w", index.bucket, err)
			}
		}
	}
	return nil
}

// placeCursor is one range of alarm_nodes or alarm_areas read newest
// first; k is its current key, nil once the range is read.
type placeCursor struct {
	c      *bbolt.Cursor
	prefix []byte
	k      []byte
}

func (p *placeCursor) keep(k []byte) {
	if k == nil || !bytes.HasPrefix(k, p.prefix) {
		p.k = nil
		return
	}
	p.k = k
}

// placeAlarmsNewest calls fn with the key and stored value of each alarm
// whose key in bucket (alarm_nodes or alarm_areas) begins with one of
// prefixes (alarmPlacePrefix), newest first, until fn returns false: the
// ranges are merged by sequence, so the alarms come in the order of a
// scan of the alarms bucket backwards, without the alarms of other places.
func placeAlarmsNewest(tx *bbolt.Tx, bucket []byte, prefixes [][]byte, fn func(k, v []byte) (bool, error)) error {
	alarms, b := tx.Bucket(bucketAlarms), tx.Bucket(bucket)
	var cs []*placeCursor
	for _, p := range prefixes {
		pc := &placeCursor{c: b.Cursor(), prefix: p}
		// The state byte ends the prefix and is never 0xff: one past it
		// is the first key after the range.
		after := bytes.Clone(p)
		after[len(after)-1]++
		if k, _ := pc.c.Seek(after); k == nil {
			pc.keep(first(pc.c.Last()))
		} else {
			pc.keep(first(pc.c.Prev()))
		}
		if pc.k != nil {
			cs = append(cs, pc)
		}
	}
	for _, pc := range cs {
		if len(pc.k) != len(pc.prefix)+8 {
			return fmt.Errorf("alarm place key %x in %s is not place, state, sequence", pc.k, bucket)
		}
	}
	// A heap of the ranges by their newest unread alarm.
	h := &placeHeap{cs: cs}
	heap.Init(h)
	for h.Len() > 0 {
		pc := h.cs[0]
		key := pc.k[len(pc.prefix):]
		v := alarms.Get(key)
		if v == nil {
			return fmt.Errorf("alarm place index %s %x: no alarm %d", bucket, pc.k, binary.BigEndian.Uint64(key))
		}
		more, err := fn(key, v)
		if err != nil || !more {
			return err
		}
		if pc.keep(first(pc.c.Prev())); pc.k == nil {
			heap.Pop(h)
			continue
		}
		if len(pc.k) != len(pc.prefix)+8 {
			return fmt.Errorf("alarm place key %x in %s is not place, state, sequence", pc.k, bucket)
		}
		heap.Fix(h, 0)
	}
	return nil
}

func first(k, _ []byte) []byte { return k }

// placeHeap orders place cursors newest alarm first.
type placeHeap struct{ cs []*placeCursor }

func (p *placeCursor) seq() uint64 { return binary.BigEndian.Uint64(p.k[len(p.prefix):]) }

func (h *placeHeap) Len() int           { return len(h.cs) }
func (h *placeHeap) Less(i, j int) bool { return h.cs[i].seq() > h.cs[j].seq() }
func (h *placeHeap) Swap(i, j int)      { h.cs[i], h.cs[j] = h.cs[j], h.cs[i] }
func (h *placeHeap) Push(x any)         { h.cs = append(h.cs, x.(*placeCursor)) }
func (h *placeHeap) Pop() any {
	last := h.cs[len(h.cs)-1]
	h.cs = h.cs[:len(h.cs)-1]
	return last
}

// CreateAlarm stores a, assigning its ID.
func (s *AlarmService) CreateAlarm(ctx context.Context, a *loaxa.Alarm) error {
	return s.CreateAlarms(ctx, []*loaxa.Alarm{a})
}

// CreateAlarms stores as in one transaction, assigning their IDs: a sweep
// that finds thousands of nodes offline at once pays one commit (one
// fsync), not one each.
func (s *AlarmService) CreateAlarms(ctx context.Context, as []*loaxa.Alarm) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	recs := make([]loaxa.Alarm, len(as))
	for i, a := range as {
		// A bulletin's alarm is of no node: it names its bulletin.
		if a.Kind == "" || a.Start.IsZero() || a.Node == "" && (a.Kind != loaxa.AlarmBulletinUnschedulable || a.Facts.Announcement == "") {
			return loaxa.Errorf(loaxa.EInvalid, "An alarm needs a kind, a node (or, of a bulletin, the bulletin) and a start (got %q, %q, %v).", a.Kind, a.Node, a.Start)
		}
		recs[i] = *a
		recs[i].Start = recs[i].Start.UTC()
	}
	err := s.db.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAlarms)
		for i := range recs {
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			recs[i].ID = seqID("al", seq)
			if err := putJSON(b, u64(seq), &recs[i]); err != nil {
				return err
			}
			if err := tx.Bucket(bucketAlarmEnds).Put(alarmEndKey(recs[i].End, seq), nil); err != nil {
				return err
			}
			if err := putAlarmSpan(tx, recs[i].Start, recs[i].End, seq); err != nil {
				return err
			}
			if err := alarmPlaces(tx, recs[i].Node, recs[i].Area, recs[i].End.IsZero(), seq, true); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if len(as) == 1 {
			return fmt.Errorf("create alarm %s of %s: %w", as[0].Kind, as[0].Node, err)
		}
		return fmt.Errorf("create %d alarms (%s of %s first): %w", len(as), as[0].Kind, as[0].Node, err)
	}
	for i, a := range as {
		*a = recs[i]
	}
	return nil
}

// updateAlarm applies fn to the stored alarm id.
func (s *AlarmService) updateAlarm(ctx context.Context, id string, fn func(*loaxa.Alarm)) (*loaxa.Alarm, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var out loaxa.Alarm
	err := s.db.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAlarms)
		key := u64(seqOf("al", id))
		ok, err := getJSON(b, key, &out)
		if err != nil {
			return err
		}
		if !ok || out.ID != id {
			return alarmNotFound(id)
		}
		start, end, node, area := out.Start, out.End, out.Node, out.Area
		fn(&out)
		if out.Node != node || out.Area != area || out.End.IsZero() != end.IsZero() {
			seq := seqOf("al", id)
			if err := alarmPlaces(tx, node, area, end.IsZero(), seq, false); err != nil {
				return err
			}
			if err := alarmPlaces(tx, out.Node, out.Area, out.End.IsZero(), seq, true); err != nil {
				return err
			}
		}
		if !out.End.Equal(end) || !out.Start.Equal(start) {
			ends, seq := tx.Bucket(bucketAlarmEnds), seqOf("al", id)
			if err := ends.Delete(alarmEndKey(end, seq)); err != nil {
				return err
			}
			if err := ends.Put(alarmEndKey(out.End, seq), nil); err != nil {
				return err
			}
			if !end.IsZero() {
				if err := tx.Bucket(bucketAlarmSpans).Delete(alarmSpanKey(start, end, seq)); err != nil {
					return err
				}
			}
			if err := putAlarmSpan(tx, out.Start, out.End, seq); err != nil {
				return err
			}
		}
		return putJSON(b, key, &out)
	})
	if err != nil {
		return nil, fmt.Errorf("update alarm %s: %w", id, err)
	}
	return &out, nil
}

func alarmNotFound(id string) error {
	return loaxa.Errorf(loaxa.ENotFound, "There is no alarm %q; list alarms with GET /api/v1/alarms.", id)
}

// EndAlarm ends alarm id at end, unless it has ended.
func (s *AlarmService) EndAlarm(ctx context.Context, id string, end time.Time) (*loaxa.Alarm, error) {
	return s.updateAlarm(ctx, id, func(a *loaxa.Alarm) {
		if a.End.IsZero() {
			a.End = end.UTC()
		}
	})
}

// AckAlarm records who acknowledged alarm id; a second acknowledgement
// keeps the first, whoever makes it: the operations room asks who took
// the alarm and when, and the second replaced the first technician's.
func (s *AlarmService) AckAlarm(ctx context.Context, id, by string, at time.Time) (*loaxa.Alarm, error) {
	return s.updateAlarm(ctx, id, func(a *loaxa.Alarm) {
		if a.AckBy == "" {
			a.AckBy, a.AckAt = by, at.UTC()
		}
	})
}

// UpdateAlarmFacts sets alarm id's detail and facts, unless it has ended.
func (s *AlarmService) UpdateAlarmFacts(ctx context.Context, id, detail string, facts loaxa.AlarmFacts) (*loaxa.Alarm, error) {
	return s.updateAlarm(ctx, id, func(a *loaxa.Alarm) {
		if a.End.IsZero() {
			a.Detail, a.Facts = detail, facts
		}
	})
}

// MoveAlarm files alarm id under area, with its index, unless it has
// ended.
func (s *AlarmService) MoveAlarm(ctx context.Context, id, area string) (*loaxa.Alarm, error) {
	return s.updateAlarm(ctx, id, func(a *loaxa.Alarm) {
		if a.End.IsZero() {
			a.Area = area
		}
	})
}

// FindAlarmByID returns the alarm or ENotFound.
func (s *AlarmService) FindAlarmByID(ctx context.Context, id string) (*loaxa.Alarm, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var a loaxa.Alarm
	err := s.db.view(func(tx *bbolt.Tx) error {
		ok, err := getJSON(tx.Bucket(bucketAlarms), u64(seqOf("al", id)), &a)
		if err != nil {
			return err
		}
		if !ok || a.ID != id {
			return alarmNotFound(id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &a, nil
}

// maxMergedAreas is the most areas whose alarms FindAlarms merges from
// alarm_areas: a commune's or a district's are a small part of a
// province's alarms and read at once, but merging the ranges of a whole
// province (200 communes) costs more than the scan, which finds its
// newest alarms among the first it reads (BENCHMARKS.md).
const maxMergedAreas = 128

// kindMark returns the bytes that every stored alarm of kind holds: its
// field as json.Marshal (putJSON) writes it. An alarm without them is of
// another kind, which is known without decoding it; one with them is
// decoded and its kind compared, since the bytes could also stand in a
// fact.
func kindMark(kind string) []byte {
	q, _ := json.Marshal(kind) // a string always encodes
	return append([]byte(`"kind":`), q...)
}

// FindAlarms returns alarms newest first.
func (s *AlarmService) FindAlarms(ctx context.Context, f loaxa.AlarmFilter) ([]*loaxa.Alarm, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultAlarmLimit
	}
	limit = min(limit, MaxAlarmLimit)
	kinds := f.Kinds
	if f.Kind != "" {
		kinds = append(slices.Clip(kinds), f.Kind)
	}
	var marks [][]byte
	for _, k := range kinds {
		marks = append(marks, kindMark(k))
	}
	// marked reports whether v may be of one of kinds.
	marked := func(v []byte) bool {
		for _, m := range marks {
			if bytes.Contains(v, m) {
				return true
			}
		}
		return marks == nil
	}
	var out []*loaxa.Alarm
	err := s.db.view(func(tx *bbolt.Tx) error {
		var within map[string]bool
		if f.Within != "" {
			var err error
			if within, err = subtreeSet(tx, f.Within); err != nil {
				return err
			}
		}
		// byRange: the alarms are read by the span index, whose open
		// ones (their start is not indexed) mostly started before the
		// range: their start is decoded first, not the whole alarm.
		byRange := (!f.From.IsZero() || !f.To.IsZero()) && f.Node == ""
		if byRange {
			var err error
			if byRange, err = newestBefore(tx, f.From, f.To); err != nil {
				return err
			}
		}
		take := func(_, v []byte) (bool, error) {
			if !marked(v) {
				return true, nil
			}
			if byRange {
				var sel struct{ Start time.Time }
				if err := json.Unmarshal(v, &sel); err != nil {
					return false, fmt.Errorf("decode alarm: %w", err)
				}
				if sel.Start.Before(f.From) || !f.To.IsZero() && !sel.Start.Before(f.To) {
					return true, nil
				}
			}
			var a loaxa.Alarm
			if err := json.Unmarshal(v, &a); err != nil {
				return false, fmt.Errorf("decode alarm: %w", err)
			}
			switch {
			case within != nil && !within[a.Area]:
			case f.Node != "" && a.Node != f.Node:
			case kinds != nil && !slices.Contains(kinds, a.Kind):
			case f.Open == "open" && !a.Open(), f.Open == "closed" && a.Open():
			case !f.From.IsZero() && a.Start.Before(f.From):
			case !f.To.IsZero() && !a.Start.Before(f.To):
			default:
				out = append(out, &a)
			}
			return len(out) < limit, nil
		}
		// A cluster's alarms, or an area's, from their own index, not
		// the province's: the open ones, the ended ones or both.
		var places []string
		bucket := bucketAlarmAreas
		switch {
		case f.Node != "":
			places, bucket = []string{f.Node}, bucketAlarmNodes
		case within != nil && len(within) <= maxMergedAreas:
			places = slices.Collect(maps.Keys(within))
		}
		if byRange {
			// Those that may have started in the range, by the span
			// index (and of the places, by theirs), newest first.
			seqs, err := alarmsStartedWithin(tx, f.From, f.To, f.Open, places)
			if err != nil {
				return err
			}
			return readAlarms(tx, seqs, take)
		}
		if places != nil {
			var prefixes [][]byte
			for _, p := range places {
				if f.Open != "closed" {
					prefixes = append(prefixes, alarmPlacePrefix(p, true))
				}
				if f.Open != "open" {
					prefixes = append(prefixes, alarmPlacePrefix(p, false))
				}
			}
			return placeAlarmsNewest(tx, bucket, prefixes, take)
		}
		if f.Open == "open" {
			// The open ones only, not the ended ones before them.
			return openAlarms(tx, true, take)
		}
		// The ended ones only: the open ones, the newest on a typhoon's
		// day (5,000 of them), are known by the open tail of alarm_ends
		// and passed over without decoding them.
		var open map[uint64]struct{}
		if f.Open == "closed" {
			open = make(map[uint64]struct{})
			err := openAlarms(tx, false, func(k, _ []byte) (bool, error) {
				open[binary.BigEndian.Uint64(k)] = struct{}{}
				return true, nil
			})
			if err != nil {
				return err
			}
		}
		c := tx.Bucket(bucketAlarms).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			if _, ok := open[binary.BigEndian.Uint64(k)]; ok {
				continue
			}
			if more, err := take(k, v); err != nil || !more {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find alarms: %w", err)
	}
	return out, nil
}

// newestBefore reports whether the newest alarm stored started outside
// [from, to) (either zero: unbounded), so that a list of that range is
// read by the span index. One that started within it keeps the scan (or
// a subtree's ranges): alarms are stored in about the order they start,
// so the first the scan reads are the range's, where the span index would
// read the keys of every alarm since from (a range up to now: 17 ms where
// the scan takes 4–7; BENCHMARKS.md).
func newestBefore(tx *bbolt.Tx, from, to time.Time) (bool, error) {
	k, v := tx.Bucket(bucketAlarms).Cursor().Last()
	if k == nil {
		return false, nil
	}
	var a struct{ Start time.Time }
	if err := json.Unmarshal(v, &a); err != nil {
		return false, fmt.Errorf("decode alarm %x: %w", k, err)
	}
	return a.Start.Before(from) || !to.IsZero() && !a.Start.Before(to), nil
}

// readAlarms calls fn with the key and stored value of each alarm of
// seqs in their order, until fn returns false.
func readAlarms(tx *bbolt.Tx, seqs []uint64, fn func(k, v []byte) (bool, error)) error {
	alarms := tx.Bucket(bucketAlarms)
	k := make([]byte, 8)
	for _, seq := range seqs {
		binary.BigEndian.PutUint64(k, seq)
		v := alarms.Get(k)
		if v == nil {
			return fmt.Errorf("alarm index: no alarm %d", seq)
		}
		if more, err := fn(k, v); err != nil || !more {
			return err
		}
	}
	return nil
}

// placeSeqs returns the sequences of the open (or ended) alarms of places
// in alarm_areas, as a set; nil if they are more than most (no bound if
// most < 0).
func placeSeqs(tx *bbolt.Tx, places []string, open bool, most int) (map[uint64]struct{}, error) {
	set := make(map[uint64]struct{})
	c := tx.Bucket(bucketAlarmAreas).Cursor()
	for _, p := range places {
		pre := alarmPlacePrefix(p, open)
		for k, _ := c.Seek(pre); k != nil && bytes.HasPrefix(k, pre); k, _ = c.Next() {
			if len(k) != len(pre)+8 {
				return nil, fmt.Errorf("alarm place key %x in %s is not place, state, sequence", k, bucketAlarmAreas)
			}
			if most >= 0 && len(set) == most {
				return nil, nil
			}
			set[binary.BigEndian.Uint64(k[len(pre):])] = struct{}{}
		}
	}
	return set, nil
}

// keysPerDecode is how many index keys FindAlarms and FindAlarmsOpenDuring
// read, at most, to spare decoding one alarm: a key read is some 0.1 µs,
// an alarm's decoding 3 µs and more. They read the ended alarms of a
// subtree from alarm_areas to keep of the spans a range finds only the
// subtree's (a commune's month: 500 keys for 35,000 spans), unless the
// subtree holds so many (every alarm of the store, 100,000 keys for a
// day's 1,500 spans) that decoding the spans costs less.
const keysPerDecode = 16

// keepPlaces keeps of seqs (ended alarms) those of places, if their
// alarm_areas keys are few enough to be worth reading (keysPerDecode).
func keepPlaces(tx *bbolt.Tx, seqs []uint64, places []string) ([]uint64, error) {
	if places == nil || len(seqs) == 0 {
		return seqs, nil
	}
	ended, err := placeSeqs(tx, places, false, keysPerDecode*len(seqs))
	if err != nil || ended == nil {
		return seqs, err
	}
	return slices.DeleteFunc(seqs, func(seq uint64) bool {
		_, ok := ended[seq]
		return !ok
	}), nil
}

// openSeqs returns the sequences of the open alarms of places (of every
// place if nil), oldest first.
func openSeqs(tx *bbolt.Tx, places []string) ([]uint64, error) {
	var seqs []uint64
	if places == nil {
		err := openAlarms(tx, false, func(k, _ []byte) (bool, error) {
			seqs = append(seqs, binary.BigEndian.Uint64(k))
			return true, nil
		})
		return seqs, err
	}
	set, err := placeSeqs(tx, places, true, -1)
	if err != nil {
		return nil, err
	}
	seqs = slices.Collect(maps.Keys(set))
	slices.Sort(seqs)
	return seqs, nil
}

// endedSpans calls fn with the sequence of each ended alarm whose end may
// lie in a range, by alarm_spans (alarmSpanKey): in each class of length,
// those that ended from from's millisecond (from the class's first if
// from is zero, or, for class 0, if !boundClass0) to before to's
// millisecond plus the class's longest length (to the class's last if to
// is zero). An alarm of class c that started before to ended before
// to + 2^c ms; one of a class above 0 that started at or after from
// ended after it, as did one of any class open at some time after from;
// one of class 0 (it ended at its start, or before by a skewed clock)
// may have ended before it started.
func endedSpans(tx *bbolt.Tx, from, to time.Time, boundClass0 bool, fn func(seq uint64)) error {
	c := tx.Bucket(bucketAlarmSpans).Cursor()
	var fromKey []byte
	if !from.IsZero() {
		fromKey = msKey(from)
	}
	var toKey uint64
	if !to.IsZero() {
		toKey = binary.BigEndian.Uint64(msKey(to))
	}
	for class := range 65 {
		limit := toKey + 1<<class
		bounded := !to.IsZero() && class < 64 && limit > toKey
		seek := []byte{byte(class)}
		if fromKey != nil && (class > 0 || boundClass0) {
			seek = append(seek, fromKey...)
		}
		for k, _ := c.Seek(seek); k != nil && k[0] == byte(class); k, _ = c.Next() {
			if len(k) != 17 {
				return fmt.Errorf("alarm span key %x is not class, end, sequence", k)
			}
			if bounded && binary.BigEndian.Uint64(k[1:9]) >= limit {
				break
			}
			fn(binary.BigEndian.Uint64(k[9:]))
		}
	}
	return nil
}

// alarmsStartedWithin returns, newest first, the sequences of the alarms
// that may have started in [from, to) (either zero: unbounded), open
// ("open"), ended ("closed") or both (""), of places if not nil: the open
// ones (their start is not indexed) and the ended ones that endedSpans
// finds. A list of a day, or of a month long past, reads those instead of
// every alarm stored after them; the sequences alone are read, a few
// bytes each, and the alarms only in their order until the list is full.
func alarmsStartedWithin(tx *bbolt.Tx, from, to time.Time, state string, places []string) ([]uint64, error) {
	var seqs []uint64
	if state != "closed" {
		open, err := openSeqs(tx, places)
		if err != nil {
			return nil, err
		}
		seqs = open
	}
	if state != "open" {
		var ended []uint64
		err := endedSpans(tx, from, to, false, func(seq uint64) { ended = append(ended, seq) })
		if err != nil {
			return nil, err
		}
		if ended, err = keepPlaces(tx, ended, places); err != nil {
			return nil, err
		}
		seqs = append(seqs, ended...)
	}
	slices.SortFunc(seqs, func(a, b uint64) int { return cmp.Compare(b, a) })
	return seqs, nil
}

// FindAlarmsOpenDuring returns every alarm of one of kinds (any kind if
// none) on a node within area's subtree (every area if "") that was open
// at some time in [from, to), oldest first, however many there are. It
// reads the open alarms (alarm_ends, or of a subtree of up to
// maxMergedAreas areas, alarm_areas) and the ended ones that ended after
// from and not long after to for their length (alarm_spans), of such a
// subtree only those alarm_areas lists, not every alarm stored: an
// alert's report of the last minutes reads a few, a report of January
// asked in December reads January's, and a commune's month its own.
func (s *AlarmService) FindAlarmsOpenDuring(ctx context.Context, area string, kinds []string, from, to time.Time) ([]*loaxa.Alarm, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var out []*loaxa.Alarm
	err := s.db.view(func(tx *bbolt.Tx) error {
		var within map[string]bool
		if area != "" {
			var err error
			if within, err = subtreeSet(tx, area); err != nil {
				return err
			}
		}
		take := func(_, v []byte) (bool, error) {
			// The fields that select first, the whole alarm only for the
			// few selected.
			var sel struct {
				Kind, Area string
				Start, End time.Time
			}
			if err := json.Unmarshal(v, &sel); err != nil {
				return false, fmt.Errorf("decode alarm: %w", err)
			}
			switch {
			case within != nil && !within[sel.Area]:
			case len(kinds) > 0 && !slices.Contains(kinds, sel.Kind):
			case !sel.Start.Before(to), !sel.End.IsZero() && !sel.End.After(from):
			default:
				var a loaxa.Alarm
				if err := json.Unmarshal(v, &a); err != nil {
					return false, fmt.Errorf("decode alarm: %w", err)
				}
				out = append(out, &a)
			}
			return true, nil
		}
		// A commune's or a district's alarms by their index; a wider
		// subtree's by the scan of the ranges, as FindAlarms does.
		var places []string
		if within != nil && len(within) <= maxMergedAreas {
			places = slices.Collect(maps.Keys(within))
		}
		seqs, err := openSeqs(tx, places)
		if err != nil {
			return err
		}
		// The ended ones, class by class of their length: those that
		// ended from from (the ones that ended in from's millisecond but
		// before it are read too, and left by the exact test) to to plus
		// the class's longest length.
		var ended []uint64
		if err := endedSpans(tx, from, to, true, func(seq uint64) { ended = append(ended, seq) }); err != nil {
			return err
		}
		if ended, err = keepPlaces(tx, ended, places); err != nil {
			return err
		}
		return readAlarms(tx, append(seqs, ended...), take)
	})
	if err != nil {
		return nil, fmt.Errorf("find alarms open from %s to %s: %w", from.Format(time.RFC3339), to.Format(time.RFC3339), err)
	}
	// In the order they were raised, not the order they ended.
	slices.SortFunc(out, func(a, b *loaxa.Alarm) int { return cmp.Compare(seqOf("al", a.ID), seqOf("al", b.ID)) })
	return out, nil
}

// FindOpenAlarms returns every open alarm, oldest first, however many
// there are.
func (s *AlarmService) FindOpenAlarms(ctx context.Context) ([]*loaxa.Alarm, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var out []*loaxa.Alarm
	err := s.db.view(func(tx *bbolt.Tx) error {
		return openAlarms(tx, false, func(_, v []byte) (bool, error) {
			var a loaxa.Alarm
			if err := json.Unmarshal(v, &a); err != nil {
				return false, fmt.Errorf("decode alarm: %w", err)
			}
			out = append(out, &a)
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("find open alarms: %w", err)
	}
	return out, nil
}

// CreateSelfTest stores a new run, assigning its ID.
func (s *AlarmService) CreateSelfTest(ctx context.Context, t *loaxa.SelfTest) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	rec := *t
	if rec.Results == nil {
		rec.Results = map[string]*protocol.TestResult{}
	}
	err := s.db.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketSelfTests)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		rec.ID = seqID("st", seq)
		return putJSON(b, u64(seq), &rec)
	})
	if err != nil {
		return fmt.Errorf("create self-test: %w", err)
	}
	*t = rec
	return nil
}

func selfTestNotFound(id string) error {
	return loaxa.Errorf(loaxa.ENotFound, "There is no self-test %q; list them with GET /api/v1/selftests.", id)
}

// RecordTestResult adds node's result to run id. Of several results for
// one node, the first is kept: a resent event does not change a report.
func (s *AlarmService) RecordTestResult(ctx context.Context, id, node string, r *protocol.TestResult) error {
	if err := checkCtx(ctx); err != nil {
		return err
	}
	err := s.db.groupUpdate(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketSelfTests)
		key := u64(seqOf("st", id))
		var t loaxa.SelfTest
		ok, err := getJSON(b, key, &t)
		if err != nil {
			return err
		}
		if !ok || t.ID != id {
			return selfTestNotFound(id)
		}
		tested := false
		for _, n := range t.Nodes {
			tested = tested || n == node
		}
		if !tested {
			return loaxa.Errorf(loaxa.ENotFound, "Self-test %s does not test node %q.", id, node)
		}
		if t.Results == nil {
			t.Results = map[string]*protocol.TestResult{}
		}
		if t.Results[node] != nil {
			return nil
		}
		t.Results[node] = r
		return putJSON(b, key, &t)
	})
	if err != nil {
		return fmt.Errorf("record self-test result of %s: %w", node, err)
	}
	return nil
}

// FindSelfTestByID returns the run or ENotFound.
func (s *AlarmService) FindSelfTestByID(ctx context.Context, id string) (*loaxa.SelfTest, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	var t loaxa.SelfTest
	err := s.db.view(func(tx *bbolt.Tx) error {
		ok, err := getJSON(tx.Bucket(bucketSelfTests), u64(seqOf("st", id)), &t)
		if err != nil {
			return err
		}
		if !ok || t.ID != id {
			return selfTestNotFound(id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// FindSelfTests returns the latest runs, newest first.
func (s *AlarmService) FindSelfTests(ctx context.Context, limit int) ([]*loaxa.SelfTest, error) {
	if err := checkCtx(ctx); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > MaxAlarmLimit {
		limit = 100
	}
	var out []*loaxa.SelfTest
	err := s.db.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketSelfTests).Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			var t loaxa.SelfTest
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("decode self-test: %w", err)
			}
			out = append(out, &t)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find self-tests: %w", err)
	}
	return out, nil
}
