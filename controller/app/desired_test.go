package app

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/health"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/mqtt"
	"loaxa.vn/controller/schedule"
	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

// dropHook makes the embedded broker swallow the controller's first drops
// publishes on topic: nothing retained or delivered, as a broker that
// never got to them. Over TCP the controller gets no acknowledgement;
// in-process, Publish returns the rejection.
type dropHook struct {
	mochi.HookBase
	topic string
	drops int32
	seen  atomic.Int32
}

func (h *dropHook) ID() string { return "test-drop" }

func (h *dropHook) Provides(b byte) bool { return b == mochi.OnPublish }

func (h *dropHook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if (cl.Net.Inline || string(cl.Properties.Username) == mqtt.ControllerUsername) && pk.TopicName == h.topic {
		if h.seen.Add(1) <= h.drops {
			return pk, packets.ErrRejectPacket
		}
	}
	return pk, nil
}

// A desired state the broker did not accept reaches the node's topic
// anyway: the scheduler publishes it again after RetryMin (on the fake
// clock, well before its 30 s pass), raises the node's
// desired-undelivered alarm once it has waited AlarmAfter and ends it on
// delivery. Real store, embedded broker, controller client (in-process,
// as in the controller, and over TCP, as with an external broker) and a
// node subscribed with its own credentials.
func TestUndeliveredDesiredStateReachesTheNode(t *testing.T) {
	t.Run("inline", func(t *testing.T) { testUndeliveredDesiredStateReachesTheNode(t, true) })
	t.Run("tcp", func(t *testing.T) { testUndeliveredDesiredStateReachesTheNode(t, false) })
}

func testUndeliveredDesiredStateReachesTheNode(t *testing.T, inline bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	t0 := time.Date(2026, 11, 29, 5, 0, 0, 0, time.UTC)
	fc := clock.NewFake(t0)
	db := bolt.NewDB(t.TempDir() + "/loaxa.db")
	db.Now = fc.Now
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	areas, nodes, alarms := bolt.NewAreaService(db), bolt.NewNodeService(db), bolt.NewAlarmService(db)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(areas.CreateArea(ctx, &loaxa.Area{ID: "31", Name: "Hải Phòng"}))
	must(nodes.CreateNode(ctx, &loaxa.Node{ID: "tt-01", Name: "tt-01", Area: "31", SecretHash: loaxa.HashSecret("secret-tt-01")}))

	topics := protocol.NewTopics("")
	broker := mqtt.NewBroker()
	broker.Addr, broker.NodeService, broker.AreaService, broker.Logger = "127.0.0.1:0", nodes, areas, log
	must(broker.Open())
	defer broker.Close()
	desiredTopic := topics.Node("tt-01", protocol.ChanDesired)
	drop := &dropHook{topic: desiredTopic, drops: 2}
	must(broker.AddHook(drop))

	key, err := db.SigningKey()
	must(err)
	client := mqtt.NewClient()
	if inline {
		client.Embedded = broker
	} else {
		client.BrokerURL = broker.URL()
		client.Username, client.Password = mqtt.ControllerUsername, broker.ControllerSecret
	}
	client.Signer = protocol.NewSigner("controller", key, 0, nil)
	client.NodeService, client.EventService = nodes, bolt.NewEventService(db)
	client.Logger = log
	client.PublishTimeout = 300 * time.Millisecond
	must(client.Open())
	defer client.Close()
	must(client.WaitConnected(ctx))

	// The node, subscribed to its desired topic.
	var mu sync.Mutex
	var versions []uint64
	node := paho.NewClient(paho.NewClientOptions().AddBroker(broker.URL()).SetClientID("tt-01").
		SetUsername("tt-01").SetPassword("secret-tt-01").SetAutoReconnect(false))
	if tok := node.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("node connect: %v", tok.Error())
	}
	defer node.Disconnect(50)
	tok := node.Subscribe(desiredTopic, 1, func(_ paho.Client, m paho.Message) {
		env, err := protocol.Parse(m.Payload())
		var d protocol.DesiredState
		if err == nil {
			err = env.Decode(&d)
		}
		if err != nil {
			t.Errorf("desired state on the node's topic: %v", err)
			return
		}
		mu.Lock()
		versions = append(versions, d.Version)
		mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("node subscribe: %v", tok.Error())
	}
	received := func() []uint64 {
		mu.Lock()
		defer mu.Unlock()
		return append([]uint64(nil), versions...)
	}

	monitor := health.NewMonitor()
	monitor.Clock, monitor.Nodes, monitor.Alarms, monitor.Tests, monitor.Logger = fc, nodes, alarms, alarms, log
	must(monitor.Open(ctx))

	s := schedule.NewScheduler()
	s.AreaService, s.NodeService = areas, nodes
	s.AnnouncementService, s.ContentService = bolt.NewAnnouncementService(db), bolt.NewContentService(db)
	s.DeliveryService, s.DesiredService = bolt.NewDeliveryService(db), bolt.NewDesiredService(db)
	s.Messenger, s.Alarms, s.Clock, s.Logger = client, monitor, fc, log
	s.AlarmAfter = time.Second
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	defer func() {
		stop()
		must(<-done)
	}()

	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	undelivered := func(want int) func() bool {
		return func() bool { n, _ := s.Undelivered(); return n == want && fc.Timers() == 1 }
	}
	openAlarms := func() []*loaxa.Alarm {
		as, err := alarms.FindAlarms(ctx, loaxa.AlarmFilter{Node: "tt-01", Kind: loaxa.AlarmDesiredUndelivered})
		must(err)
		return as
	}

	// The first pass: dropped (over TCP, not acknowledged within 300 ms).
	waitUntil("the first publish to fail", undelivered(1))
	if got := received(); len(got) != 0 {
		t.Fatalf("node received %v from a publish the broker dropped", got)
	}
	// The first retry, a second later: dropped too; it has now waited
	// AlarmAfter, so the alarm opens.
	fc.Advance(time.Second)
	waitUntil("the first retry to fail", func() bool { return drop.seen.Load() == 2 && undelivered(1)() })
	waitUntil("the alarm", func() bool { return len(openAlarms()) == 1 })
	if a := openAlarms()[0]; !a.Open() || a.Severity != loaxa.SeverityWarning || !a.Start.Equal(t0) {
		t.Fatalf("alarm %+v, want an open warning since %v", a, t0)
	} else if a.Facts.DesiredVersion == 0 || a.Facts.Attempts != 2 || a.Facts.Error == "" {
		t.Errorf("alarm facts %+v, want the version, 2 attempts and the broker's error", a.Facts)
	}
	// The second retry, 2 s later: accepted, on the node's topic.
	fc.Advance(2 * time.Second)
	waitUntil("the desired state on the node's topic", func() bool { return len(received()) > 0 })
	if got := received(); got[0] != 1 {
		t.Fatalf("node received versions %v, want 1", got)
	}
	waitUntil("the retry list to empty", undelivered(0))
	waitUntil("the publish recorded", func() bool {
		rec, err := s.DesiredService.FindDesired(ctx, "tt-01")
		must(err)
		return rec.Published.Equal(t0.Add(3 * time.Second))
	})
	waitUntil("the alarm to end", func() bool { return !openAlarms()[0].Open() })
}
