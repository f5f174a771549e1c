package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"loaxa.vn/e2e/rig"
	"net/url"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/internal/mosquittotest"
	"loaxa.vn/node/agent"
	"loaxa.vn/protocol"
)

// An attacker who can publish anything on the broker (here a Mosquitto that
// lets anonymous clients in, as a compromised broker would) tries to make a
// cluster play: a schedule signed with the wrong key, a genuinely signed but
// expired one, and a replay of a genuine schedule that the controller has
// since replaced. The node must play nothing and report nothing as done.
func TestNodeRefusesForgedExpiredAndReplayedMessages(t *testing.T) {
	t.Parallel()
	b := mosquittotest.Start(t, mosquittotest.Options{AllowAnonymous: true})
	c := rig.StartController(t, b.URL())
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	cr := c.CreateNode("tt-01", "31")
	n := rig.StartNode(t, cr, rig.NodeOptions{})
	rig.Eventually(t, 15*time.Second, "node online", func() bool { return c.Node("tt-01").Status.State == loaxa.NodeOnline })
	ct := c.Upload("canh-bao.wav", rig.ToneWAV(880, 800*time.Millisecond, 16000, 1))

	topics := protocol.NewTopics("")
	desiredTopic := topics.Node("tt-01", protocol.ChanDesired)
	rogue := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).SetClientID("rogue"))
	if tok := rogue.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("rogue connect: %v", tok.Error())
	}
	defer rogue.Disconnect(100)
	var mu sync.Mutex
	var captured [][]byte
	rogue.Subscribe(desiredTopic, 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		captured = append(captured, append([]byte(nil), m.Payload()...))
		mu.Unlock()
	}).WaitTimeout(10 * time.Second)

	// A genuine schedule the attacker records, then the officer cancels.
	genuineStart := time.Now().Add(20 * time.Second).Truncate(time.Millisecond)
	ann := c.Announce(ct.ID, []string{"31"}, nil, genuineStart)
	rig.Eventually(t, 10*time.Second, "node received the genuine schedule and its audio", func() bool {
		st := n.Agent.Status()
		return st.DesiredVersion >= 1 && len(st.ContentMissing) == 0 && len(c.Deliveries(ann.ID)) == 1 && c.Deliveries(ann.ID)[0].State == loaxa.DeliveryReceived
	})
	mu.Lock()
	if len(captured) == 0 {
		mu.Unlock()
		t.Fatal("rogue captured no desired state")
	}
	genuine := captured[len(captured)-1]
	mu.Unlock()
	c.MustDo("POST", "/api/v1/announcements/"+ann.ID+"/cancel", nil, nil)
	var running uint64
	rig.Eventually(t, 10*time.Second, "node runs the schedule without the cancelled bulletin", func() bool {
		d, err := n.DB.Desired()
		if err != nil {
			t.Fatal(err)
		}
		running = d.Version
		return len(d.Occurrences) == 0
	})

	forged := func(key ed25519.PrivateKey, now func() time.Time, ttl time.Duration, version uint64, occ string) []byte {
		t.Helper()
		start := time.Now().Add(2 * time.Second)
		d := &protocol.DesiredState{
			Node: "tt-01", Version: version, Areas: []string{"31"}, Generated: now(),
			Occurrences: []protocol.Occurrence{{ID: occ, Announcement: "x", Content: ct.ID, Priority: protocol.PriorityEmergency, Start: start, DurationMS: ct.DurationMS}},
			Content:     []protocol.ContentRef{{ID: ct.ID, Size: ct.Size, DurationMS: ct.DurationMS, Path: "/api/v1/content/" + ct.ID + "/audio"}},
		}
		raw, err := protocol.NewSigner("controller", key, 0, now).Seal(protocol.TypeDesired, "node/tt-01", d, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	_, wrongKey, _ := ed25519.GenerateKey(rand.Reader)
	realKey, err := c.App.DB.SigningKey()
	if err != nil {
		t.Fatal(err)
	}
	before := n.Agent.Status().Rejected
	attacks := map[string][]byte{
		"wrong-key": forged(wrongKey, time.Now, time.Hour, 1000, "forged@wrong-key"),
		"expired":   forged(realKey, func() time.Time { return time.Now().Add(-2 * time.Hour) }, time.Hour, 1001, "forged@expired"),
		"replay":    genuine,
	}
	for name, raw := range attacks {
		if tok := rogue.Publish(desiredTopic, 1, false, raw); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", name, tok.Error())
		}
	}
	rig.Eventually(t, 10*time.Second, "wrong-key and expired schedules counted as rejected", func() bool {
		return n.Agent.Status().Rejected >= before+2
	})
	// Let every attacked start instant (and the genuine, cancelled one) pass.
	time.Sleep(time.Until(genuineStart.Add(2 * time.Second)))

	if v := n.Agent.Status().DesiredVersion; v != running {
		t.Errorf("node switched from desired version %d to %d", running, v)
	}
	progress, err := n.DB.Progress()
	if err != nil {
		t.Fatal(err)
	}
	for occ, p := range progress {
		if occ != loaxa.OccurrenceID(ann.ID, genuineStart) || p.Phase != agent.PhaseReceived {
			t.Errorf("node recorded %s for %s", p.Phase, occ)
		}
	}
	for _, e := range c.Events(url.Values{"node": {"tt-01"}}) {
		// Only plays count: the daily self-test (03:00 in Hải Phòng) may
		// fall within the test.
		if e.Occurrence == "" {
			continue
		}
		if e.Type != protocol.EventReceived && e.Type != protocol.EventContentReady {
			t.Errorf("node reported %s for %s", e.Type, e.Occurrence)
		}
	}
}
