package bolt

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// TestWriteDeliveryLeavesUnchangedIndexesAlone: a node's event batch
// rewrites its delivery, whose by-node and open entries it does not
// change (received keeps it open until the same end). Putting them again
// copied their pages into the transaction for the commit to write: one
// more node of each index per batch, across the whole store in an
// emergency round. What changes is still written: started takes the
// delivery out of the open index, and the file checker (CheckFile)
// finds every index entry where it belongs.
func TestWriteDeliveryLeavesUnchangedIndexesAlone(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)
	db := openTestDB(t)
	db.Now = func() time.Time { return at }
	if err := NewAreaService(db).CreateArea(ctx, &loaxa.Area{ID: "31", Name: "Hải Phòng"}); err != nil {
		t.Fatal(err)
	}
	if err := NewNodeService(db).CreateNode(ctx, &loaxa.Node{ID: "n1", Name: "n1", Area: "31", SecretHash: loaxa.HashSecret("s")}); err != nil {
		t.Fatal(err)
	}
	ann := "e000001"
	occ := loaxa.OccurrenceID(ann, at.Add(time.Second))
	plan := &loaxa.Delivery{Announcement: ann, Occurrence: occ, Node: "n1", Start: at.Add(time.Second), Priority: protocol.PriorityEmergency, PlannedMS: 60000}
	if err := NewDeliveryService(db).EnsureDeliveries(ctx, []*loaxa.Delivery{plan}); err != nil {
		t.Fatal(err)
	}
	key := deliveryKey(ann, occ, "n1")
	rewrite := func(state loaxa.DeliveryState) (nodes int) {
		t.Helper()
		if err := db.update(func(tx *bbolt.Tx) error {
			var d loaxa.Delivery
			if err := json.Unmarshal(tx.Bucket(bucketDeliveries).Get(key), &d); err != nil {
				return err
			}
			d.State, d.ReceivedAt, d.UpdatedAt = state, at, at
			// The delivery's own page, as writeDelivery's Put takes it:
			// counted before, so that only the indexes' are after.
			raw, err := json.Marshal(&d)
			if err != nil {
				return err
			}
			if err := tx.Bucket(bucketDeliveries).Put(key, raw); err != nil {
				return err
			}
			st := tx.Stats()
			before := st.GetNodeCount()
			if _, err := writeDelivery(tx, &d); err != nil {
				return err
			}
			st = tx.Stats()
			nodes = int(st.GetNodeCount() - before)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return nodes
	}
	if n := rewrite(loaxa.DeliveryReceived); n != 0 {
		t.Errorf("a received delivery, its index entries unchanged, rewritten: %d index pages taken into the transaction, want 0", n)
	}
	if n := rewrite(loaxa.DeliveryStarted); n != 1 {
		t.Errorf("a started delivery rewritten: %d index pages taken into the transaction, want 1 (the open index's, to drop it)", n)
	}
	if err := db.view(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bucketOpenDeliveries).Get(nodeDeliveryKey(ann, occ, "n1")); v != nil {
			t.Errorf("a started delivery is still in the open index: %x", v)
		}
		if v := tx.Bucket(bucketNodeDeliveries).Get(nodeDeliveryKey(ann, occ, "n1")); string(v) != string(key) {
			t.Errorf("by-node entry %q, want %q", v, key)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := CheckFile(db.path); err != nil {
		t.Fatalf("store is inconsistent after the rewrites:\n%v", err)
	}
}
