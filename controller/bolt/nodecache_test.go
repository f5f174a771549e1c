package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// fill sets every exported field reachable from v to a non-zero value:
// pointers to new values, slices to one element.
func fill(t *testing.T, v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem())
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(t, v.Index(0))
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(t, v.Field(i))
			}
		}
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(7)
	case reflect.Uint, reflect.Uint64, reflect.Uint32, reflect.Uint8:
		v.SetUint(7)
	case reflect.Float64:
		v.SetFloat(1.5)
	default:
		t.Fatalf("fill: %s (%s) not handled: teach fill and cloneNode about it", v.Type(), v.Kind())
	}
}

// shared reports the path of the first pointer or slice that a and b share.
func shared(a, b reflect.Value, path string) string {
	switch a.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map:
		if !a.IsNil() && a.UnsafePointer() == b.UnsafePointer() {
			return path
		}
		if a.Kind() == reflect.Pointer && !a.IsNil() {
			return shared(a.Elem(), b.Elem(), path)
		}
		if a.Kind() == reflect.Slice {
			for i := range a.Len() {
				if p := shared(a.Index(i), b.Index(i), path+"[]"); p != "" {
					return p
				}
			}
		}
	case reflect.Struct:
		for i := range a.NumField() {
			if a.Type().Field(i).IsExported() {
				if p := shared(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name); p != "" {
					return p
				}
			}
		}
	}
	return ""
}

// TestCloneNodeSharesNothing: a clone of a node with every field set is
// equal to it and shares no slice or pointed-to value with it, so that
// the decode cache never hands out what another caller may change. A
// field added to loaxa.Node that cloneNode does not copy fails it.
func TestCloneNodeSharesNothing(t *testing.T) {
	var n loaxa.Node
	fill(t, reflect.ValueOf(&n).Elem())
	c := cloneNode(&n)
	if !reflect.DeepEqual(&n, c) {
		t.Fatalf("clone differs:\n%+v\n%+v", n, *c)
	}
	if p := shared(reflect.ValueOf(n), reflect.ValueOf(*c), "Node"); p != "" {
		t.Errorf("the clone shares %s with the original", p)
	}
}

// TestDecodeNodeCache: the same bytes decode to equal nodes that callers
// may change without changing the next decoding; other bytes under the
// same key decode afresh.
func TestDecodeNodeCache(t *testing.T) {
	on := true
	n := &loaxa.Node{ID: "cache-n1", Area: "31", Credentials: loaxa.CredentialsActive, Status: loaxa.NodeStatus{
		State: loaxa.NodeOnline, Faults: []loaxa.Fault{{Kind: "mains"}}, Board: &protocol.Board{Mains: &on}, Keys: []string{"k1"}}}
	raw, err := json.Marshal(nodeRecord{n, []byte("hash"), "bh"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := decodeNode([]byte(n.ID), raw)
	if err != nil {
		t.Fatal(err)
	}
	a.Status.Faults[0].Kind = "changed"
	*a.Status.Board.Mains = false
	a.SecretHash[0] = 'X'
	a.Status.State = loaxa.NodeOffline
	b, err := decodeNode([]byte(n.ID), raw)
	if err != nil {
		t.Fatal(err)
	}
	if b == a || b.Status.Faults[0].Kind != "mains" || !*b.Status.Board.Mains || string(b.SecretHash) != "hash" || b.Status.State != loaxa.NodeOnline {
		t.Errorf("second decoding %+v shows the first caller's changes", b.Status)
	}
	n.Status.State = loaxa.NodeOffline
	raw2, err := json.Marshal(nodeRecord{n, []byte("hash"), "bh"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := decodeNode([]byte(n.ID), raw2)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status.State != loaxa.NodeOffline {
		t.Errorf("new bytes decoded as state %q, want offline", c.Status.State)
	}
}

// TestFlushStatusRemembersWhatItWrote: a status flush leaves in the node
// cache the record it wrote with the node it encoded, so that the next
// flush and other readers copy the node instead of decoding it. The
// status is as the ingest sets it (times with a monotonic reading and a
// named zone, which JSON does not keep; an empty list): the cached node
// encodes to the written bytes, and a later write of the node stores the
// same bytes whether it read the node from the cache or decoded it.
func TestFlushStatusRemembersWhatItWrote(t *testing.T) {
	ctx := context.Background()
	db := NewDB(filepath.Join(t.TempDir(), "loaxa.db"))
	db.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	db.Now = func() time.Time { return at }
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := NewAreaService(db).CreateArea(ctx, &loaxa.Area{ID: "31", Name: "Hải Phòng"}); err != nil {
		t.Fatal(err)
	}
	s := NewNodeService(db)
	id := "flush-n1"
	if err := s.CreateNode(ctx, &loaxa.Node{ID: id, Name: "Cụm loa 1", Area: "31", SecretHash: loaxa.HashSecret("s")}); err != nil {
		t.Fatal(err)
	}
	ict := time.FixedZone("ICT", 7*3600)
	now := time.Now() // with its monotonic reading
	on := true
	if err := s.UpdateNodeStatus(ctx, id, func(st *loaxa.NodeStatus) {
		st.State, st.Since, st.LastSeen = loaxa.NodeOnline, now, now.In(ict)
		st.ContentMissing = []string{}
		st.Board = &protocol.Board{Mains: &on}
		st.Faults = []loaxa.Fault{{Kind: loaxa.AlarmDoorOpen, Since: now.In(ict)}}
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.flushStatus(); err != nil {
		t.Fatal(err)
	}
	stored := func() []byte {
		var raw []byte
		if err := db.view(func(tx *bbolt.Tx) error {
			raw = bytes.Clone(tx.Bucket(bucketNodes).Get([]byte(id)))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return raw
	}
	raw := stored()
	cached := cachedDecode([]byte(id), raw)
	if cached == nil {
		t.Fatal("after a flush the node cache does not hold the record written")
	}
	again, err := json.Marshal(nodeRecord{cached, cached.SecretHash, cached.BrokerHash})
	if err != nil || !bytes.Equal(again, raw) {
		t.Fatalf("the cached node encodes to\n%s\nnot the record written\n%s\n(%v)", again, raw, err)
	}
	// The status in memory changes on; the cached node does not.
	if err := s.UpdateNodeStatus(ctx, id, func(st *loaxa.NodeStatus) { *st.Board.Mains = false }); err != nil {
		t.Fatal(err)
	}
	if c := cachedDecode([]byte(id), raw); c == nil || !*c.Status.Board.Mains {
		t.Fatalf("the cached node shares the status in memory: %+v", c)
	}
	// A write of the node read from the cache, then the same write of the
	// node decoded from the same record.
	volume := 5
	setVolume := func(st *loaxa.NodeSettings) error { st.Volume = &volume; return nil }
	if _, err := s.UpdateNodeSettings(ctx, id, setVolume); err != nil {
		t.Fatal(err)
	}
	fromCache := stored()
	if err := db.update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketNodes).Put([]byte(id), raw) }); err != nil {
		t.Fatal(err)
	}
	nodeCache.Lock()
	delete(nodeCache.m, id)
	nodeCache.Unlock()
	if _, err := s.UpdateNodeSettings(ctx, id, setVolume); err != nil {
		t.Fatal(err)
	}
	if decoded := stored(); !bytes.Equal(fromCache, decoded) {
		t.Errorf("a write of the node read from the cache stored\n%s\nand of the node decoded\n%s", fromCache, decoded)
	}
}

// TestFlushStatusLeavesCachedNodesAlone: the status flush builds the node
// it writes from the cached one without copying it deeply (nodeToFlush),
// so it must change nothing a cached node holds: the node cached before a
// flush is as it was after it, while readers copy cached nodes the whole
// time (run with -race, which sees a write into a node a reader copies).
func TestFlushStatusLeavesCachedNodesAlone(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	if err := NewAreaService(db).CreateArea(ctx, &loaxa.Area{ID: "31", Name: "Hải Phòng"}); err != nil {
		t.Fatal(err)
	}
	s := NewNodeService(db)
	id := "flush-shared-n1"
	if err := s.CreateNode(ctx, &loaxa.Node{ID: id, Name: "Cụm loa 1", Area: "31", SecretHash: loaxa.HashSecret("s")}); err != nil {
		t.Fatal(err)
	}
	volume := 70
	if _, err := s.UpdateNodeSettings(ctx, id, func(st *loaxa.NodeSettings) error { st.Volume = &volume; return nil }); err != nil {
		t.Fatal(err)
	}
	setStatus := func(i int) {
		t.Helper()
		on := i%2 == 0
		if err := s.UpdateNodeStatus(ctx, id, func(st *loaxa.NodeStatus) {
			st.State, st.Outbox = loaxa.NodeOnline, i
			st.Board = &protocol.Board{Mains: &on}
			st.Keys = []string{fmt.Sprint("k", i)}
		}); err != nil {
			t.Fatal(err)
		}
	}
	cachedNow := func() *loaxa.Node {
		t.Helper()
		var n *loaxa.Node
		if err := db.view(func(tx *bbolt.Tx) error {
			n = cachedShared([]byte(id), tx.Bucket(bucketNodes).Get([]byte(id)))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if n == nil {
			t.Fatal("after a flush the node cache does not hold the record written")
		}
		return n
	}
	setStatus(0)
	if err := db.flushStatus(); err != nil {
		t.Fatal(err)
	}
	before := cachedNow()
	want := cloneNode(before)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.FindNodeByID(ctx, id); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for i := 1; i <= 20; i++ {
		setStatus(i)
		if err := db.flushStatus(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if !reflect.DeepEqual(before, want) {
		t.Errorf("the node cached before the flushes changed:\n%+v\nwas\n%+v", before.Status, want.Status)
	}
	// A reader that read the record before a flush's commit may have
	// cached that older record since: a flush after the readers stopped.
	setStatus(21)
	if err := db.flushStatus(); err != nil {
		t.Fatal(err)
	}
	after := cachedNow()
	if after.Status.Outbox != 21 || string(after.SecretHash) != string(want.SecretHash) || after.Settings.Volume == nil || *after.Settings.Volume != volume {
		t.Errorf("the node cached after the flushes: outbox %d, secret hash %x, settings %+v", after.Status.Outbox, after.SecretHash, after.Settings)
	}
}
