package bolt

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// The records an emergency round writes for every node — its deliveries,
// its events and its node record at each status flush — are encoded here
// by hand, without encoding/json's reflection and its second pass over
// each time's MarshalJSON output, which took 16 % of RecordEvents' CPU
// and 30 % of a status flush's (profiles of BenchmarkRecordEventsRound and
// BenchmarkFlushStatus). The bytes are exactly json.Marshal's, which older
// binaries, backups and restores read: TestEncodersMatchJSON and
// FuzzEncoders compare them, and TestEncodersKnowEveryField fails when a
// field is added to one of these structs that its encoder does not write.
// Rare parts (a self-test's result, a node's open faults) are handed to
// json.Marshal; so is a whole record whose time JSON cannot hold (a year
// outside 0–9999, an offset of 24 hours or more) or whose float is NaN or
// infinite, so that it fails as it did.

// encodeDelivery returns d as json.Marshal(d) does.
func encodeDelivery(d *loaxa.Delivery) ([]byte, error) {
	e := newJSONEnc()
	defer e.free()
	e.delivery(d)
	if e.bad {
		return json.Marshal(d)
	}
	return bytes.Clone(e.b), nil
}

// encodeEvent returns ev as json.Marshal(ev) does.
func encodeEvent(ev *loaxa.Event) ([]byte, error) {
	e := newJSONEnc()
	defer e.free()
	e.event(ev)
	if e.bad {
		return json.Marshal(ev)
	}
	return bytes.Clone(e.b), nil
}

// encodeNodeRecord returns r as json.Marshal(r) does.
func encodeNodeRecord(r nodeRecord) ([]byte, error) {
	if r.Node == nil {
		return json.Marshal(r)
	}
	e := newJSONEnc()
	defer e.free()
	e.nodeRecord(r)
	if e.bad {
		return json.Marshal(r)
	}
	return bytes.Clone(e.b), nil
}

// jsonEnc appends JSON to b. bad says it met a value it leaves to
// json.Marshal to refuse. Encoders write into a pooled buffer and return
// a copy of what they wrote, of its length (bbolt holds a Put's value
// until the commit, and the caches keep it).
type jsonEnc struct {
	b   []byte
	bad bool
}

var jsonEncs = sync.Pool{New: func() any { return &jsonEnc{b: make([]byte, 0, 2048)} }}

func newJSONEnc() *jsonEnc {
	e := jsonEncs.Get().(*jsonEnc)
	e.b, e.bad = e.b[:0], false
	return e
}

// free returns e to the pool, unless a large record grew it.
func (e *jsonEnc) free() {
	if cap(e.b) <= 64<<10 {
		jsonEncs.Put(e)
	}
}

func (e *jsonEnc) delivery(d *loaxa.Delivery) {
	e.b = append(e.b, `{"announcement":`...)
	e.str(d.Announcement)
	e.b = append(e.b, `,"occurrence":`...)
	e.str(d.Occurrence)
	e.b = append(e.b, `,"node":`...)
	e.str(d.Node)
	e.b = append(e.b, `,"start":`...)
	e.time(d.Start)
	e.b = append(e.b, `,"state":`...)
	e.str(string(d.State))
	e.strOmit(`,"reason":`, d.Reason)
	e.intOmit(`,"late_ms":`, d.LateMS)
	e.intOmit(`,"played_ms":`, d.PlayedMS)
	e.intOmit(`,"chime_skipped_ms":`, d.ChimeSkippedMS)
	e.boolOmit(`,"began":`, d.Began)
	e.intOmit(`,"message_ms":`, d.MessageMS)
	e.b = append(e.b, `,"content_ready":`...)
	e.b = strconv.AppendBool(e.b, d.ContentReady)
	e.timeOmit(`,"content_ready_at":`, d.ContentReadyAt)
	e.timeOmit(`,"received_at":`, d.ReceivedAt)
	e.strOmit(`,"epoch":`, d.Epoch)
	e.intOmit(`,"resends":`, int64(d.Resends))
	e.timeOmit(`,"resent_at":`, d.ResentAt)
	e.intOmit(`,"cancel_resends":`, int64(d.CancelResends))
	e.timeOmit(`,"cancel_resent_at":`, d.CancelResentAt)
	e.b = append(e.b, `,"updated_at":`...)
	e.time(d.UpdatedAt)
	e.strOmit(`,"priority":`, string(d.Priority))
	e.intOmit(`,"planned_ms":`, d.PlannedMS)
	e.intOmit(`,"frames_played":`, d.FramesPlayed)
	e.intOmit(`,"frames_lost":`, d.FramesLost)
	e.intOmit(`,"frames_late":`, d.FramesLate)
	e.strOmit(`,"held_by":`, d.HeldBy)
	e.boolOmit(`,"drill":`, d.Drill)
	e.boolOmit(`,"unplanned":`, d.Unplanned)
	e.boolOmit(`,"failed_to_sound":`, d.FailedToSound)
	e.b = append(e.b, '}')
}

func (e *jsonEnc) event(ev *loaxa.Event) {
	e.b = append(e.b, `{"node":`...)
	e.str(ev.Node)
	e.b = append(e.b, `,"area":`...)
	e.str(ev.Area)
	e.b = append(e.b, `,"epoch":`...)
	e.str(ev.Epoch)
	e.boolOmit(`,"salvaged":`, ev.Salvaged)
	e.b = append(e.b, ',')
	e.protocolEvent(&ev.Event)
	e.b = append(e.b, `,"received_at":`...)
	e.time(ev.ReceivedAt)
	e.strOmit(`,"refused":`, ev.Refused)
	e.b = append(e.b, '}')
}

// protocolEvent appends ev's fields, without braces: loaxa.Event embeds it.
func (e *jsonEnc) protocolEvent(ev *protocol.Event) {
	e.b = append(e.b, `"seq":`...)
	e.b = strconv.AppendUint(e.b, ev.Seq, 10)
	e.b = append(e.b, `,"type":`...)
	e.str(string(ev.Type))
	e.b = append(e.b, `,"at":`...)
	e.time(ev.At)
	e.strOmit(`,"occurrence":`, ev.Occurrence)
	e.strOmit(`,"announcement":`, ev.Announcement)
	e.strOmit(`,"content":`, ev.Content)
	e.strOmit(`,"reason":`, ev.Reason)
	e.intOmit(`,"late_ms":`, ev.LateMS)
	e.intOmit(`,"played_ms":`, ev.PlayedMS)
	e.boolOmit(`,"content_pending":`, ev.ContentPending)
	e.intOmit(`,"chime_skipped_ms":`, ev.ChimeSkippedMS)
	e.intOmit(`,"message_ms":`, ev.MessageMS)
	e.boolOmit(`,"drill":`, ev.Drill)
	e.intOmit(`,"frames_played":`, ev.FramesPlayed)
	e.intOmit(`,"frames_lost":`, ev.FramesLost)
	e.intOmit(`,"frames_late":`, ev.FramesLate)
	e.strOmit(`,"held_by":`, ev.HeldBy)
	if ev.Test != nil {
		e.b = append(e.b, `,"test":`...)
		e.marshal(ev.Test)
	}
	e.strOmit(`,"version":`, ev.Version)
}

func (e *jsonEnc) nodeRecord(r nodeRecord) {
	n := r.Node
	e.b = append(e.b, `{"id":`...)
	e.str(n.ID)
	e.b = append(e.b, `,"name":`...)
	e.str(n.Name)
	e.b = append(e.b, `,"area":`...)
	e.str(n.Area)
	e.b = append(e.b, `,"lat":`...)
	e.float(n.Lat)
	e.b = append(e.b, `,"lon":`...)
	e.float(n.Lon)
	e.b = append(e.b, `,"created_at":`...)
	e.time(n.CreatedAt)
	e.timeOmit(`,"enrolled_at":`, n.EnrolledAt)
	e.timeOmit(`,"moved_at":`, n.MovedAt)
	e.b = append(e.b, `,"credentials":`...)
	e.str(n.Credentials)
	e.timeOmit(`,"credentials_at":`, n.SecretSetAt)
	e.timeOmit(`,"revoked_at":`, n.RevokedAt)
	e.b = append(e.b, `,"settings":{`...)
	e.settings(&n.Settings)
	e.b = append(e.b, `},"status":{`...)
	e.status(&n.Status)
	e.b = append(e.b, `},"secret_hash":`...)
	if r.SecretHash == nil {
		e.b = append(e.b, "null"...)
	} else {
		e.b = append(e.b, '"')
		e.b = base64.StdEncoding.AppendEncode(e.b, r.SecretHash)
		e.b = append(e.b, '"')
	}
	e.strOmit(`,"broker_hash":`, r.BrokerHash)
	e.b = append(e.b, '}')
}

// settings appends s's fields, without braces. Each is omitted when
// empty, so the first written takes no comma.
func (e *jsonEnc) settings(s *loaxa.NodeSettings) {
	start := len(e.b)
	if s.Volume != nil {
		e.b = append(e.b, `,"volume":`...)
		e.b = strconv.AppendInt(e.b, int64(*s.Volume), 10)
	}
	e.boolOmit(`,"muted":`, s.Muted)
	e.strOmit(`,"amplifier_policy":`, s.AmplifierPolicy)
	e.dropFirstComma(start)
}

// status appends s's fields, without braces.
func (e *jsonEnc) status(s *loaxa.NodeStatus) {
	e.b = append(e.b, `"state":`...)
	e.str(s.State)
	e.timeOmit(`,"since":`, s.Since)
	e.timeOmit(`,"last_seen":`, s.LastSeen)
	e.b = append(e.b, `,"desired_version":`...)
	e.b = strconv.AppendUint(e.b, s.DesiredVersion, 10)
	e.b = append(e.b, `,"running_version":`...)
	e.b = strconv.AppendUint(e.b, s.RunningVersion, 10)
	e.strOmit(`,"agent":`, s.Agent)
	if p := s.Playing; p != nil {
		e.b = append(e.b, `,"playing":{"occurrence":`...)
		e.str(p.Occurrence)
		e.b = append(e.b, `,"content":`...)
		e.str(p.Content)
		e.b = append(e.b, `,"priority":`...)
		e.str(string(p.Priority))
		e.b = append(e.b, `,"since":`...)
		e.time(p.Since)
		e.boolOmit(`,"drill":`, p.Drill)
		e.b = append(e.b, '}')
	}
	e.b = append(e.b, `,"clock_offset_ms":`...)
	e.b = strconv.AppendInt(e.b, s.ClockOffsetMS, 10)
	e.intOmit(`,"clock_uncertainty_us":`, s.ClockUncertaintyUS)
	e.strsOmit(`,"content_missing":`, s.ContentMissing)
	e.intOmit(`,"cache_bytes":`, s.CacheBytes)
	e.intOmit(`,"cache_limit":`, s.CacheLimit)
	if s.Board != nil {
		e.b = append(e.b, `,"board":{`...)
		e.board(s.Board)
		e.b = append(e.b, '}')
	}
	e.b = append(e.b, `,"rejected":`...)
	e.b = strconv.AppendUint(e.b, s.Rejected, 10)
	e.b = append(e.b, `,"outbox":`...)
	e.b = strconv.AppendInt(e.b, int64(s.Outbox), 10)
	e.strsOmit(`,"keys":`, s.Keys)
	e.intOmit(`,"heartbeat_ms":`, s.HeartbeatMS)
	e.intOmit(`,"uptime_s":`, s.UptimeS)
	if s.DiskFreeBytes != nil {
		e.b = append(e.b, `,"disk_free_bytes":`...)
		e.b = strconv.AppendInt(e.b, *s.DiskFreeBytes, 10)
	}
	e.intOmit(`,"storage_damaged":`, int64(s.StorageDamaged))
	e.intOmit(`,"link_deaf":`, int64(s.LinkDeaf))
	e.strOmit(`,"no_sound_device":`, s.NoSoundDevice)
	e.strOmit(`,"storage_fault":`, s.StorageFault)
	if s.Volume != nil {
		e.b = append(e.b, `,"volume":`...)
		e.b = strconv.AppendInt(e.b, int64(*s.Volume), 10)
	}
	e.boolOmit(`,"muted":`, s.Muted)
	e.strOmit(`,"amplifier_policy":`, s.AmplifierPolicy)
	e.strsOmit(`,"areas_unheard":`, s.AreasUnheard)
	e.timeOmit(`,"last_play":`, s.LastPlay)
	if len(s.Faults) > 0 {
		e.b = append(e.b, `,"faults":`...)
		e.marshal(s.Faults)
	}
}

// board appends b's fields, without braces.
func (e *jsonEnc) board(b *protocol.Board) {
	e.b = append(e.b, `"amplifier":`...)
	e.b = strconv.AppendBool(e.b, b.Amplifier)
	e.boolPtr(`,"amplifier_command":`, b.AmplifierCommand)
	e.boolPtr(`,"amplifier_fault":`, b.AmplifierFault)
	e.strOmit(`,"speaker_line":`, string(b.SpeakerLine))
	e.floatPtr(`,"speaker_ohms":`, b.SpeakerOhms)
	e.boolPtr(`,"mains":`, b.Mains)
	e.floatPtr(`,"battery_volts":`, b.BatteryVolts)
	e.boolPtr(`,"charging":`, b.Charging)
	e.floatPtr(`,"temperature_c":`, b.TemperatureC)
	e.boolPtr(`,"door_open":`, b.DoorOpen)
	if b.RSSIDBm != nil {
		e.b = append(e.b, `,"rssi_dbm":`...)
		e.b = strconv.AppendInt(e.b, int64(*b.RSSIDBm), 10)
	}
	e.strOmit(`,"link":`, b.Link)
}

// dropFirstComma removes the comma written at start, if any: the first of
// a run of fields that may each be omitted.
func (e *jsonEnc) dropFirstComma(start int) {
	if len(e.b) > start && e.b[start] == ',' {
		e.b = append(e.b[:start], e.b[start+1:]...)
	}
}

func (e *jsonEnc) strOmit(key, s string) {
	if s != "" {
		e.b = append(e.b, key...)
		e.str(s)
	}
}

func (e *jsonEnc) intOmit(key string, v int64) {
	if v != 0 {
		e.b = append(e.b, key...)
		e.b = strconv.AppendInt(e.b, v, 10)
	}
}

func (e *jsonEnc) boolOmit(key string, v bool) {
	if v {
		e.b = append(e.b, key...)
		e.b = append(e.b, "true"...)
	}
}

func (e *jsonEnc) boolPtr(key string, v *bool) {
	if v != nil {
		e.b = append(e.b, key...)
		e.b = strconv.AppendBool(e.b, *v)
	}
}

func (e *jsonEnc) floatPtr(key string, v *float64) {
	if v != nil {
		e.b = append(e.b, key...)
		e.float(*v)
	}
}

// strsOmit appends a list of strings, omitted when empty (omitempty: nil
// and empty alike).
func (e *jsonEnc) strsOmit(key string, ss []string) {
	if len(ss) == 0 {
		return
	}
	e.b = append(e.b, key...)
	e.b = append(e.b, '[')
	for i, s := range ss {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.str(s)
	}
	e.b = append(e.b, ']')
}

func (e *jsonEnc) timeOmit(key string, t time.Time) {
	if !t.IsZero() {
		e.b = append(e.b, key...)
		e.time(t)
	}
}

// time appends t as time.Time.MarshalJSON does: RFC 3339 with
// nanoseconds, refusing a year JSON's form cannot hold or an offset of 24
// hours or more (left to json.Marshal, which fails on it).
func (e *jsonEnc) time(t time.Time) {
	e.b = append(e.b, '"')
	n0 := len(e.b)
	e.b = t.AppendFormat(e.b, time.RFC3339Nano)
	switch {
	case len(e.b) < n0+5 || e.b[n0+4] != '-':
		e.bad = true
	case e.b[len(e.b)-1] != 'Z':
		c := e.b[len(e.b)-len("Z07:00")]
		tz := e.b[len(e.b)-len("07:00"):]
		if '0' <= c && c <= '9' || 10*(tz[0]-'0')+tz[1]-'0' >= 24 {
			e.bad = true
		}
	}
	e.b = append(e.b, '"')
}

// float appends f as encoding/json does a float64.
func (e *jsonEnc) float(f float64) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		e.bad = true
		e.b = append(e.b, '0')
		return
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	e.b = strconv.AppendFloat(e.b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(e.b); n >= 4 && e.b[n-4] == 'e' && e.b[n-3] == '-' && e.b[n-2] == '0' {
			e.b[n-2] = e.b[n-1]
			e.b = e.b[:n-1]
		}
	}
}

// marshal appends v as json.Marshal encodes it, for the parts left to it.
func (e *jsonEnc) marshal(v any) {
	raw, err := json.Marshal(v)
	if err != nil {
		e.bad = true
		return
	}
	e.b = append(e.b, raw...)
}

const hexDigits = "0123456789abcdef"

// str appends s as encoding/json does a string: quoted, with <, > and &
// escaped for HTML, invalid UTF-8 replaced by U+FFFD, and U+2028 and
// U+2029 escaped.
func (e *jsonEnc) str(s string) {
	b := append(e.b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	e.b = append(b, '"')
}
