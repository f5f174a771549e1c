package mqtt

import (
	"context"
	"testing"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
	"loaxa.vn/protocol/prototest"
)

// FuzzIngestNodeMessage feeds arbitrary payloads, as a node's state or its
// event batch, to the ingest over a real store: none may panic, every
// refusal must say what was wrong with the message (a protocol reason, or
// a user error of the store), never an internal error, and what is
// accepted must be accepted again unchanged, as an MQTT redelivery is:
// an event batch adds no event the second time, none counted twice.
func FuzzIngestNodeMessage(f *testing.F) {
	for _, fx := range prototest.Catalogue() {
		tp, err := protocol.NewTopics("").Parse(fx.Topic)
		if err != nil {
			f.Fatal(err)
		}
		if len(fx.Raw) > 64<<10 || (tp.Channel != protocol.ChanState && tp.Channel != protocol.ChanEvent) {
			continue
		}
		f.Add(tp.Channel == protocol.ChanEvent, fx.Raw)
	}
	w := newIngestWorld(f)
	ctx := context.Background()
	if err := w.nodes.CreateNode(ctx, &loaxa.Node{ID: prototest.Node, Name: prototest.Node, Area: "12346", SecretHash: loaxa.HashSecret("s")}); err != nil {
		f.Fatal(err)
	}
	ingest := func(events bool, raw []byte) error {
		if events {
			return w.c.ingestEvents(ctx, prototest.Node, raw)
		}
		return w.c.ingestState(ctx, prototest.Node, raw)
	}
	stored := func(t *testing.T) int {
		evs, err := w.events.FindEvents(ctx, loaxa.EventFilter{Node: prototest.Node})
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}
	f.Fuzz(func(t *testing.T, events bool, raw []byte) {
		err := ingest(events, raw)
		if err != nil {
			if protocol.Reason(err) == "other" && loaxa.ErrorCode(err) != loaxa.EInvalid {
				t.Fatalf("refused with an internal error: %v", err)
			}
			return
		}
		var before int
		if events {
			before = stored(t)
		}
		if err := ingest(events, raw); err != nil {
			t.Fatalf("accepted once, refused when delivered again: %v", err)
		}
		if events {
			if after := stored(t); after != before {
				t.Fatalf("delivered again, the batch stored %d more events", after-before)
			}
		}
	})
}
