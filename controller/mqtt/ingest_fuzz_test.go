package mqtt

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
	"loaxa.vn/protocol/prototest"
)

// Shapes of FuzzIngestNodeMessage's input.
const (
	fuzzState     = iota // a state built from the inputs
	fuzzEvents           // an event batch built from the inputs
	fuzzRawState         // the bytes as they are, as a state
	fuzzRawEvents        // the bytes as they are, as an event batch
	fuzzShapes
)

// fuzzEventTypes are the event types nodes send, one a newer node may send
// (valid, unknown), and two the controller refuses.
var fuzzEventTypes = []protocol.EventType{
	protocol.EventReceived, protocol.EventContentReady, protocol.EventStarted, protocol.EventSuspended,
	protocol.EventCompleted, protocol.EventFailed, protocol.EventMissed, protocol.EventPreempted,
	protocol.EventSelfTest, protocol.EventUpdated, protocol.EventUpdateFailed, "x-newer", "Not A Type", "",
}

var fuzzReasons = []string{"", protocol.ReasonContentMissing, protocol.ReasonAmplifier, protocol.ReasonPreempted,
	protocol.ReasonTooLate, protocol.ReasonRemoved, protocol.ReasonCancelled, protocol.ReasonCut, "stream"}

// fuzzOccurrences are what the events name: occurrences planned for the
// node (fuzzWorld stores their deliveries), one of a bulletin it was never
// planned for, an emergency's, a live call, malformed ones, and none.
func fuzzOccurrences() []string {
	return []string{
		loaxa.OccurrenceID("a000001", ingestT0.Add(time.Hour)),
		loaxa.OccurrenceID("a000001", ingestT0.Add(-time.Hour)),
		loaxa.OccurrenceID("a000002", ingestT0.Add(10*time.Minute)),
		loaxa.OccurrenceID("a000003", ingestT0),
		loaxa.OccurrenceID("e000001", ingestT0.Add(-time.Minute)),
		"live-000001",
		"a000001",
		"@20260302T000000.000Z",
		"",
	}
}

// FuzzIngestNodeMessage feeds node messages to the ingest over a real
// store, its health monitor hearing them: state and event-batch envelopes
// built from the fuzzer's numbers and bytes (its node, an epoch among a
// few, sequence numbers with resends and gaps, events of the real types
// about occurrences whose deliveries are stored, times around now), so
// that the delivery and status paths are reached, and arbitrary payloads
// as they are. None may panic; every refusal must say what was wrong with
// the message (a protocol reason, or a user error of the store), never an
// internal error; and what is accepted must be accepted again unchanged,
// as an MQTT redelivery is: an event batch adds no event the second time,
// and the first time at most one stored event per event it carries.
//
// Each built message comes from a node of its own, in a store shared by
// all the inputs; the catalogue's, and the fuzzer's bytes as they are,
// from the catalogue's node.
func FuzzIngestNodeMessage(f *testing.F) {
	for _, fx := range prototest.Catalogue() {
		tp, err := protocol.NewTopics("").Parse(fx.Topic)
		if err != nil {
			f.Fatal(err)
		}
		if len(fx.Raw) > 64<<10 || (tp.Channel != protocol.ChanState && tp.Channel != protocol.ChanEvent) {
			continue
		}
		shape := uint8(fuzzRawState)
		if tp.Channel == protocol.ChanEvent {
			shape = fuzzRawEvents
		}
		f.Add(shape, uint8(0), uint32(0), int16(0), fx.Raw)
	}
	// A bulletin's story, an alert's, a gap, a resend, a refused event, a
	// salvaged batch, states online and offline.
	f.Add(uint8(fuzzEvents), uint8(0), uint32(1), int16(0), []byte{0, 0, 1, 0, 1, 0, 1, 10, 2, 0, 1, 20, 4, 0, 1, 80})
	f.Add(uint8(fuzzEvents), uint8(1), uint32(1), int16(-30), []byte{0, 4, 1, 0, 1, 4, 1, 0, 2, 4, 1, 1, 4, 4, 1, 90})
	f.Add(uint8(fuzzEvents), uint8(0), uint32(3), int16(5), []byte{5, 1, 7, 0, 2, 1, 1, 0})
	f.Add(uint8(fuzzEvents), uint8(0), uint32(1), int16(0), []byte{0, 2, 1, 0, 0, 2, 0, 0, 12, 2, 1, 0})
	f.Add(uint8(fuzzEvents|4), uint8(2), uint32(0x20001), int16(0), []byte{3, 3, 1, 0, 6, 5, 1, 0})
	f.Add(uint8(fuzzState), uint8(0), uint32(7), int16(0), []byte{1, 2, 3, 4})
	f.Add(uint8(fuzzState), uint8(1), uint32(7), int16(0), []byte{})

	w := newIngestWorld(f)
	ctx := context.Background()
	occs := fuzzOccurrences()
	// Each built message comes from a node of its own, with the
	// occurrences of fuzzOccurrences planned for it: what it reports is
	// judged on its own, as the same input is at every run, and no earlier
	// input's sequence numbers make its events resends.
	var nodes atomic.Int64
	newNode := func(t *testing.T) string {
		id := fmt.Sprintf("fz-%d", nodes.Add(1))
		if err := w.nodes.CreateNode(ctx, &loaxa.Node{ID: id, Name: id, Area: "12346", SecretHash: loaxa.HashSecret("s")}); err != nil {
			t.Fatal(err)
		}
		var planned []*loaxa.Delivery
		for _, occ := range occs[:3] {
			ann, _, _ := strings.Cut(occ, "@")
			planned = append(planned, &loaxa.Delivery{Announcement: ann, Occurrence: occ, Node: id, Start: loaxa.OccurrenceTime(occ)})
		}
		if err := bolt.NewDeliveryService(w.db).EnsureDeliveries(ctx, planned); err != nil {
			t.Fatal(err)
		}
		return id
	}
	// The catalogue's messages are its node's.
	if err := w.nodes.CreateNode(ctx, &loaxa.Node{ID: prototest.Node, Name: prototest.Node, Area: "12346", SecretHash: loaxa.HashSecret("s")}); err != nil {
		f.Fatal(err)
	}
	stored := func(t *testing.T, node string) int {
		evs, err := w.events.FindEvents(ctx, loaxa.EventFilter{Node: node, Limit: bolt.MaxEventLimit})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == bolt.MaxEventLimit {
			t.Skipf("node %s holds %d events, what FindEvents returns at most: not counted", node, len(evs))
		}
		return len(evs)
	}
	f.Fuzz(func(t *testing.T, shape uint8, epoch uint8, seq uint32, shift int16, raw []byte) {
		var (
			from    = prototest.Node
			events  bool
			carried int
			payload []byte
		)
		switch shape % fuzzShapes {
		case fuzzRawState, fuzzRawEvents:
			events, payload = shape%fuzzShapes == fuzzRawEvents, raw
		case fuzzState:
			from = newNode(t)
			payload = fuzzStateMessage(t, from, occs, epoch, seq, shift, raw)
		case fuzzEvents:
			from = newNode(t)
			var b protocol.EventBatch
			payload, b = fuzzEventBatch(t, from, occs, shape&4 != 0, epoch, seq, shift, raw)
			events, carried = true, len(b.Events)
		}
		ingest := func() error {
			if events {
				return w.c.ingestEvents(ctx, from, payload)
			}
			return w.c.ingestState(ctx, from, payload)
		}
		before := stored(t, from)
		if err := ingest(); err != nil {
			if protocol.Reason(err) == "other" && loaxa.ErrorCode(err) != loaxa.EInvalid {
				t.Fatalf("refused with an internal error: %v", err)
			}
			return
		}
		once := stored(t, from)
		if carried > 0 && once-before > carried {
			t.Fatalf("a batch of %d events stored %d", carried, once-before)
		}
		if err := ingest(); err != nil {
			t.Fatalf("accepted once, refused when delivered again: %v", err)
		}
		if after := stored(t, from); after != once {
			t.Fatalf("delivered again, the message stored %d more events", after-once)
		}
	})
}

// fuzzEventBatch builds node's event batch from the fuzzer's inputs: each
// 4 bytes of ops are an event (its type, its occurrence, the step from the
// previous sequence number with flags, and its time in 7-minute steps
// around now, 0 for none); seq's low 16 bits are the first sequence
// number, its high ones Acked.
func fuzzEventBatch(t *testing.T, node string, occs []string, salvaged bool, epoch uint8, seq uint32, shift int16, ops []byte) ([]byte, protocol.EventBatch) {
	b := protocol.EventBatch{Epoch: []string{"ep-1", "ep-2", "ep-salvaged", ""}[epoch%4], Salvaged: salvaged, Acked: uint64(seq>>16) % 64}
	n := uint64(seq&0xffff) % 64
	for i := 0; i+4 <= len(ops) && i < 4*64; i += 4 {
		typ, occ, step, at := ops[i], ops[i+1], ops[i+2], ops[i+3]
		switch step % 8 {
		case 0: // the same number again
		case 7:
			n += 2 // a gap
		default:
			n++
		}
		ev := protocol.Event{Seq: n, Type: fuzzEventTypes[int(typ)%len(fuzzEventTypes)], Occurrence: occs[int(occ)%len(occs)],
			Reason: fuzzReasons[int(typ>>4)%len(fuzzReasons)], Drill: step&8 != 0, ContentPending: step&16 != 0}
		if at != 0 {
			ev.At = ingestT0.Add(time.Duration(int8(at))*7*time.Minute + time.Duration(shift)*time.Second)
		}
		switch ev.Type {
		case protocol.EventStarted:
			ev.LateMS = int64(int8(at)) * 100
		case protocol.EventCompleted, protocol.EventPreempted, protocol.EventFailed:
			ev.PlayedMS = int64(at) * 1000
		case protocol.EventSelfTest:
			ev.Test = &protocol.TestResult{ID: "t-1", Kind: "silent", Pass: step&32 != 0, Problems: []string{protocol.ProblemLineOpen}[:int(step>>6)%2]}
		case protocol.EventUpdated, protocol.EventUpdateFailed:
			ev.Version = "2.0.0"
		}
		if ann, _, ok := strings.Cut(ev.Occurrence, "@"); ok && step&32 != 0 {
			ev.Announcement = ann
		}
		b.Events = append(b.Events, ev)
	}
	raw, err := protocol.Encode(protocol.TypeEvents, node, "controller", uint64(seq), ingestT0, b)
	if err != nil {
		t.Fatal(err)
	}
	return raw, b
}

// fuzzStateMessage builds node's state from the fuzzer's inputs: online
// or its Last Will (epoch's low bit), an epoch, what it plays, its board's
// faults and counters from the bytes of b.
func fuzzStateMessage(t *testing.T, node string, occs []string, epoch uint8, seq uint32, shift int16, b []byte) []byte {
	at := func(i int) byte {
		if i < len(b) {
			return b[i]
		}
		return 0
	}
	st := protocol.State{Status: protocol.StatusOnline, At: ingestT0.Add(time.Duration(shift) * time.Second), DesiredVersion: uint64(seq),
		Epoch: []string{"ep-1", "ep-2", "", "ep-3"}[epoch>>1%4], Agent: "1.0.0", Rejected: uint64(at(5)), Outbox: int(at(6)),
		ClockOffsetMS: int64(int8(at(7))) * 50, StorageDamaged: int(at(8) % 3), LinkDeaf: int(at(9) % 3)}
	if epoch&1 != 0 {
		st.Status = protocol.StatusOffline
	}
	if occ := occs[int(at(0))%len(occs)]; occ != "" {
		st.Playing = &protocol.Playing{Occurrence: occ, Priority: []protocol.Priority{protocol.PriorityNormal, protocol.PriorityEmergency}[at(1)%2], Since: st.At}
	}
	flags := at(2)
	yes, no := true, false
	pick := func(bit byte) *bool {
		switch flags >> bit & 3 {
		case 1:
			return &yes
		case 2:
			return &no
		}
		return nil
	}
	if flags != 0 {
		st.Board = &protocol.Board{Amplifier: flags&1 != 0, AmplifierFault: pick(1), Mains: pick(3), DoorOpen: pick(5),
			SpeakerLine: []protocol.SpeakerLine{"", protocol.LineOK, protocol.LineOpen, protocol.LineShort}[at(3)%4]}
		if v := float64(at(4)) / 10; at(4) != 0 {
			st.Board.BatteryVolts = &v
		}
	}
	if at(10)&1 != 0 {
		st.ContentMissing = []string{"c1"}
	}
	if at(10)&2 != 0 {
		st.NoSoundDevice = "no device"
	}
	raw, err := protocol.Encode(protocol.TypeState, node, "controller", uint64(seq), ingestT0, st)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
