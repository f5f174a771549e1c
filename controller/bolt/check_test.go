package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// CheckFile opens the store file at path read-only and checks bbolt's page
// structure and the invariants this package keeps: every reference points to
// something that exists, every index matches its primary bucket exactly, and
// each outbox's last sequence is the highest stored and has no gaps below
// it. Tests call it on cleanup (see MustOpenDB in the external tests).
func CheckFile(path string) error {
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: DefaultOpenTimeout})
	if err != nil {
		return fmt.Errorf("open %s read-only: %w", path, err)
	}
	defer b.Close()
	return b.View(func(tx *bbolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		c := checker{tx: tx}
		c.areas()
		c.nodes()
		c.announcements()
		c.deliveries()
		c.events()
		c.users()
		c.desired()
		c.liveCalls()
		c.alarms()
		c.rollouts()
		c.standing()
		return errors.Join(append(errs, c.errs...)...)
	})
}

type checker struct {
	tx   *bbolt.Tx
	errs []error
}

func (c *checker) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf(format, args...))
}

func (c *checker) has(bucket []byte, key string) bool {
	return c.tx.Bucket(bucket).Get([]byte(key)) != nil
}

// each decodes every value of bucket into a fresh T.
func each[T any](c *checker, bucket []byte, fn func(k []byte, v *T)) {
	c.tx.Bucket(bucket).ForEach(func(k, data []byte) error {
		v := new(T)
		if err := json.Unmarshal(data, v); err != nil {
			c.fail("%s/%q: %v", bucket, k, err)
			return nil
		}
		fn(k, v)
		return nil
	})
}

// sameKeys reports keys present in one bucket's derived set and not the
// other's.
func (c *checker) sameKeys(what string, want map[string]string, bucket []byte) {
	got := make(map[string]string)
	c.tx.Bucket(bucket).ForEach(func(k, v []byte) error {
		got[string(k)] = string(v)
		return nil
	})
	for k, v := range want {
		if g, ok := got[k]; !ok {
			c.fail("%s: %q missing", what, k)
		} else if g != v {
			c.fail("%s: %q is %q, want %q", what, k, g, v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			c.fail("%s: stray entry %q", what, k)
		}
	}
}

func (c *checker) areas() {
	want := make(map[string]string)
	each(c, bucketAreas, func(k []byte, a *loaxa.Area) {
		if string(k) != a.ID {
			c.fail("area key %q holds %q", k, a.ID)
		}
		if a.Parent != "" && !c.has(bucketAreas, a.Parent) {
			c.fail("area %s: parent %s missing", a.ID, a.Parent)
		}
		want[a.ID] = a.Parent
	})
	c.sameKeys("area_parents", want, bucketAreaParents)
}

func (c *checker) nodes() {
	want := make(map[string]string)
	c.tx.Bucket(bucketNodes).ForEach(func(k, v []byte) error {
		n, err := decodeNode(k, v)
		if err != nil {
			c.fail("%v", err)
			return nil
		}
		if string(k) != n.ID {
			c.fail("node key %q holds %q", k, n.ID)
		}
		if !c.has(bucketAreas, n.Area) {
			c.fail("node %s: area %s missing", n.ID, n.Area)
		}
		switch n.Credentials {
		case loaxa.CredentialsActive:
			if len(n.SecretHash) != 32 {
				c.fail("node %s: secret hash has %d bytes", n.ID, len(n.SecretHash))
			}
		case loaxa.CredentialsPending, loaxa.CredentialsRevoked:
			if len(n.SecretHash) != 0 || n.BrokerHash != "" {
				c.fail("node %s: %s credentials with a secret hash", n.ID, n.Credentials)
			}
		default:
			c.fail("node %s: credentials %q", n.ID, n.Credentials)
		}
		want[string(join(n.Area, n.ID))] = ""
		return nil
	})
	c.sameKeys("node_areas", want, bucketNodeAreas)
	each(c, bucketEnrolments, func(k []byte, e *loaxa.Enrolment) {
		if !c.has(bucketNodes, e.Node) {
			c.fail("enrolment for missing node %s", e.Node)
		}
	})
}

func (c *checker) standing() {
	each(c, bucketStanding, func(k []byte, s *loaxa.StandingContent) {
		if string(k) != s.Content {
			c.fail("standing key %q holds %q", k, s.Content)
		}
		if !c.has(bucketContents, s.Content) {
			c.fail("standing content %s missing", s.Content)
		}
		if len(s.Areas) == 0 {
			c.fail("standing content %s kept in no area", s.Content)
		}
		for _, a := range s.Areas {
			if !c.has(bucketAreas, a) {
				c.fail("standing content %s: area %s missing", s.Content, a)
			}
		}
	})
}

func (c *checker) announcements() {
	each(c, bucketAnnouncements, func(k []byte, a *loaxa.Announcement) {
		if string(k) != a.ID {
			c.fail("announcement key %q holds %q", k, a.ID)
		}
		if !c.has(bucketContents, a.ContentID) {
			c.fail("announcement %s: content %s missing", a.ID, a.ContentID)
		}
	})
}

func (c *checker) deliveries() {
	want := make(map[string]string)
	open := make(map[string]string)
	each(c, bucketDeliveries, func(k []byte, d *loaxa.Delivery) {
		key := deliveryKey(d.Announcement, d.Occurrence, d.Node)
		if !bytes.Equal(k, key) {
			c.fail("delivery key %q holds %q", k, key)
		}
		if !c.has(bucketNodes, d.Node) {
			c.fail("delivery %s/%s: node missing", d.Occurrence, d.Node)
		}
		if !occurrenceOf(d.Announcement, d.Occurrence) {
			c.fail("delivery %s: occurrence not of announcement %s", d.Occurrence, d.Announcement)
		}
		nkey := string(nodeDeliveryKey(d.Announcement, d.Occurrence, d.Node))
		want[nkey] = string(key)
		if openDelivery(d) {
			end := d.Start.Add(time.Duration(d.PlannedMS) * time.Millisecond)
			open[nkey] = string(u64(uint64(end.UnixMilli())))
		}
	})
	c.sameKeys("node_deliveries", want, bucketNodeDeliveries)
	c.sameKeys("open_deliveries", open, bucketOpenDeliveries)
}

func (c *checker) events() {
	type outbox struct{ node, epoch string }
	var (
		want  = make(map[string]string)
		count = make(map[outbox]uint64)
		high  = make(map[outbox]uint64)
		// salvaged: the outbox holds salvaged events, which may start
		// past events this controller never held (RecordEvents).
		salvaged = make(map[outbox]bool)
	)
	each(c, bucketEvents, func(k []byte, e *loaxa.Event) {
		key := eventKey(e.At, e.Node, e.Epoch, e.Seq)
		if !bytes.Equal(k, key) {
			c.fail("event key %q holds %q", k, key)
		}
		n, err := getNode(c.tx, e.Node)
		if err != nil {
			c.fail("event %s/%s/%d: %v", e.Node, e.Epoch, e.Seq, err)
		} else if n.Area != e.Area {
			c.fail("event %s/%s/%d: area %s, node is in %s", e.Node, e.Epoch, e.Seq, e.Area, n.Area)
		}
		o := outbox{e.Node, e.Epoch}
		count[o]++
		high[o] = max(high[o], e.Seq)
		salvaged[o] = salvaged[o] || e.Salvaged
		want[string(nodeEventKey(e.At, e.Node, e.Epoch, e.Seq))] = string(key)
	})
	c.sameKeys("node_events", want, bucketNodeEvents)
	// A purge (Purge) takes an outbox's oldest events: what is left is
	// at most the outbox's count and never past its last seq.
	purged := c.tx.Bucket(bucketMeta).Get(keyPurgedBefore) != nil
	seen := make(map[outbox]bool)
	c.tx.Bucket(bucketEventSeqs).ForEach(func(k, v []byte) error {
		node, epoch, _ := strings.Cut(string(k), "\x00")
		o := outbox{node, epoch}
		seen[o] = true
		if len(v) != 8 {
			c.fail("event seq %q: %d bytes", k, len(v))
			return nil
		}
		last := binary.BigEndian.Uint64(v)
		if purged && count[o] <= last && high[o] <= last {
			return nil
		}
		if high[o] != last || count[o] > last || count[o] < last && !salvaged[o] {
			c.fail("outbox %s/%s: last seq %d, but %d events stored with highest %d", node, epoch, last, count[o], high[o])
		}
		return nil
	})
	for o := range count {
		if !seen[o] {
			c.fail("outbox %s/%s: events stored without a last seq", o.node, o.epoch)
		}
	}
}

func (c *checker) users() {
	c.tx.Bucket(bucketUsers).ForEach(func(k, v []byte) error {
		u, err := decodeUser(k, v)
		if err != nil {
			c.fail("%v", err)
			return nil
		}
		if u.Area != "" && !c.has(bucketAreas, u.Area) {
			c.fail("user %s: area %s missing", u.Username, u.Area)
		}
		if len(u.PasswordHash) == 0 {
			c.fail("user %s: no password hash", u.Username)
		}
		return nil
	})
	each(c, bucketTokens, func(k []byte, s *session) {
		if !c.has(bucketUsers, s.Username) {
			c.fail("session of missing user %s", s.Username)
		}
	})
}

func (c *checker) desired() {
	each(c, bucketDesired, func(k []byte, d *loaxa.Desired) {
		if !c.has(bucketNodes, string(k)) || d.Node != string(k) {
			c.fail("desired state %q for node %q: node missing or key mismatch", k, d.Node)
		}
	})
}

func (c *checker) liveCalls() {
	want := make(map[string]string)
	onAir := make(map[string]string)
	each(c, bucketLiveCalls, func(k []byte, l *loaxa.LiveCall) {
		if key := liveCallKey(l); !bytes.Equal(k, key) {
			c.fail("live call key %q holds %q", k, key)
		}
		want[l.ID] = string(k)
		if l.Active() {
			onAir[l.ID] = string(k)
		}
	})
	c.sameKeys("live_call_ids", want, bucketLiveCallIDs)
	c.sameKeys("live_calls_on_air", onAir, bucketLiveCallsOnAir)
}

func (c *checker) alarms() {
	ends, spans := make(map[string]string), make(map[string]string)
	nodes, areas := make(map[string]string), make(map[string]string)
	each(c, bucketAlarms, func(k []byte, a *loaxa.Alarm) {
		if seq := seqOf("al", a.ID); !bytes.Equal(k, u64(seq)) {
			c.fail("alarm key %x holds %s", k, a.ID)
		}
		seq := binary.BigEndian.Uint64(k)
		ends[string(alarmEndKey(a.End, seq))] = ""
		if !a.End.IsZero() {
			spans[string(alarmSpanKey(a.Start, a.End, seq))] = ""
		}
		if a.Node != "" {
			nodes[string(alarmPlaceKey(a.Node, a.Open(), seq))] = ""
		}
		areas[string(alarmPlaceKey(a.Area, a.Open(), seq))] = ""
	})
	c.sameKeys("alarm_ends", ends, bucketAlarmEnds)
	c.sameKeys("alarm_spans", spans, bucketAlarmSpans)
	c.sameKeys("alarm_nodes", nodes, bucketAlarmNodes)
	c.sameKeys("alarm_areas", areas, bucketAlarmAreas)
}

// CheckAlarmIndexes checks, on an open db, that alarm_ends, alarm_spans,
// alarm_nodes and alarm_areas hold exactly the keys of the stored alarms.
func CheckAlarmIndexes(db *DB) error {
	return db.view(func(tx *bbolt.Tx) error {
		c := checker{tx: tx}
		c.alarms()
		return errors.Join(c.errs...)
	})
}

func (c *checker) rollouts() {
	running := make(map[string]string)
	if c.tx.Bucket(bucketRollouts) != nil {
		each(c, bucketRollouts, func(k []byte, r *loaxa.Rollout) {
			if r.Running() {
				running[string(k)] = ""
			}
		})
	}
	c.sameKeys("rollouts_running", running, bucketRolloutsRunning)
}

// TestCheckFile makes sure the cleanup check would catch a broken store:
// each case breaks one invariant behind the services' back.
func TestCheckFile(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(tx *bbolt.Tx) error
		want    string
	}{
		{"intact", func(*bbolt.Tx) error { return nil }, ""},
		{"node in a missing area", func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketAreas).Delete([]byte("hp.ll"))
		}, "area hp.ll missing"},
		{"stray node index entry", func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketNodeAreas).Put(join("hp", "n9"), nil)
		}, "node_areas: stray entry"},
		{"delivery of a missing node", func(tx *bbolt.Tx) error {
			d := loaxa.Delivery{Announcement: "a000001", Occurrence: "a000001@x", Node: "n9"}
			return putDelivery(tx, &d)
		}, "node missing"},
		{"last seq ahead of the events", func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketEventSeqs).Put(eventSeqKey("n1", "e1"), u64(3))
		}, "last seq 3, but 2 events stored"},
		{"live call without its id index", func(tx *bbolt.Tx) error {
			l := loaxa.LiveCall{ID: "live-x", Started: time.Unix(1e9, 0)}
			return putJSON(tx.Bucket(bucketLiveCalls), liveCallKey(&l), &l)
		}, "live_call_ids: \"live-x\" missing"},
		{"event index missing", func(tx *bbolt.Tx) error {
			c := tx.Bucket(bucketNodeEvents).Cursor()
			k, _ := c.First()
			return tx.Bucket(bucketNodeEvents).Delete(k)
		}, "node_events"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "loaxa.db")
			db := NewDB(path)
			db.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			if err := db.Open(); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			for _, a := range []*loaxa.Area{{ID: "hp", Name: "hp"}, {ID: "hp.ll", Name: "ll", Parent: "hp"}} {
				if err := NewAreaService(db).CreateArea(ctx, a); err != nil {
					t.Fatal(err)
				}
			}
			if err := NewNodeService(db).CreateNode(ctx, &loaxa.Node{ID: "n1", Area: "hp.ll", SecretHash: loaxa.HashSecret("s")}); err != nil {
				t.Fatal(err)
			}
			b := protocol.EventBatch{Epoch: "e1", Events: []protocol.Event{
				{Seq: 1, Type: protocol.EventReceived, At: time.Now(), Occurrence: loaxa.OccurrenceID("a000001", time.Now())},
				{Seq: 2, Type: protocol.EventReceived, At: time.Now()},
			}}
			if _, _, err := NewEventService(db).RecordEvents(ctx, "n1", b, time.Now()); err != nil {
				t.Fatal(err)
			}
			if err := db.update(tt.corrupt); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			err := CheckFile(path)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("intact store reported: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("check returned %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}
