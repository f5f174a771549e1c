package bolt

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// encoded is one of the hand-written encoders with the value it encodes,
// so that each can be compared with json.Marshal of that value.
type encoded struct {
	name   string
	v      any // what json.Marshal is given
	encode func() ([]byte, error)
}

// encoders returns the three encoders applied to d, ev and n.
func encoders(d *loaxa.Delivery, ev *loaxa.Event, n *loaxa.Node) []encoded {
	r := nodeRecord{n, n.SecretHash, n.BrokerHash}
	return []encoded{
		{"encodeDelivery", d, func() ([]byte, error) { return encodeDelivery(d) }},
		{"encodeEvent", ev, func() ([]byte, error) { return encodeEvent(ev) }},
		{"encodeNodeRecord", r, func() ([]byte, error) { return encodeNodeRecord(r) }},
	}
}

// sameAsJSON reports how enc's output differs from json.Marshal's, or "".
func sameAsJSON(enc encoded) string {
	want, wantErr := json.Marshal(enc.v)
	got, err := enc.encode()
	switch {
	case (err == nil) != (wantErr == nil):
		return "error " + errText(err) + ", json.Marshal's " + errText(wantErr)
	case err != nil && err.Error() != wantErr.Error():
		return "error " + err.Error() + ", json.Marshal's " + wantErr.Error()
	case !bytes.Equal(got, want):
		return "\n got  " + string(got) + "\n want " + string(want)
	}
	return ""
}

func errText(err error) string {
	if err == nil {
		return "none"
	}
	return err.Error()
}

// TestEncodersMatchJSON compares the hand-written encoders with
// json.Marshal on the values where the two could part.
func TestEncodersMatchJSON(t *testing.T) {
	ict := time.FixedZone("ICT", 7*3600)
	odd := time.FixedZone("", -(3*3600 + 30*60 + 17)) // seconds in the offset, which RFC 3339 drops
	ptr := func(f float64) *float64 { return &f }
	yes, no, vol, rssi, disk := true, false, 0, -71, int64(0)
	strs := []string{
		"", "Tiên Lãng", `quote " back \ slash /`, "<b>&amp;</b>", "\x00\x01\b\f\n\r\t\x1f\x7f",
		"bad \xff\xfe utf-8 \xe1\x80", "line\u2028para\u2029", "\xed\xa0\x80 surrogate", "emoji 🔊", "\u00a0nbsp",
	}
	times := []time.Time{
		{}, time.Date(2026, 12, 3, 1, 2, 3, 0, time.UTC), time.Date(2026, 12, 3, 8, 2, 3, 123456789, ict),
		time.Date(2026, 12, 3, 8, 2, 3, 120000000, odd), time.Date(2026, 12, 3, 8, 2, 3, 1, time.UTC), time.Now(),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 24*3600)), time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", -23*3600-59*60)),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 100*3600)), time.Unix(0, 0).In(time.Local),
	}
	floats := []float64{0, math.Copysign(0, -1), 1, -1.5, 21.066, 1e-6, 1e-7, 9.99e-7, 1e20, 1e21, 1.2345e-300, math.MaxFloat64,
		math.SmallestNonzeroFloat64, 123456789.125, math.NaN(), math.Inf(1), math.Inf(-1)}
	var cases []encoded
	add := func(d *loaxa.Delivery, ev *loaxa.Event, n *loaxa.Node) { cases = append(cases, encoders(d, ev, n)...) }
	// Zero values, and nil against empty lists.
	add(&loaxa.Delivery{}, &loaxa.Event{}, &loaxa.Node{})
	add(&loaxa.Delivery{}, &loaxa.Event{Event: protocol.Event{Test: &protocol.TestResult{}}},
		&loaxa.Node{SecretHash: []byte{}, Status: loaxa.NodeStatus{Keys: []string{}, ContentMissing: []string{}, AreasUnheard: []string{}, Faults: []loaxa.Fault{}}})
	add(&loaxa.Delivery{}, &loaxa.Event{},
		&loaxa.Node{Settings: loaxa.NodeSettings{Volume: &vol}, Status: loaxa.NodeStatus{Board: &protocol.Board{}, Playing: &protocol.Playing{}, Volume: &vol, DiskFreeBytes: &disk}})
	for _, s := range strs {
		add(&loaxa.Delivery{Announcement: s, Occurrence: s, Node: s, State: loaxa.DeliveryState(s), Reason: s, Epoch: s, Priority: protocol.Priority(s), HeldBy: s},
			&loaxa.Event{Node: s, Area: s, Epoch: s, Refused: s, Event: protocol.Event{Type: protocol.EventType(s), Occurrence: s, Announcement: s, Content: s, Reason: s, HeldBy: s, Version: s,
				Test: &protocol.TestResult{ID: s, Problems: []string{s, s}}}},
			&loaxa.Node{ID: s, Name: s, Area: s, Credentials: s, BrokerHash: s, SecretHash: []byte(s), Settings: loaxa.NodeSettings{AmplifierPolicy: s},
				Status: loaxa.NodeStatus{State: s, Agent: s, ContentMissing: []string{s, s}, Keys: []string{s}, AreasUnheard: []string{s, "a"}, NoSoundDevice: s, StorageFault: s, AmplifierPolicy: s,
					Playing: &protocol.Playing{Occurrence: s, Content: s, Priority: protocol.Priority(s)}, Board: &protocol.Board{SpeakerLine: protocol.SpeakerLine(s), Link: s},
					Faults: []loaxa.Fault{{Kind: s, Detail: s, Facts: loaxa.AlarmFacts{Reason: s}}}}})
	}
	for _, tm := range times {
		add(&loaxa.Delivery{Start: tm, ContentReadyAt: tm, ReceivedAt: tm, ResentAt: tm, CancelResentAt: tm, UpdatedAt: tm},
			&loaxa.Event{ReceivedAt: tm, Event: protocol.Event{At: tm}},
			&loaxa.Node{CreatedAt: tm, EnrolledAt: tm, MovedAt: tm, SecretSetAt: tm, RevokedAt: tm,
				Status: loaxa.NodeStatus{Since: tm, LastSeen: tm, LastPlay: tm, Playing: &protocol.Playing{Since: tm}, Faults: []loaxa.Fault{{Since: tm}}}})
		// One bad time among good ones.
		add(&loaxa.Delivery{UpdatedAt: tm}, &loaxa.Event{Event: protocol.Event{At: tm}}, &loaxa.Node{Status: loaxa.NodeStatus{LastPlay: tm}})
	}
	for _, f := range floats {
		add(&loaxa.Delivery{}, &loaxa.Event{Event: protocol.Event{Test: &protocol.TestResult{Ohms: ptr(f)}}},
			&loaxa.Node{Lat: f, Lon: -f, Status: loaxa.NodeStatus{Board: &protocol.Board{SpeakerOhms: ptr(f), BatteryVolts: ptr(-f), TemperatureC: ptr(f / 3)}}})
	}
	// Numbers at their ends, booleans and pointers both ways.
	for _, i := range []int64{1, -1, math.MaxInt64, math.MinInt64} {
		add(&loaxa.Delivery{LateMS: i, PlayedMS: i, ChimeSkippedMS: i, MessageMS: i, Resends: int(i), CancelResends: int(i), PlannedMS: i, FramesPlayed: i, FramesLost: i, FramesLate: i,
			Began: i > 0, ContentReady: i > 0, Drill: i > 0, Unplanned: i > 0, FailedToSound: i > 0},
			&loaxa.Event{Salvaged: i > 0, Event: protocol.Event{Seq: uint64(i), LateMS: i, PlayedMS: i, ChimeSkippedMS: i, MessageMS: i, FramesPlayed: i, FramesLost: i, FramesLate: i, ContentPending: i > 0, Drill: i > 0}},
			&loaxa.Node{Status: loaxa.NodeStatus{DesiredVersion: uint64(i), RunningVersion: uint64(i), ClockOffsetMS: i, ClockUncertaintyUS: i, CacheBytes: i, CacheLimit: i, Rejected: uint64(i), Outbox: int(i),
				HeartbeatMS: i, UptimeS: i, DiskFreeBytes: &i, StorageDamaged: int(i), LinkDeaf: int(i), Muted: i > 0, Volume: &vol,
				Board:   &protocol.Board{Amplifier: i > 0, AmplifierCommand: &yes, AmplifierFault: &no, Mains: &yes, Charging: &no, DoorOpen: &yes, RSSIDBm: &rssi},
				Playing: &protocol.Playing{Drill: i > 0}}, Settings: loaxa.NodeSettings{Volume: &rssi, Muted: i > 0}})
	}
	add(&loaxa.Delivery{}, &loaxa.Event{}, &loaxa.Node{Settings: loaxa.NodeSettings{Muted: true}})
	add(&loaxa.Delivery{}, &loaxa.Event{}, &loaxa.Node{Settings: loaxa.NodeSettings{AmplifierPolicy: "always-on"}})
	for i, c := range cases {
		if diff := sameAsJSON(c); diff != "" {
			t.Errorf("case %d, %s: %s", i/3, c.name, diff)
		}
	}
	// A record without its node is json.Marshal's too.
	if diff := sameAsJSON(encoded{"encodeNodeRecord", nodeRecord{}, func() ([]byte, error) { return encodeNodeRecord(nodeRecord{}) }}); diff != "" {
		t.Errorf("nodeRecord without a node: %s", diff)
	}
}

// TestEncodersKnowEveryField sets each field of the encoded records alone,
// down through the structs the encoders write by hand, and compares with
// json.Marshal: a field added to one of these structs that its encoder
// does not write fails here, naming it.
func TestEncodersKnowEveryField(t *testing.T) {
	roots := []struct {
		name   string
		v      reflect.Value
		encode func(v reflect.Value) ([]byte, error)
	}{
		{"Delivery", reflect.ValueOf(new(loaxa.Delivery)), func(v reflect.Value) ([]byte, error) { return encodeDelivery(v.Interface().(*loaxa.Delivery)) }},
		{"Event", reflect.ValueOf(new(loaxa.Event)), func(v reflect.Value) ([]byte, error) { return encodeEvent(v.Interface().(*loaxa.Event)) }},
		{"nodeRecord", reflect.ValueOf(&nodeRecord{Node: new(loaxa.Node)}), func(v reflect.Value) ([]byte, error) { return encodeNodeRecord(*v.Interface().(*nodeRecord)) }},
	}
	var fields int
	for _, root := range roots {
		// The zero record first: a field json.Marshal writes even when
		// zero would otherwise fail every field below.
		want, _ := json.Marshal(root.v.Interface())
		if got, err := root.encode(root.v); err != nil || !bytes.Equal(got, want) {
			t.Errorf("zero %s: the hand-written encoder (encode.go) does not write %s as json.Marshal does; teach it the field (error %v)\n got  %s\n want %s",
				root.name, keysApart(got, want), err, got, want)
			continue
		}
		var walk func(path []int, name string, typ reflect.Type)
		walk = func(path []int, name string, typ reflect.Type) {
			for i := range typ.NumField() {
				f := typ.Field(i)
				if !f.IsExported() && !f.Anonymous {
					continue
				}
				p, fname := append(append([]int(nil), path...), i), name+"."+f.Name
				// A fresh root with only this field set.
				v := reflect.New(root.v.Type().Elem())
				v.Elem().Set(root.v.Elem())
				if root.name == "nodeRecord" {
					v.Elem().Field(0).Set(reflect.ValueOf(new(loaxa.Node)))
				}
				fill(t, fieldAt(v.Elem(), p))
				want, wantErr := json.Marshal(v.Interface())
				got, err := root.encode(v)
				fields++
				if err != nil || wantErr != nil || !bytes.Equal(got, want) {
					t.Errorf("%s set alone: the hand-written encoder (encode.go) does not write %s as json.Marshal does; teach it the field (errors %v, %v)\n got  %s\n want %s",
						fname, keysApart(got, want), err, wantErr, got, want)
				}
				// Down into the structs written by hand (not times, nor
				// the parts handed to json.Marshal whole).
				ft := f.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Time]() && ft != reflect.TypeFor[protocol.TestResult]() {
					walk(p, fname, ft)
				}
			}
		}
		walk(nil, root.name, root.v.Type().Elem())
	}
	if fields < 100 {
		t.Fatalf("only %d fields walked", fields)
	}
}

// keysApart names the keys whose values differ between two JSON objects,
// down through the objects in them.
func keysApart(got, want []byte) string {
	var g, w any
	if json.Unmarshal(got, &g) != nil || json.Unmarshal(want, &w) != nil {
		return "the record"
	}
	var apart []string
	var cmp func(path string, g, w any)
	cmp = func(path string, g, w any) {
		gm, gok := g.(map[string]any)
		wm, wok := w.(map[string]any)
		if !gok || !wok {
			if !reflect.DeepEqual(g, w) {
				apart = append(apart, path)
			}
			return
		}
		for k := range wm {
			cmp(path+"."+k, gm[k], wm[k])
		}
		for k := range gm {
			if _, ok := wm[k]; !ok {
				apart = append(apart, path+"."+k)
			}
		}
	}
	cmp("", g, w)
	if len(apart) == 0 {
		return "its bytes"
	}
	slices.Sort(apart)
	return "JSON " + strings.Join(apart, ", ")
}

// fieldAt returns the field of v at path, making each pointer on the way.
func fieldAt(v reflect.Value, path []int) reflect.Value {
	for _, i := range path {
		if v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(i)
	}
	return v
}

// FuzzEncoders fills every field of the three records from the fuzzer's
// bytes, strings, time and float and compares each encoder with
// json.Marshal.
func FuzzEncoders(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8}, "Tiên Lãng", "<&>", int64(1764720000), int64(123456789), int32(7*3600), 21.066)
	f.Add([]byte{0xff, 0, 0xff, 0, 0xff}, "bad \xff", "line\u2028", int64(-62135596800), int64(1), int32(-12*3600-30), 1e-7)
	f.Add([]byte{0xaa, 0x55}, "\x00\t\n\"\\", "", int64(253402300800), int64(999999999), int32(24*3600), math.Inf(1))
	f.Add(bytes.Repeat([]byte{0xfe}, 64), "", "", int64(0), int64(0), int32(0), 1e21)
	f.Fuzz(func(t *testing.T, seed []byte, s1, s2 string, sec, nsec int64, off int32, fl float64) {
		src := &fuzzSource{seed: seed, strs: []string{s1, s2}, time: time.Unix(sec, nsec).In(time.FixedZone("", int(off))), float: fl}
		d, ev, n := new(loaxa.Delivery), new(loaxa.Event), new(loaxa.Node)
		src.fill(reflect.ValueOf(d).Elem())
		src.fill(reflect.ValueOf(ev).Elem())
		src.fill(reflect.ValueOf(n).Elem())
		for _, c := range encoders(d, ev, n) {
			if diff := sameAsJSON(c); diff != "" {
				t.Errorf("%s: %s", c.name, diff)
			}
		}
	})
}

// fuzzSource fills values from the fuzzer's input: each leaf takes the
// next seed byte, which decides whether it is left zero and which value
// it takes.
type fuzzSource struct {
	seed  []byte
	i     int
	strs  []string
	time  time.Time
	float float64
}

func (s *fuzzSource) next() byte {
	if len(s.seed) == 0 {
		return 0
	}
	b := s.seed[s.i%len(s.seed)]
	s.i++
	return b ^ byte(s.i/len(s.seed))
}

func (s *fuzzSource) fill(v reflect.Value) {
	if v.Type() == reflect.TypeFor[time.Time]() {
		switch b := s.next(); b % 4 {
		case 0:
		case 1:
			v.Set(reflect.ValueOf(s.time.UTC()))
		default:
			v.Set(reflect.ValueOf(s.time.Add(time.Duration(b) * time.Millisecond)))
		}
		return
	}
	b := s.next()
	switch v.Kind() {
	case reflect.Pointer:
		if b%3 != 0 {
			v.Set(reflect.New(v.Type().Elem()))
			s.fill(v.Elem())
		}
	case reflect.Slice:
		switch b % 4 {
		case 0:
		case 1:
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		default:
			v.Set(reflect.MakeSlice(v.Type(), int(b%4), int(b%4)))
			for i := range v.Len() {
				s.fill(v.Index(i))
			}
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				s.fill(v.Field(i))
			}
		}
	case reflect.String:
		switch b % 4 {
		case 0:
		case 1:
			v.SetString(s.strs[0])
		case 2:
			v.SetString(s.strs[1])
		default:
			v.SetString(strings.Repeat(string(rune(b)), int(b%3)+1))
		}
	case reflect.Bool:
		v.SetBool(b%2 == 1)
	case reflect.Int, reflect.Int64, reflect.Int32:
		var x [8]byte
		for i := range x {
			x[i] = s.next()
		}
		if b%4 != 0 {
			v.SetInt(int64(binary.LittleEndian.Uint64(x[:])) >> (b % 64))
		}
	case reflect.Uint, reflect.Uint64, reflect.Uint32, reflect.Uint8:
		var x [8]byte
		for i := range x {
			x[i] = s.next()
		}
		if b%4 != 0 {
			v.SetUint(binary.LittleEndian.Uint64(x[:]) >> (b % 64))
		}
	case reflect.Float64:
		switch b % 3 {
		case 0:
		case 1:
			v.SetFloat(s.float)
		default:
			v.SetFloat(s.float * float64(b))
		}
	default:
		panic("fuzzSource: " + v.Type().String() + " not handled: teach it")
	}
}
