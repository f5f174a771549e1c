package bolt

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// deliveryRecords are records as encodeDelivery writes them: a delivery
// just planned, one an alert's round moved on, every field set, and
// times in other zones.
func deliveryRecords(t testing.TB) [][]byte {
	t.Helper()
	start := time.Date(2026, 12, 3, 8, 0, 0, 123_000_000, time.UTC)
	ds := []loaxa.Delivery{
		{},
		{Announcement: "e000001", Occurrence: loaxa.OccurrenceID("e000001", start), Node: "n00001", Start: start,
			State: loaxa.DeliveryPending, Priority: protocol.PriorityEmergency, PlannedMS: 60000, UpdatedAt: start},
		{Announcement: "e000001", Occurrence: loaxa.OccurrenceID("e000001", start), Node: "n00001", Start: start.In(time.FixedZone("", 7*3600)),
			State: loaxa.DeliveryCompleted, LateMS: -3, PlayedMS: 60000, Began: true, ContentReady: true, ContentReadyAt: start,
			ReceivedAt: start.Add(time.Second), Epoch: "e1", UpdatedAt: start.Add(61 * time.Second).In(time.Local),
			Priority: protocol.PriorityEmergency, PlannedMS: 60000, FramesPlayed: 1 << 40, Reason: "Loa ở chợ Đông Xá ✓",
			HeldBy: "cán bộ xã"},
	}
	var full loaxa.Delivery
	fill(t.(*testing.T), reflect.ValueOf(&full).Elem())
	ds = append(ds, full)
	var out [][]byte
	for i := range ds {
		raw, err := encodeDelivery(&ds[i])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, raw)
	}
	return out
}

// TestDecodeDeliveryReadsItsRecords: every record encodeDelivery writes,
// each field set among them, is read by hand (not left to json.Unmarshal),
// to what json.Unmarshal gives. A field added to loaxa.Delivery that
// decodeDeliveryFast does not know fails it.
func TestDecodeDeliveryReadsItsRecords(t *testing.T) {
	for _, raw := range deliveryRecords(t) {
		var fast, want loaxa.Delivery
		if !decodeDeliveryFast(raw, &fast) {
			t.Errorf("left to json.Unmarshal: %s", raw)
			continue
		}
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(fast, want) {
			t.Errorf("%s\ndecoded as\n%+v\nwant\n%+v", raw, fast, want)
		}
	}
}

// FuzzDecodeDelivery: on any input, decodeDelivery gives what
// json.Unmarshal gives, the value or an error (the same).
func FuzzDecodeDelivery(f *testing.F) {
	for _, raw := range deliveryRecords(&testing.T{}) {
		f.Add(raw)
	}
	for _, s := range []string{
		`{"announcement":"a\u0041","node":"n"}`, `{"Announcement":"a"}`, `{"late_ms":1.0}`, `{"late_ms":1e3}`,
		`{"late_ms":-0}`, `{"late_ms":01}`, `{"late_ms":9223372036854775808}`, `{"start":null}`, `{"start":"x"}`,
		`{"node":"a","node":"b"}`, `{"began":true }`, ` {}`, `{}x`, `{"reason":"\xff"}`, `{"x":1}`, `{"began":tru}`,
		`{"start":"2026-12-03T08:00:00+07:00"}`, `{"start":"2026-12-03T08:00:00.5Z","state":"completed"}`, `[]`, `null`,
		"{\"reason\":\"\xff\"}", "{\"reason\":\"\xed\xa0\x80\"}", "{\"reason\":\"\x01\"}", `{"node":"a"}x`, `{"node":"a"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var got, want loaxa.Delivery
		err := decodeDelivery(raw, &got)
		werr := json.Unmarshal(raw, &want)
		if (err == nil) != (werr == nil) || (err != nil && err.Error() != werr.Error()) {
			t.Fatalf("%q: error %v, json.Unmarshal's %v", raw, err, werr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q decoded as\n%+v\njson.Unmarshal:\n%+v", raw, got, want)
		}
	})
}
