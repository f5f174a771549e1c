package bolt

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"loaxa.vn/controller/loaxa"
)

// decodeDelivery decodes a stored delivery into d (which must be zero) as
// json.Unmarshal does. The records encodeDelivery writes (no spaces, no
// escapes, known keys) are read by hand: decoding the delivery each event
// batch moves was 17 % of RecordEvents through json.Unmarshal's
// reflection and validity scan (BenchmarkRecordEventsRound), and the
// report decodes every delivery the delivery cache lacks
// (BenchmarkReportDuringRoundICT). Anything else (an escape, a space,
// null, a number that is not a plain integer, a key it does not know,
// invalid UTF-8) goes to json.Unmarshal whole, so that the result, or the
// error, is json.Unmarshal's. FuzzDecodeDelivery compares the two.
func decodeDelivery(v []byte, d *loaxa.Delivery) error {
	if decodeDeliveryFast(v, d) {
		return nil
	}
	*d = loaxa.Delivery{}
	return json.Unmarshal(v, d)
}

// decodeDeliveryFast decodes v into d if v is a record as encodeDelivery
// writes it, and reports whether it did; when it did not, d holds part of
// the record.
func decodeDeliveryFast(v []byte, d *loaxa.Delivery) bool {
	p := jsonDec{b: v}
	if !p.byte('{') {
		return false
	}
	if p.byte('}') {
		return p.i == len(p.b)
	}
	for {
		key, ok := p.key()
		if !ok {
			return false
		}
		switch string(key) { // compared without a copy
		case "announcement":
			ok = p.str(&d.Announcement)
		case "occurrence":
			ok = p.str(&d.Occurrence)
		case "node":
			ok = p.str(&d.Node)
		case "start":
			ok = p.time(&d.Start)
		case "state":
			ok = p.str((*string)(&d.State))
		case "reason":
			ok = p.str(&d.Reason)
		case "late_ms":
			ok = p.int64(&d.LateMS)
		case "played_ms":
			ok = p.int64(&d.PlayedMS)
		case "chime_skipped_ms":
			ok = p.int64(&d.ChimeSkippedMS)
		case "began":
			ok = p.bool(&d.Began)
		case "message_ms":
			ok = p.int64(&d.MessageMS)
		case "content_ready":
			ok = p.bool(&d.ContentReady)
		case "content_ready_at":
			ok = p.time(&d.ContentReadyAt)
		case "received_at":
			ok = p.time(&d.ReceivedAt)
		case "epoch":
			ok = p.str(&d.Epoch)
		case "resends":
			ok = p.int(&d.Resends)
		case "resent_at":
			ok = p.time(&d.ResentAt)
		case "cancel_resends":
			ok = p.int(&d.CancelResends)
		case "cancel_resent_at":
			ok = p.time(&d.CancelResentAt)
		case "updated_at":
			ok = p.time(&d.UpdatedAt)
		case "priority":
			ok = p.str((*string)(&d.Priority))
		case "planned_ms":
			ok = p.int64(&d.PlannedMS)
		case "drill":
			ok = p.bool(&d.Drill)
		case "unplanned":
			ok = p.bool(&d.Unplanned)
		case "frames_played":
			ok = p.int64(&d.FramesPlayed)
		case "frames_lost":
			ok = p.int64(&d.FramesLost)
		case "frames_late":
			ok = p.int64(&d.FramesLate)
		case "held_by":
			ok = p.str(&d.HeldBy)
		case "failed_to_sound":
			ok = p.bool(&d.FailedToSound)
		default:
			// Another spelling of a key (json.Unmarshal matches keys
			// without regard to case), or one Delivery does not have.
			return false
		}
		if !ok {
			return false
		}
		if p.byte(',') {
			continue
		}
		return p.byte('}') && p.i == len(p.b)
	}
}

// jsonDec reads the JSON encode.go writes: b from i on.
type jsonDec struct {
	b []byte
	i int
}

// byte consumes c if it is next.
func (p *jsonDec) byte(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// raw consumes a string without escapes or control characters and
// returns its bytes, quotes left out; it does not check UTF-8.
func (p *jsonDec) raw() ([]byte, bool) {
	if !p.byte('"') {
		return nil, false
	}
	start := p.i
	for ; p.i < len(p.b); p.i++ {
		switch c := p.b[p.i]; {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

// key consumes a key and its colon.
func (p *jsonDec) key() ([]byte, bool) {
	k, ok := p.raw()
	if !ok || !p.byte(':') {
		return nil, false
	}
	return k, true
}

// str consumes a string value (valid UTF-8: json.Unmarshal replaces what
// is not).
func (p *jsonDec) str(s *string) bool {
	b, ok := p.raw()
	if !ok || !utf8.Valid(b) {
		return false
	}
	*s = string(b)
	return true
}

// time consumes a time as json.Unmarshal does: time.Time's UnmarshalJSON
// on the quoted string.
func (p *jsonDec) time(t *time.Time) bool {
	start := p.i
	if _, ok := p.raw(); !ok {
		return false
	}
	return t.UnmarshalJSON(p.b[start:p.i]) == nil
}

// int64 consumes an integer without fraction or exponent.
func (p *jsonDec) int64(n *int64) bool {
	start := p.i
	p.byte('-')
	digits := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	if p.i == digits || (p.b[digits] == '0' && p.i > digits+1) {
		return false // no digits, or a leading zero: not JSON
	}
	v, err := strconv.ParseInt(string(p.b[start:p.i]), 10, 64)
	if err != nil {
		return false // out of range: json.Unmarshal's error
	}
	*n = v
	return true
}

// int consumes an integer that fits an int.
func (p *jsonDec) int(n *int) bool {
	var v int64
	if !p.int64(&v) || int64(int(v)) != v {
		return false
	}
	*n = int(v)
	return true
}

// bool consumes true or false.
func (p *jsonDec) bool(v *bool) bool {
	rest := p.b[p.i:]
	switch {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		*v = true
		p.i += 4
	case len(rest) >= 5 && string(rest[:5]) == "false":
		*v = false
		p.i += 5
	default:
		return false
	}
	return true
}
