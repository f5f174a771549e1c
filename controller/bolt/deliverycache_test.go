package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// jsonAgain returns d encoded and decoded.
func jsonAgain(t *testing.T, d loaxa.Delivery) loaxa.Delivery {
	t.Helper()
	raw, err := json.Marshal(&d)
	if err != nil {
		t.Fatal(err)
	}
	var again loaxa.Delivery
	if err := json.Unmarshal(raw, &again); err != nil {
		t.Fatal(err)
	}
	return again
}

// TestKeptByJSON: a delivery with every field set as the ingest sets it
// comes back from JSON exactly, and keptByJSON says so; each time or
// string field set to what JSON does not give back (a time with a
// monotonic reading or in a zone, a string that is not UTF-8) makes it say
// not. A field added to loaxa.Delivery that JSON may change and keptByJSON
// does not check fails it.
func TestKeptByJSON(t *testing.T) {
	var base loaxa.Delivery
	fill(t, reflect.ValueOf(&base).Elem())
	if !keptByJSON(&base) {
		t.Fatal("keptByJSON refuses a delivery of UTC times and UTF-8 strings")
	}
	if again := jsonAgain(t, base); !reflect.DeepEqual(again, base) {
		t.Fatalf("JSON changed a delivery keptByJSON takes:\n%+v\n%+v", again, base)
	}
	ict := time.FixedZone("ICT", 7*3600)
	typ := reflect.TypeFor[loaxa.Delivery]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		var changes []func(reflect.Value)
		switch {
		case f.Type == reflect.TypeFor[time.Time]():
			changes = []func(reflect.Value){
				func(v reflect.Value) { v.Set(reflect.ValueOf(time.Now())) },
				func(v reflect.Value) { v.Set(reflect.ValueOf(time.Date(2026, 12, 2, 17, 0, 0, 0, ict))) },
			}
		case f.Type.Kind() == reflect.String:
			changes = []func(reflect.Value){func(v reflect.Value) { v.SetString("x\xffy") }}
		case f.Type.Kind() == reflect.Bool, f.Type.Kind() >= reflect.Int && f.Type.Kind() <= reflect.Uint64:
			continue // JSON keeps numbers and booleans
		default:
			t.Errorf("field %s (%s): teach keptByJSON about it", f.Name, f.Type)
			continue
		}
		for _, change := range changes {
			d := base
			change(reflect.ValueOf(&d).Elem().Field(i))
			if reflect.DeepEqual(jsonAgain(t, d), d) {
				t.Errorf("field %s: JSON gives back %v, which the test takes for a value it changes", f.Name, reflect.ValueOf(d).Field(i))
			}
			if keptByJSON(&d) {
				t.Errorf("field %s set to %v, which JSON does not give back: keptByJSON takes it", f.Name, reflect.ValueOf(d).Field(i))
			}
		}
	}
}

// TestRecordEventsRefreshesTheReportsCache: an emergency's report read
// its deliveries; the nodes' events change them; the report built again
// finds them in the cache, with the value their new bytes decode to,
// instead of decoding them again. A delivery whose value JSON would not
// give back (a caller's time with a monotonic reading; an emergency's start
// in the controller's zone, Asia/Ho_Chi_Minh in Vietnam) is taken as its
// bytes decode: before, it was left out, and on a controller in Vietnam's
// zone every build of a round's report decoded every delivery again.
func TestRecordEventsRefreshesTheReportsCache(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	db := openTestDB(t)
	db.Now = func() time.Time { return at }
	if err := NewAreaService(db).CreateArea(ctx, &loaxa.Area{ID: "31", Name: "Hải Phòng"}); err != nil {
		t.Fatal(err)
	}
	nodes, deliveries, events := NewNodeService(db), NewDeliveryService(db), NewEventService(db)
	ann := "e000001"
	occ := loaxa.OccurrenceID(ann, at.Add(time.Second))
	var ds []*loaxa.Delivery
	for _, id := range []string{"n1", "n2"} {
		if err := nodes.CreateNode(ctx, &loaxa.Node{ID: id, Name: id, Area: "31", SecretHash: loaxa.HashSecret("s")}); err != nil {
			t.Fatal(err)
		}
		start := at.Add(time.Second)
		if id == "n2" { // as an emergency's start on a controller in Vietnam
			start = start.In(time.FixedZone("ICT", 7*3600))
		}
		ds = append(ds, &loaxa.Delivery{Announcement: ann, Occurrence: occ, Node: id, Start: start, Priority: protocol.PriorityEmergency})
	}
	if err := deliveries.EnsureDeliveries(ctx, ds); err != nil {
		t.Fatal(err)
	}
	if _, err := deliveries.FindDeliveries(ctx, loaxa.DeliveryFilter{Announcement: ann}); err != nil {
		t.Fatal(err)
	}
	received := func(node string, evAt time.Time) {
		t.Helper()
		ev := protocol.Event{Seq: 1, Type: protocol.EventReceived, At: evAt, Occurrence: occ, Announcement: ann}
		if _, _, err := events.RecordEvents(ctx, node, protocol.EventBatch{Epoch: "e1", Events: []protocol.Event{ev}}, at.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	// As the ingest gives it: the node's time decoded from its JSON.
	var fromJSON time.Time
	if err := json.Unmarshal([]byte(`"2026-12-02T10:00:00.250Z"`), &fromJSON); err != nil {
		t.Fatal(err)
	}
	received("n1", fromJSON)
	received("n2", time.Now())
	stored := func(node string) (key, raw []byte) {
		key = deliveryKey(ann, occ, node)
		if err := db.view(func(tx *bbolt.Tx) error {
			raw = bytes.Clone(tx.Bucket(bucketDeliveries).Get(key))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return key, raw
	}
	key, raw := stored("n1")
	cached, ok := db.deliveries.lookup(key, raw)
	if !ok {
		t.Fatal("after the events, the cache does not hold the delivery they wrote")
	}
	var decoded loaxa.Delivery
	if err := json.Unmarshal(raw, &decoded); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cached, decoded) {
		t.Fatalf("the cache holds\n%+v\nits bytes decode to\n%+v", cached, decoded)
	}
	if cached.State != loaxa.DeliveryReceived {
		t.Errorf("cached delivery %s, want received", cached.State)
	}
	if key, raw := stored("n2"); raw == nil {
		t.Fatal("n2's delivery missing")
	} else if cached, ok := db.deliveries.lookup(key, raw); !ok {
		t.Error("a delivery with times JSON does not keep as they are was left out of the cache")
	} else {
		var decoded loaxa.Delivery
		if err := json.Unmarshal(raw, &decoded); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(cached, decoded) {
			t.Errorf("the cache holds n2's delivery as\n%+v\nits bytes decode to\n%+v", cached, decoded)
		}
	}
	got, err := deliveries.FindDeliveries(ctx, loaxa.DeliveryFilter{Announcement: ann})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range got {
		_, raw := stored(d.Node)
		var want loaxa.Delivery
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*d, want) {
			t.Errorf("report's delivery of %s\n%+v\ndecoded\n%+v", d.Node, *d, want)
		}
	}
}
