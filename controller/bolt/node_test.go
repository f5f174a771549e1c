package bolt_test

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

func TestNodeService_CreateNode(t *testing.T) {
	db, clk := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	s := bolt.NewNodeService(db)
	ctx := context.Background()

	n := &loaxa.Node{ID: "n1", Name: "Chợ Hàng", Area: "hp", Lat: 20.84, Lon: 106.68, SecretHash: loaxa.HashSecret("s")}
	must(t, s.CreateNode(ctx, n))
	if n.Status.State != loaxa.NodeNever || !n.CreatedAt.Equal(clk.Now()) {
		t.Errorf("new node status %+v created %v; want state never at %v", n.Status, n.CreatedAt, clk.Now())
	}
	got, err := s.FindNodeByID(ctx, "n1")
	must(t, err)
	if fmt.Sprint(got) != fmt.Sprint(n) {
		t.Errorf("stored\n%+v\nwant\n%+v", got, n)
	}

	hash := loaxa.HashSecret("s")
	tests := []struct {
		name string
		node loaxa.Node
		code string
	}{
		{"duplicate id", loaxa.Node{ID: "n1", Area: "hp", SecretHash: hash}, loaxa.EConflict},
		{"unknown area", loaxa.Node{ID: "n2", Area: "nowhere", SecretHash: hash}, loaxa.EInvalid},
		{"no area", loaxa.Node{ID: "n2", SecretHash: hash}, loaxa.EInvalid},
		{"bad id", loaxa.Node{ID: "N/2", Area: "hp", SecretHash: hash}, loaxa.EInvalid},
		{"the broker's own client id", loaxa.Node{ID: "inline", Area: "hp", SecretHash: hash}, loaxa.EInvalid},
		{"the controller's broker account", loaxa.Node{ID: "loaxa-controller", Area: "hp", SecretHash: hash}, loaxa.EInvalid},
		{"the controller's publishing account", loaxa.Node{ID: "loaxa-controller-pub", Area: "hp", SecretHash: hash}, loaxa.EInvalid},
		{"short secret hash", loaxa.Node{ID: "n2", Area: "hp", SecretHash: []byte("short")}, loaxa.EInvalid},
		{"latitude out of range", loaxa.Node{ID: "n2", Area: "hp", Lat: 91, SecretHash: hash}, loaxa.EInvalid},
		{"longitude out of range", loaxa.Node{ID: "n2", Area: "hp", Lon: -181, SecretHash: hash}, loaxa.EInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := tt.node
			wantCode(t, s.CreateNode(ctx, &n), tt.code)
		})
	}
	if _, err := s.FindNodeByID(ctx, "n2"); loaxa.ErrorCode(err) != loaxa.ENotFound {
		t.Errorf("a failed create left node n2 behind: %v", err)
	}
}

func TestNodeService_FindNodes(t *testing.T) {
	db, _ := MustOpenDB(t)
	mustTree(t, db)
	for _, n := range [][2]string{
		{"n-hp", "hp"},
		{"n-ad-1", "hp.an-duong"},
		{"n-ll-1", "hp.an-duong.le-loi"},
		{"n-ll-2", "hp.an-duong.le-loi"},
		{"n-t1", "hp.an-duong.le-loi.t1"},
		{"n-ah", "hp.an-duong.an-hoa"},
		{"n-tn", "hp.thuy-nguyen"},
		{"n-hn", "hn"},
	} {
		mustNode(t, db, n[0], n[1])
	}
	s := bolt.NewNodeService(db)
	ctx := context.Background()
	for _, id := range []string{"n-ll-1", "n-tn"} {
		must(t, s.UpdateNodeStatus(ctx, id, func(st *loaxa.NodeStatus) { st.State = loaxa.NodeOnline }))
	}
	must(t, s.UpdateNodeStatus(ctx, "n-hn", func(st *loaxa.NodeStatus) { st.State = loaxa.NodeOffline }))

	tests := []struct {
		name   string
		filter loaxa.NodeFilter
		want   []string
		code   string
	}{
		{"all", loaxa.NodeFilter{}, []string{"n-ad-1", "n-ah", "n-hn", "n-hp", "n-ll-1", "n-ll-2", "n-t1", "n-tn"}, ""},
		{"within district", loaxa.NodeFilter{Within: "hp.an-duong"}, []string{"n-ad-1", "n-ah", "n-ll-1", "n-ll-2", "n-t1"}, ""},
		{"within commune", loaxa.NodeFilter{Within: "hp.an-duong.le-loi"}, []string{"n-ll-1", "n-ll-2", "n-t1"}, ""},
		{"within leaf", loaxa.NodeFilter{Within: "hp.an-duong.le-loi.t1"}, []string{"n-t1"}, ""},
		{"within unknown", loaxa.NodeFilter{Within: "nowhere"}, nil, loaxa.ENotFound},
		{"ids", loaxa.NodeFilter{IDs: []string{"n-tn", "n-hp", "unknown", "n-hp"}}, []string{"n-hp", "n-tn"}, ""},
		{"no ids", loaxa.NodeFilter{IDs: []string{}}, nil, ""},
		{"ids within", loaxa.NodeFilter{IDs: []string{"n-tn", "n-t1"}, Within: "hp.an-duong"}, []string{"n-t1"}, ""},
		{"online", loaxa.NodeFilter{State: loaxa.NodeOnline}, []string{"n-ll-1", "n-tn"}, ""},
		{"offline", loaxa.NodeFilter{State: loaxa.NodeOffline}, []string{"n-hn"}, ""},
		{"never", loaxa.NodeFilter{State: loaxa.NodeNever, Within: "hp.an-duong.le-loi"}, []string{"n-ll-2", "n-t1"}, ""},
		{"online within", loaxa.NodeFilter{State: loaxa.NodeOnline, Within: "hp.an-duong"}, []string{"n-ll-1"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes, err := s.FindNodes(ctx, tt.filter)
			wantCode(t, err, tt.code)
			var got []string
			for _, n := range nodes {
				got = append(got, n.ID)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("nodes %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNodeService_AuthenticateNode(t *testing.T) {
	db, _ := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	secret := mustNode(t, db, "n1", "hp")
	s := bolt.NewNodeService(db)
	ctx := context.Background()

	n, err := s.AuthenticateNode(ctx, "n1", secret)
	must(t, err)
	if n.ID != "n1" {
		t.Fatalf("authenticated %s", n.ID)
	}

	_, wrongSecret := s.AuthenticateNode(ctx, "n1", secret+"x")
	_, unknownNode := s.AuthenticateNode(ctx, "n9", secret)
	_, emptySecret := s.AuthenticateNode(ctx, "n1", "")
	wantCode(t, wrongSecret, loaxa.EUnauthorized)
	wantCode(t, unknownNode, loaxa.EUnauthorized)
	wantCode(t, emptySecret, loaxa.EUnauthorized)
	// The same answer for both, so a prober learns nothing about which
	// node ids exist.
	if loaxa.ErrorMessage(wrongSecret) != loaxa.ErrorMessage(unknownNode) {
		t.Errorf("messages differ: %q vs %q", loaxa.ErrorMessage(wrongSecret), loaxa.ErrorMessage(unknownNode))
	}
}

func TestNodeService_UpdateNodeStatus(t *testing.T) {
	db, _ := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	secret := mustNode(t, db, "n1", "hp")
	s := bolt.NewNodeService(db)
	ctx := context.Background()

	seen := time.Date(2025, 3, 1, 6, 0, 0, 0, time.UTC)
	must(t, s.UpdateNodeStatus(ctx, "n1", func(st *loaxa.NodeStatus) {
		st.State = loaxa.NodeOnline
		st.LastSeen = seen
		st.Playing = &protocol.Playing{Occurrence: "a000001@x", Priority: protocol.PriorityNormal}
	}))
	must(t, s.UpdateNodeStatus(ctx, "n1", func(st *loaxa.NodeStatus) { st.Outbox = 3 }))
	n, err := s.FindNodeByID(ctx, "n1")
	must(t, err)
	if n.Status.State != loaxa.NodeOnline || !n.Status.LastSeen.Equal(seen) || n.Status.Playing == nil || n.Status.Outbox != 3 {
		t.Errorf("status %+v", n.Status)
	}
	// The status write keeps the rest of the node, secret included.
	if _, err := s.AuthenticateNode(ctx, "n1", secret); err != nil {
		t.Errorf("secret lost by a status update: %v", err)
	}

	wantCode(t, s.UpdateNodeStatus(ctx, "n9", func(*loaxa.NodeStatus) {}), loaxa.ENotFound)
}

// TestNodeService_UpdateNodeStatus_Concurrent checks that concurrent
// read-modify-writes of one node lose no update.
func TestNodeService_UpdateNodeStatus_Concurrent(t *testing.T) {
	db, _ := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	mustNode(t, db, "n1", "hp")
	s := bolt.NewNodeService(db)
	const workers, each = 4, 25
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				if err := s.UpdateNodeStatus(context.Background(), "n1", func(st *loaxa.NodeStatus) { st.Rejected++ }); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	n, err := s.FindNodeByID(context.Background(), "n1")
	must(t, err)
	if n.Status.Rejected != workers*each {
		t.Errorf("counter %d after %d increments", n.Status.Rejected, workers*each)
	}
}

func BenchmarkUpdateNodeStatus(b *testing.B) {
	const nodes = 5000
	db, ids := seededDB(b, nodes)
	s := bolt.NewNodeService(db)
	now := time.Now()
	// The controller ingests with several workers (mqtt.Client.Workers).
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i = (i + 7919) % nodes
			err := s.UpdateNodeStatus(context.Background(), ids[i], func(st *loaxa.NodeStatus) {
				st.State = loaxa.NodeOnline
				st.LastSeen = now
				st.Outbox = i
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkFlushStatus is the other half of UpdateNodeStatus's cost: one
// flush writing the changed status of every one of 5000 nodes, as after
// an emergency round (per op: one flush of 5000 nodes). Besides the time
// it reports the process's CPU time per flush (getrusage), which the
// machine's other load moves less than the time.
func BenchmarkFlushStatus(b *testing.B) {
	now := time.Now()
	benchmarkFlushStatus(b, func(st *loaxa.NodeStatus, i int) {
		st.State, st.LastSeen, st.Outbox = loaxa.NodeOnline, now, i
	})
}

// BenchmarkFlushStatusBoards is BenchmarkFlushStatus with each status as
// a cluster on its own board reports it: its board's readings, what it
// plays, its keys, its disk and volume.
func BenchmarkFlushStatusBoards(b *testing.B) {
	now := time.Now()
	on, off, ohms, volts, temp, rssi := true, false, 7.9, 13.1, 41.5, -71
	disk, volume := int64(3<<30), 80
	benchmarkFlushStatus(b, func(st *loaxa.NodeStatus, i int) {
		st.State, st.LastSeen, st.Outbox = loaxa.NodeOnline, now, i
		st.Board = &protocol.Board{Amplifier: true, AmplifierCommand: &on, AmplifierFault: &off,
			SpeakerLine: protocol.LineOK, SpeakerOhms: &ohms, Mains: &on, BatteryVolts: &volts,
			Charging: &off, TemperatureC: &temp, DoorOpen: &off, RSSIDBm: &rssi, Link: "4g"}
		st.Playing = &protocol.Playing{Occurrence: "ev-1/0612", Content: "bulletin-0612", Since: now}
		st.Keys, st.DiskFreeBytes, st.Volume = []string{"k2026a", "k2026b"}, &disk, &volume
	})
}

// benchmarkFlushStatus runs BenchmarkFlushStatus with set changing each
// status before each flush (i counts the flushes).
func benchmarkFlushStatus(b *testing.B, set func(st *loaxa.NodeStatus, i int)) {
	const nodes = 5000
	db, ids := seededDB(b, nodes)
	s := bolt.NewNodeService(db)
	var cpu time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		for _, id := range ids {
			must(b, s.UpdateNodeStatus(context.Background(), id, func(st *loaxa.NodeStatus) { set(st, i) }))
		}
		cpu0 := cpuTime(b)
		b.StartTimer()
		must(b, bolt.FlushStatus(db))
		b.StopTimer()
		cpu += cpuTime(b) - cpu0
		b.StartTimer()
	}
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/flush")
}

// BenchmarkWriteDuringFlush measures how long a small write that comes
// just after a status flush began waits for the store: the record of an
// emergency sent while the statuses of 10,000 clusters that reconnected
// together are being written. write-wait-ms is that write's time from its
// call to its commit, flush-ms the flush's. chunk=all writes the flush in
// one transaction, as before DefaultStatusChunk.
func BenchmarkWriteDuringFlush(b *testing.B) {
	for _, chunk := range []int{1 << 30, 1000, 500, 250} {
		name := fmt.Sprintf("chunk=%d", chunk)
		if chunk == 1<<30 {
			name = "chunk=all"
		}
		b.Run(name, func(b *testing.B) {
			const nodes = 10000
			db, ids := seededDB(b, nodes)
			db.StatusChunk = chunk
			s := bolt.NewNodeService(db)
			areas := bolt.NewAreaService(db)
			ctx := context.Background()
			now := time.Now()
			var wait, flush time.Duration
			for i := range b.N {
				b.StopTimer()
				for _, id := range ids {
					must(b, s.UpdateNodeStatus(ctx, id, func(st *loaxa.NodeStatus) {
						st.State, st.LastSeen, st.Outbox = loaxa.NodeOnline, now, i
					}))
				}
				waited := make(chan time.Duration, 1)
				first := true
				bolt.OnFlushTransaction(db, func() error {
					if first {
						first = false
						go func() {
							t0 := time.Now()
							err := areas.CreateArea(ctx, &loaxa.Area{ID: fmt.Sprintf("w%d", i), Name: "Đông Hải 1", Parent: "hp"})
							if err != nil {
								b.Error(err)
							}
							waited <- time.Since(t0)
						}()
					}
					return nil
				})
				b.StartTimer()
				t0 := time.Now()
				must(b, bolt.FlushStatus(db))
				flush += time.Since(t0)
				wait += <-waited
				bolt.OnFlushTransaction(db, nil)
			}
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
			b.ReportMetric(ms(wait), "write-wait-ms")
			b.ReportMetric(ms(flush), "flush-ms")
		})
	}
}

// BenchmarkCheckActive compares the two ways to learn whether a node's
// credentials are active, as the ingest does for every node message.
func BenchmarkCheckActive(b *testing.B) {
	const nodes = 5000
	db, ids := seededDB(b, nodes)
	s := bolt.NewNodeService(db)
	ctx := context.Background()
	b.Run("FindNodeByID", func(b *testing.B) {
		for i := range b.N {
			n, err := s.FindNodeByID(ctx, ids[i%nodes])
			if err != nil || n.Credentials != loaxa.CredentialsActive {
				b.Fatal(err, n)
			}
		}
	})
	b.Run("NodeCredentials", func(b *testing.B) {
		for i := range b.N {
			c, err := s.NodeCredentials(ctx, ids[i%nodes])
			if err != nil || c != loaxa.CredentialsActive {
				b.Fatal(err, c)
			}
		}
	})
}

// seededDB opens a store with n nodes (n00000…) in area hp, seeded in one
// transaction: creating thousands of nodes one by one would dominate a
// benchmark's run time.
//
// The store has no periodic status flush (only FlushStatus, Snapshot and
// Close write statuses): one every 5 s could take part of the statuses a
// benchmark changed for its own flush, and run the hooks it set for it.
func seededDB(b *testing.B, n int) (*bolt.DB, []string) {
	b.Helper()
	db, _ := flushedOnRequest(b)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("n%05d", i)
	}
	must(b, bolt.SeedNodes(db, "hp", ids))
	return db, ids
}

// TestNodePresence: each existing node's area, whether it is online,
// when it was created, since when it is enrolled (none while it waits for its code), from
// memory, current with status changes, nodes created since the store was
// opened and a code redeemed, and after a reopen; unknown ids are left
// out. An emergency tells by it the clusters it targets from those not
// put up yet.
func TestNodePresence(t *testing.T) {
	ctx := context.Background()
	db, clk := MustOpenDB(t)
	mustArea(t, db, "31", "")
	mustArea(t, db, "318", "31")
	created := clk.Now()
	mustNode(t, db, "a", "31")
	mustNode(t, db, "b", "318")
	s := bolt.NewNodeService(db)
	must(t, s.CreateNodes(ctx, []*loaxa.Node{{ID: "c", Area: "318"}, {ID: "d", Area: "318"}}))
	must(t, s.UpdateNodeStatus(ctx, "b", func(st *loaxa.NodeStatus) {
		st.State = loaxa.NodeOnline
		st.Faults = []loaxa.Fault{{Kind: loaxa.AlarmDoorOpen, Since: created}, {Kind: loaxa.AlarmSpeakerOpen, Since: created, Detail: "no load on the speaker line"}}
	}))
	want := map[string]loaxa.NodePresence{"a": {Area: "31", CreatedAt: created, EnrolledAt: created},
		"b": {Area: "318", Online: true, CreatedAt: created, EnrolledAt: created},
		"c": {Area: "318", CreatedAt: created}, "d": {Area: "318", CreatedAt: created}}
	ids := []string{"a", "b", "c", "d"}
	got, err := s.NodePresence(ctx, append(ids, "no-such-node"))
	must(t, err)
	samePresence := func(a, b loaxa.NodePresence) bool { return reflect.DeepEqual(a, b) }
	if !maps.EqualFunc(got, want, samePresence) {
		t.Errorf("NodePresence = %v, want %v", got, want)
	}
	clk.Advance(time.Hour)
	code := loaxa.HashEnrolmentCode("CODE-C")
	must(t, s.CreateEnrolment(ctx, &loaxa.Enrolment{CodeHash: code, Node: "c", Expires: clk.Now().Add(time.Hour)}))
	_, err = s.RedeemEnrolment(ctx, code, loaxa.NodeSecret{Hash: loaxa.HashSecret("s"), BrokerHash: "x"})
	must(t, err)
	want["c"] = loaxa.NodePresence{Area: "318", CreatedAt: created, EnrolledAt: clk.Now()}
	if got, err := s.NodePresence(ctx, ids); err != nil || !maps.EqualFunc(got, want, samePresence) {
		t.Errorf("after c redeemed its code: %v, %v; want %v", got, err, want)
	}
	must(t, db.Close())
	must(t, db.Open())
	for id, p := range want {
		p.CreatedAt, p.EnrolledAt = p.CreatedAt.Round(0), p.EnrolledAt.Round(0) // as read back from the file
		want[id] = p
	}
	if got, err := s.NodePresence(ctx, ids); err != nil || !maps.EqualFunc(got, want, samePresence) {
		t.Errorf("after a reopen: %v, %v; want %v", got, err, want)
	}
}

// TestNodeIDsWithin: the ids under an area's subtree, sorted, from the
// by-area index, including nodes created since the store was opened; an
// unknown area is ENotFound and no area EInvalid.
func TestNodeIDsWithin(t *testing.T) {
	ctx := context.Background()
	db, _ := MustOpenDB(t)
	mustArea(t, db, "31", "")
	mustArea(t, db, "318", "31")
	mustArea(t, db, "31801", "318")
	mustArea(t, db, "32", "")
	mustNode(t, db, "c", "31801")
	mustNode(t, db, "a", "31")
	mustNode(t, db, "b", "318")
	mustNode(t, db, "d", "32")
	s := bolt.NewNodeService(db)
	for area, want := range map[string][]string{"31": {"a", "b", "c"}, "318": {"b", "c"}, "31801": {"c"}, "32": {"d"}} {
		got, err := s.NodeIDsWithin(ctx, area)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("NodeIDsWithin(%s) = %v, %v; want %v", area, got, err, want)
		}
	}
	if _, err := s.NodeIDsWithin(ctx, "99"); loaxa.ErrorCode(err) != loaxa.ENotFound {
		t.Errorf("an unknown area: %v, want ENotFound", err)
	}
	if _, err := s.NodeIDsWithin(ctx, ""); loaxa.ErrorCode(err) != loaxa.EInvalid {
		t.Errorf("no area: %v, want EInvalid", err)
	}
}

// BenchmarkNodeIDsWithin: what an emergency to an area of 10,000 nodes
// reads to find its targets: the whole records, or the ids alone.
func BenchmarkNodeIDsWithin(b *testing.B) {
	const nodes = 10000
	db, _ := seededDB(b, nodes)
	s := bolt.NewNodeService(db)
	ctx := context.Background()
	b.Run("FindNodes", func(b *testing.B) {
		for b.Loop() {
			if ns, err := s.FindNodes(ctx, loaxa.NodeFilter{Within: "hp"}); err != nil || len(ns) != nodes {
				b.Fatal(err, len(ns))
			}
		}
	})
	b.Run("NodeIDsWithin", func(b *testing.B) {
		for b.Loop() {
			if ids, err := s.NodeIDsWithin(ctx, "hp"); err != nil || len(ids) != nodes {
				b.Fatal(err, len(ids))
			}
		}
	})
}

// BenchmarkNodePresence compares what an emergency's report reads about
// its 10,000 nodes (per op: all of them): their records, or the table in
// memory.
func BenchmarkNodePresence(b *testing.B) {
	const nodes = 10000
	db, ids := seededDB(b, nodes)
	s := bolt.NewNodeService(db)
	ctx := context.Background()
	b.Run("FindNodes", func(b *testing.B) {
		for b.Loop() {
			if ns, err := s.FindNodes(ctx, loaxa.NodeFilter{IDs: ids}); err != nil || len(ns) != nodes {
				b.Fatal(err, len(ns))
			}
		}
	})
	b.Run("NodePresence", func(b *testing.B) {
		for b.Loop() {
			if ns, err := s.NodePresence(ctx, ids); err != nil || len(ns) != nodes {
				b.Fatal(err, len(ns))
			}
		}
	})
}

// TestUpdateNodePlace: a cluster moved to the neighbouring commune is
// found under it, and no longer under its old one, by every reader of the
// by-area index and the in-memory area (NodeIDsWithin, FindNodes,
// NodePresence, the area its events are recorded under), after a reopen
// too; its name and position are corrected with it, its status and
// secret kept. An unknown area or a bad position changes nothing.
func TestUpdateNodePlace(t *testing.T) {
	ctx := context.Background()
	db, _ := MustOpenDB(t)
	mustArea(t, db, "31", "")
	mustArea(t, db, "31801", "31")
	mustArea(t, db, "31802", "31")
	s := bolt.NewNodeService(db)
	must(t, s.CreateNode(ctx, &loaxa.Node{ID: "a", Name: "Cho Hang", Area: "31801", Lat: 20.1, Lon: 106.1, SecretHash: loaxa.HashSecret("s")}))
	mustNode(t, db, "b", "31801")
	must(t, s.UpdateNodeStatus(ctx, "a", func(st *loaxa.NodeStatus) { st.State = loaxa.NodeOnline }))

	for name, p := range map[string]loaxa.NodePlace{
		"unknown area": {Name: "x", Area: "99"},
		"no area":      {Name: "x"},
		"latitude":     {Name: "x", Area: "31802", Lat: 91},
	} {
		if _, _, err := s.UpdateNodePlace(ctx, "a", p); loaxa.ErrorCode(err) != loaxa.EInvalid {
			t.Errorf("%s: %v, want EInvalid", name, err)
		}
	}
	if _, _, err := s.UpdateNodePlace(ctx, "nobody", loaxa.NodePlace{Area: "31802"}); loaxa.ErrorCode(err) != loaxa.ENotFound {
		t.Errorf("an unknown node: %v, want ENotFound", err)
	}
	// Checked against 31802 by a caller that found it there: it is not.
	if _, _, err := s.UpdateNodePlace(ctx, "a", loaxa.NodePlace{Name: "x", Area: "31801", From: "31802"}); loaxa.ErrorCode(err) != loaxa.EConflict {
		t.Errorf("a node no longer where the caller found it: %v, want EConflict", err)
	}

	before, after, err := s.UpdateNodePlace(ctx, "a", loaxa.NodePlace{Name: "Chợ Hàng", Lat: 20.84, Lon: 106.68, Area: "31802"})
	must(t, err)
	if before.Area != "31801" || before.Name != "Cho Hang" || after.Area != "31802" || after.Name != "Chợ Hàng" || after.Lat != 20.84 || after.Lon != 106.68 {
		t.Errorf("before %+v, after %+v", before, after)
	}
	if after.MovedAt.IsZero() || !before.MovedAt.IsZero() {
		t.Errorf("the move's time: before %v, after %v; want it set by the move", before.MovedAt, after.MovedAt)
	}
	// Renamed where it stands: not moved.
	if _, renamed, err := s.UpdateNodePlace(ctx, "b", loaxa.NodePlace{Name: "Đình", Area: "31801"}); err != nil || !renamed.MovedAt.IsZero() {
		t.Errorf("b renamed in its area: %+v, %v; want no move time", renamed, err)
	}
	if after.Status.State != loaxa.NodeOnline || after.Credentials != loaxa.CredentialsActive {
		t.Errorf("the move lost the node's status or credentials: %+v", after)
	}
	if _, err := s.AuthenticateNode(ctx, "a", "s"); err != nil {
		t.Errorf("the node's secret after the move: %v", err)
	}
	events := bolt.NewEventService(db)
	_, _, err = events.RecordEvents(ctx, "a", batch("e1", 1), t0)
	must(t, err)

	check := func(when string) {
		t.Helper()
		for area, want := range map[string][]string{"31801": {"b"}, "31802": {"a"}, "31": {"a", "b"}} {
			if got, err := s.NodeIDsWithin(ctx, area); err != nil || !slices.Equal(got, want) {
				t.Errorf("%s: NodeIDsWithin(%s) = %v, %v; want %v", when, area, got, err, want)
			}
			ns, err := s.FindNodes(ctx, loaxa.NodeFilter{Within: area})
			must(t, err)
			var ids []string
			for _, n := range ns {
				ids = append(ids, n.ID)
			}
			if !slices.Equal(ids, want) {
				t.Errorf("%s: FindNodes(within %s) = %v; want %v", when, area, ids, want)
			}
		}
		if p, err := s.NodePresence(ctx, []string{"a", "b"}); err != nil || p["a"].Area != "31802" || !p["a"].MovedAt.Equal(after.MovedAt) || !p["b"].MovedAt.IsZero() {
			t.Errorf("%s: NodePresence(a, b) = %v, %v; want a in area 31802, moved at %v, b never moved", when, p, err, after.MovedAt)
		}
		n, err := s.FindNodeByID(ctx, "a")
		if err != nil || n.Area != "31802" || n.Name != "Chợ Hàng" || !n.MovedAt.Equal(after.MovedAt) {
			t.Errorf("%s: FindNodeByID(a) = %+v, %v", when, n, err)
		}
		es, err := events.FindEvents(ctx, loaxa.EventFilter{Within: "31802"})
		if err != nil || len(es) != 1 || es[0].Area != "31802" {
			t.Errorf("%s: events within the new area: %v, %v; want the one recorded after the move", when, es, err)
		}
	}
	check("after the move")
	must(t, db.Close())
	must(t, db.Open())
	check("after a reopen")
}
