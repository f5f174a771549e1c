package e2e

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/mqtt"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/internal/clock"
	"loaxa.vn/internal/mosquittotest"
	"loaxa.vn/internal/syncbuf"
	"loaxa.vn/protocol"
)

// The adversarial suite runs against every broker loaxa supports: the
// embedded one (mochi-mqtt with loaxa's auth hook) and a real Mosquitto
// configured with the files the controller exports. An attacker holds the
// valid credentials of one node ("ke-xau", in commune 12346) and goes
// after another ("nan-nhan", in commune 12350 of another district).

func TestAdversaryEmbeddedBroker(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	runAdversary(t, &brokerUnderTest{
		c:    c,
		url:  c.App.Broker.URL(),
		spy:  [2]string{mqtt.ControllerUsername, c.App.Broker.ControllerSecret},
		sync: func() {},
	})
}

func TestAdversaryMosquitto(t *testing.T) {
	t.Parallel()
	controllerPass, spyPass := loaxa.NewSecret(), loaxa.NewSecret()
	// The spy is a separate account: with use_username_as_clientid, a
	// second connection as the controller would take over its session.
	spyACL := "\nuser spy\ntopic readwrite loa/v1/#\ntopic readwrite test/#\n"
	b := mosquittotest.Start(t, mosquittotest.Options{
		Users:  map[string]string{mqtt.ControllerUsername: controllerPass, "spy": spyPass},
		ACL:    "user " + mqtt.ControllerUsername + "\ntopic readwrite loa/v1/#\n" + spyACL,
		Config: "use_username_as_clientid true\n",
	})
	u := url.URL{Scheme: "tcp", Host: b.Addr(), User: url.UserPassword(mqtt.ControllerUsername, controllerPass)}
	c := rig.StartController(t, u.String())
	bt := &brokerUnderTest{c: c, url: b.URL(), spy: [2]string{"spy", spyPass}}
	bt.sync = func() {
		// What an operator does after enrolling: fetch the files from the
		// controller, install them, reload Mosquitto.
		var files struct {
			Files   map[string]string
			Missing []string
		}
		c.MustDo("GET", "/api/v1/broker/mosquitto", nil, &files)
		if len(files.Missing) > 0 {
			t.Fatalf("nodes left out of the password file: %v", files.Missing)
		}
		passwd := files.Files["loaxa.passwd"] + "spy:" + loaxa.HashBrokerSecret(spyPass) + "\n"
		b.SetAuth(passwd, files.Files["loaxa.acl"]+spyACL)
		if !strings.Contains(files.Files["loaxa.conf"], "allow_anonymous false") {
			t.Errorf("exported conf does not turn anonymous access off:\n%s", files.Files["loaxa.conf"])
		}
	}
	runAdversary(t, bt)
	// The exported files hold the controller's publishing account: once
	// Mosquitto has them, the controller, refused at its start, connects
	// with it (retrying at most 10 s apart).
	pub := "as " + mqtt.ControllerUsername + mqtt.PublishUsernameSuffix + " "
	rig.Eventually(t, 25*time.Second, "the controller's publish connection", func() bool { return strings.Contains(b.Log(), pub) })
}

// brokerUnderTest is a broker enforcing loaxa's rules, with the
// controller that uses it.
type brokerUnderTest struct {
	c   *rig.Controller
	url string
	// spy is an account that reads and writes everything: the view of
	// someone who controls the broker, used to see what got through.
	spy [2]string
	// sync makes the broker know the nodes enrolled so far.
	sync func()
}

// inbox records what one MQTT client received.
type inbox struct {
	mu   sync.Mutex
	msgs []string // "topic payload"
}

func (b *inbox) handler(_ paho.Client, m paho.Message) {
	b.mu.Lock()
	b.msgs = append(b.msgs, m.Topic()+" "+string(m.Payload()))
	b.mu.Unlock()
}

func (b *inbox) has(s string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.msgs {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// dial connects a paho client; it returns the error of a refused connect.
func dial(brokerURL, clientID, user, pass string, onConn func(net.Conn), tune func(*paho.ClientOptions)) (paho.Client, error) {
	opts := paho.NewClientOptions().AddBroker(brokerURL).SetClientID(clientID).SetUsername(user).SetPassword(pass).
		SetAutoReconnect(false).SetConnectRetry(false).SetCleanSession(true).SetConnectTimeout(5 * time.Second)
	if onConn != nil {
		opts.SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
			if err == nil {
				onConn(conn)
			}
			return conn, err
		})
	}
	if tune != nil {
		tune(opts)
	}
	cl := paho.NewClient(opts)
	tok := cl.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect as %s: timed out", user)
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	return cl, nil
}

func mustDial(t *testing.T, brokerURL, clientID, user, pass string) paho.Client {
	t.Helper()
	cl, err := dial(brokerURL, clientID, user, pass, nil, nil)
	if err != nil {
		t.Fatalf("connect %s: %v", clientID, err)
	}
	t.Cleanup(func() { cl.Disconnect(50) })
	return cl
}

// settle waits until the broker has dealt with a publish: acknowledged it
// (delivered or dropped), or cut the client off for it.
func settle(t *testing.T, cl paho.Client, tok paho.Token) {
	t.Helper()
	rig.Eventually(t, 10*time.Second, "broker answered the publish or dropped the client", func() bool {
		return tok.WaitTimeout(10*time.Millisecond) || !cl.IsConnectionOpen()
	})
}

// nodeLog collects an agent's log lines, to read why it refused a message.
type nodeLog struct{ syncbuf.Buffer }

func (l *nodeLog) count(s string) int { return strings.Count(l.String(), s) }

// skewedClock is a board whose clock is off by d.
type skewedClock struct {
	clock.Real
	d time.Duration
}

func (s skewedClock) Now() time.Time { return time.Now().Add(s.d) }

func runAdversary(t *testing.T, b *brokerUnderTest) {
	c := b.c
	for _, a := range [][3]string{
		{"31", "Thành phố Hải Phòng", ""}, {"318", "Huyện Tiên Lãng", "31"}, {"12346", "Xã Tiên Thắng", "318"},
		{"319", "Huyện Vĩnh Bảo", "31"}, {"12350", "Xã Vĩnh An", "319"},
	} {
		c.CreateArea(a[0], a[1], a[2])
	}
	victimCreds := c.CreateNode("nan-nhan", "12350")
	rogueCreds := c.CreateNode("ke-xau", "12346")
	b.sync()

	topics := protocol.NewTopics("")
	victimLog := &nodeLog{}
	victim := rig.StartNode(t, victimCreds, rig.NodeOptions{Broker: b.url,
		Logger: slog.New(slog.NewTextHandler(victimLog, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	// This wait gave up once in a full run (the race-built tests beside
	// the browser tests), not since alone: should it again, the victim's
	// status and its own log say how far it got.
	var seen loaxa.NodeStatus
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("victim's status as last read: %s\nits log:\n%s", rig.Describe(seen), victimLog.String())
		}
	})
	rig.Eventually(t, 20*time.Second, "victim online and running its desired state", func() bool {
		seen = c.Node("nan-nhan").Status
		return seen.State == loaxa.NodeOnline && seen.RunningVersion >= 1
	})

	spyBox := &inbox{}
	spy := mustDial(t, b.url, "spy", b.spy[0], b.spy[1])
	if tok := spy.Subscribe("#", 1, spyBox.handler); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("spy subscribe: %v", tok.Error())
	}
	marks := 0
	// mark publishes a marker through the spy and waits for it: whatever
	// the broker accepted before is delivered by then.
	mark := func() {
		t.Helper()
		marks++
		m := fmt.Sprintf("marker-%d", marks)
		spy.Publish("test/marker", 1, false, m).WaitTimeout(10 * time.Second)
		rig.Eventually(t, 10*time.Second, "spy sees "+m, func() bool { return spyBox.has(m) })
	}
	rogue := func(t *testing.T) paho.Client {
		return mustDial(t, b.url, "ke-xau", rogueCreds.Username, rogueCreds.Secret)
	}

	t.Run("anonymous and wrong secrets are refused", func(t *testing.T) {
		for _, cr := range [][3]string{
			{"anon", "", ""},
			{"nan-nhan", "nan-nhan", rogueCreds.Secret},
			{"nan-nhan", "nan-nhan", ""},
			{"ke-xau", "ke-xau", rogueCreds.Secret + "x"},
		} {
			if cl, err := dial(b.url, cr[0], cr[1], cr[2], nil, nil); err == nil {
				cl.Disconnect(0)
				t.Errorf("client %q user %q with a wrong secret connected", cr[0], cr[1])
			}
		}
	})

	t.Run("publishing on another node's or an area's topics", func(t *testing.T) {
		for _, topic := range []string{
			topics.Node("nan-nhan", protocol.ChanState), topics.Node("nan-nhan", protocol.ChanEvent),
			topics.Node("nan-nhan", protocol.ChanDesired), topics.Node("nan-nhan", protocol.ChanCmd),
			topics.Node("ke-xau", protocol.ChanDesired), topics.Node("ke-xau", protocol.ChanCmd),
			topics.Area("12350", protocol.ChanCmd), topics.Area("12346", protocol.ChanCmd),
			topics.Area("31", protocol.ChanCmd), topics.Area("31", protocol.ChanLive), "loa/v1/other",
		} {
			cl := rogue(t)
			token := "rogue-publish-" + topic
			settle(t, cl, cl.Publish(topic, 1, false, token))
			cl.Disconnect(0)
			mark()
			if spyBox.has(token) {
				t.Errorf("the broker let a node publish on %s", topic)
			}
		}
		// Its own state topic is open to it: the check above can fail. (The
		// broker may still be closing the previous session of the same
		// client id, so try until it goes through.)
		rig.Eventually(t, 10*time.Second, "the node publishes on its own state topic", func() bool {
			cl, err := dial(b.url, "ke-xau", rogueCreds.Username, rogueCreds.Secret, nil, nil)
			if err != nil {
				return false
			}
			settle(t, cl, cl.Publish(topics.Node("ke-xau", protocol.ChanState), 1, false, "own-state-ok"))
			cl.Disconnect(50)
			mark()
			return spyBox.has("own-state-ok")
		})
	})

	t.Run("subscribing to another node's or area's topics", func(t *testing.T) {
		box := &inbox{}
		cl := rogue(t)
		own := topics.Node("ke-xau", protocol.ChanCmd)
		forbidden := []string{
			topics.Node("nan-nhan", protocol.ChanDesired), topics.Node("nan-nhan", protocol.ChanCmd),
			topics.Node("nan-nhan", protocol.ChanState), topics.Area("12350", protocol.ChanCmd),
			topics.Area("319", protocol.ChanLive),
		}
		for _, f := range append([]string{"#", "loa/v1/#", "loa/v1/node/+/cmd", "loa/v1/area/+/cmd"}, forbidden...) {
			tok := cl.Subscribe(f, 1, box.handler)
			tok.WaitTimeout(10 * time.Second)
		}
		if tok := cl.Subscribe(own, 1, box.handler); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe to own cmd: %v", tok.Error())
		}
		for _, topic := range forbidden {
			spy.Publish(topic, 1, false, "secret-for-victim "+topic).WaitTimeout(10 * time.Second)
		}
		spy.Publish(own, 1, false, "own-marker").WaitTimeout(10 * time.Second)
		rig.Eventually(t, 10*time.Second, "rogue gets its own cmd", func() bool { return box.has("own-marker") })
		for _, topic := range forbidden {
			if box.has("secret-for-victim " + topic) {
				t.Errorf("the broker delivered %s to another node", topic)
			}
		}
	})

	t.Run("a last will on another node's state topic", func(t *testing.T) {
		var conn net.Conn
		cl, err := dial(b.url, "ke-xau", rogueCreds.Username, rogueCreds.Secret, func(c net.Conn) { conn = c },
			func(o *paho.ClientOptions) {
				o.SetWill(topics.Node("nan-nhan", protocol.ChanState), "rogue-will", 1, true)
			})
		if err == nil {
			conn.Close() // die without DISCONNECT: the broker would send the will
			cl.Disconnect(0)
			// A new session of the same client is only accepted once the
			// old one is gone, will and all.
			rogue(t).Disconnect(50)
		}
		mark()
		if spyBox.has("rogue-will") {
			t.Error("the broker published a node's last will on another node's state topic")
		}
		if n := c.Node("nan-nhan"); n.Status.State != loaxa.NodeOnline {
			t.Errorf("victim shows %s", n.Status.State)
		}
	})

	t.Run("taking over another node's client id", func(t *testing.T) {
		if cl, err := dial(b.url, "nan-nhan", rogueCreds.Username, rogueCreds.Secret, nil, nil); err == nil {
			// Mosquitto renames the client to its username instead.
			settle(t, cl, cl.Publish(topics.Node("ke-xau", protocol.ChanState), 1, false, "takeover-marker"))
			cl.Disconnect(50)
		}
		mark()
		if !victim.Agent.Connected() {
			t.Error("the victim was disconnected by a client using its id")
		}
	})

	// From here the attacker controls the broker (the spy account): only
	// signatures, expiry and replay protection stand between it and the
	// speakers.
	areaCmd := topics.Area("12350", protocol.ChanCmd)
	publish := func(topic string, raw []byte) {
		t.Helper()
		if tok := spy.Publish(topic, 1, false, raw); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	refusedFor := func(reason string, before int) {
		t.Helper()
		rig.Eventually(t, 10*time.Second, "victim refuses the message: "+reason, func() bool {
			return victimLog.count("reason="+reason) > before
		})
	}

	t.Run("a captured emergency replayed before and after its expiry", func(t *testing.T) {
		key, err := c.App.Keys.CurrentKey()
		if err != nil {
			t.Fatal(err)
		}
		captured, err := protocol.NewSigner("controller", key, 0, time.Now).Seal(protocol.TypeCommand, "area/12350",
			protocol.Command{Name: "emergency"}, 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		expires := time.Now().Add(3 * time.Second)
		publish(areaCmd, captured)
		rig.Eventually(t, 10*time.Second, "victim takes the genuine command", func() bool {
			return victimLog.count(`command=emergency`) == 1
		})
		replays := victimLog.count("reason=replay")
		publish(areaCmd, captured)
		refusedFor("replay", replays)
		// After its expiry the copy is refused as expired, even though the
		// replay memory has forgotten it by then.
		rig.Eventually(t, 10*time.Second, "the captured command expired", func() bool { return time.Now().After(expires.Add(100 * time.Millisecond)) })
		expired := victimLog.count("reason=expired")
		publish(areaCmd, captured)
		refusedFor("expired", expired)
		// Re-addressed to another area, it fails its signature binding.
		audience := victimLog.count("reason=wrong_audience")
		publish(topics.Area("319", protocol.ChanCmd), captured)
		publish(topics.Node("nan-nhan", protocol.ChanCmd), captured)
		rig.Eventually(t, 10*time.Second, "re-addressed copy refused", func() bool { return victimLog.count("reason=wrong_audience") > audience })
		if n := victimLog.count(`command=emergency`); n != 1 {
			t.Errorf("the victim took the command %d times, want once", n)
		}
	})

	t.Run("a message signed by a rotated-out key", func(t *testing.T) {
		oldKey, err := c.App.Keys.CurrentKey()
		if err != nil {
			t.Fatal(err)
		}
		var next loaxa.SigningKey
		c.MustDo("POST", "/api/v1/keys", nil, &next)
		rig.Eventually(t, 20*time.Second, "victim trusts the announced key", func() bool {
			st := victim.Agent.Status()
			return len(st.Keys) == 2 && c.Node("nan-nhan").Status.Keys != nil && len(c.Node("nan-nhan").Status.Keys) == 2
		})
		// The attacker's node never ran, so it cannot learn the key: revoke
		// it, as one would a stolen board, so it does not hold up the switch.
		c.MustDo("POST", "/api/v1/nodes/ke-xau/revoke", nil, nil)
		b.sync()
		c.MustDo("POST", "/api/v1/keys/activate", nil, nil)
		rig.Eventually(t, 20*time.Second, "victim trusts only the new key and runs the latest desired state", func() bool {
			st := victim.Agent.Status()
			return len(st.Keys) == 1 && st.Keys[0] == next.ID && st.DesiredVersion == c.Node("nan-nhan").Status.DesiredVersion
		})
		running := victim.Agent.Status().DesiredVersion

		// The old key still verifies mathematically, but it is retired.
		d := &protocol.DesiredState{Node: "nan-nhan", Version: running + 100, Areas: []string{"12350", "319", "31"},
			Keys: []protocol.PublicKey{protocol.NewPublicKey(oldKey.Public().(ed25519.PublicKey))}}
		forged, err := protocol.NewSigner("controller", oldKey, 0, time.Now).Seal(protocol.TypeDesired, "node/nan-nhan", d, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		unknown := victimLog.count("reason=unknown_key")
		publish(topics.Node("nan-nhan", protocol.ChanDesired), forged)
		refusedFor("unknown_key", unknown)
		cmd, _ := protocol.NewSigner("controller", oldKey, 0, time.Now).Seal(protocol.TypeCommand, "area/12350", protocol.Command{Name: "emergency-old-key"}, time.Minute)
		publish(areaCmd, cmd)
		refusedFor("unknown_key", unknown+1)
		if v := victim.Agent.Status().DesiredVersion; v != running {
			t.Errorf("victim moved from version %d to %d", running, v)
		}
		if victimLog.count(`command=emergency-old-key`) > 0 {
			t.Error("victim took a command signed by the retired key")
		}

		// Genuine work goes on under the new key without re-enrolling.
		ct := c.Upload("sau-xoay-khoa.wav", rig.ToneWAV(440, 300*time.Millisecond, 16000, 1))
		ann := c.Announce(ct.ID, []string{"12350"}, nil, time.Now().Add(time.Hour))
		rig.Eventually(t, 20*time.Second, "victim receives a schedule signed by the new key", func() bool {
			ds := c.Deliveries(ann.ID)
			return len(ds) == 1 && ds[0].State == loaxa.DeliveryReceived
		})
	})

	t.Run("a board whose clock is wrong", func(t *testing.T) {
		// A board 90 minutes slow would, by its own clock, take a command
		// that expired an hour ago; corrected by the controller's time it
		// refuses it, and it still takes genuine messages.
		slowCreds := c.CreateNode("cham-gio", "12350")
		b.sync()
		slowLog := &nodeLog{}
		slow := rig.StartNode(t, slowCreds, rig.NodeOptions{Broker: b.url, Clock: skewedClock{d: -90 * time.Minute},
			Logger: slog.New(slog.NewTextHandler(slowLog, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		rig.Eventually(t, 20*time.Second, "slow board corrects its clock and runs its desired state", func() bool {
			st := slow.Agent.Status()
			return st.ClockOffsetMS > int64(89*time.Minute/time.Millisecond) && st.DesiredVersion >= 1
		})
		// The controller shows the correction and how certain it is.
		rig.Eventually(t, 20*time.Second, "the controller has the slow board's offset and its uncertainty", func() bool {
			st := c.Node("cham-gio").Status
			return st.ClockOffsetMS > int64(89*time.Minute/time.Millisecond) && st.ClockUncertaintyUS > 0
		})
		key, err := c.App.Keys.CurrentKey()
		if err != nil {
			t.Fatal(err)
		}
		issued := time.Now().Add(-time.Hour)
		stale, err := protocol.NewSigner("controller", key, 0, func() time.Time { return issued }).Seal(protocol.TypeCommand, "area/12350",
			protocol.Command{Name: "stale"}, 30*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		publish(areaCmd, stale)
		rig.Eventually(t, 10*time.Second, "slow board refuses the stale command as expired", func() bool {
			return slowLog.count("reason=expired") > 0
		})
		if slowLog.count("command=stale") > 0 {
			t.Error("the slow board took a command that had expired by the controller's clock")
		}
		// A message dated beyond the tolerated skew into the future is
		// refused too (a signer with a broken clock, or a pre-made attack).
		future, _ := protocol.NewSigner("controller", key, 0, func() time.Time { return time.Now().Add(time.Hour) }).Seal(
			protocol.TypeCommand, "area/12350", protocol.Command{Name: "future"}, time.Minute)
		publish(areaCmd, future)
		rig.Eventually(t, 10*time.Second, "slow board refuses the future command", func() bool {
			return slowLog.count("reason=not_yet_valid") > 0
		})
	})
}
