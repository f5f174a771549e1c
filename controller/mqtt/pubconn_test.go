package mqtt_test

import (
	"context"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/mqtt"
	"loaxa.vn/internal/mosquittotest"
	"loaxa.vn/internal/netproxy"
	"loaxa.vn/internal/syncbuf"
	"loaxa.vn/protocol"
)

// mosquittoRig is a real Mosquitto set up with the files the controller
// exports, and a proxy before it for the controller's main connection.
type mosquittoRig struct {
	*rig
	broker *mosquittotest.Broker
	proxy  *netproxy.Proxy
	pass   string
}

// newMosquittoRig starts Mosquitto with the exported files, filtered by
// keep (nil keeps every line of the password and ACL files).
func newMosquittoRig(t *testing.T, keep func(line string) bool) *mosquittoRig {
	t.Helper()
	r := &mosquittoRig{rig: newRig(t), pass: loaxa.NewSecret()}
	files, err := mqtt.ExportMosquitto(context.Background(), r.nodes, r.areas, topics, mqtt.ControllerUsername, loaxa.HashBrokerSecret(r.pass))
	if err != nil {
		t.Fatal(err)
	}
	filter := func(s string) string {
		if keep == nil {
			return s
		}
		var b strings.Builder
		for line := range strings.Lines(s) {
			if keep(line) {
				b.WriteString(line)
			}
		}
		return b.String()
	}
	r.broker = mosquittotest.Start(t, mosquittotest.Options{
		PasswordFile: filter(files.Passwd),
		ACL:          filter(files.ACL),
		// As MosquittoConf; debug logs who publishes what.
		Config: "use_username_as_clientid true\nlog_type debug\n",
	})
	if r.proxy, err = netproxy.Start(r.broker.Addr()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.proxy.Close() })
	return r
}

// client returns a controller client whose main connection goes through
// the proxy and whose publish connection, with pubUser, goes straight to
// Mosquitto.
func (r *mosquittoRig) client(t *testing.T, pubUser string, log *syncbuf.Buffer) *mqtt.Client {
	t.Helper()
	c := r.rig.client(t, false)
	c.BrokerURL = "tcp://" + r.proxy.Addr()
	c.Username, c.Password = mqtt.ControllerUsername, r.pass
	c.PublishUsername = pubUser
	mqtt.SetPublishBrokerURL(c, r.broker.URL())
	c.PublishTimeout = 2 * time.Second
	if log != nil {
		c.Logger = slog.New(slog.NewTextHandler(log, nil))
	}
	return c
}

// desired publishes a desired state for tt-01.
func desired(ctx context.Context, c *mqtt.Client, version uint64) error {
	return c.PublishDesired(ctx, &protocol.DesiredState{Node: "tt-01", Version: version})
}

var pubUser = mqtt.ControllerUsername + mqtt.PublishUsernameSuffix

// With the exported files the controller holds two connections to
// Mosquitto and publishes on the second: while Mosquitto's writes to the
// receiving connection are stalled (a burst of node messages the
// controller reads slowly), a desired state is still acknowledged within
// PublishTimeout. On one connection the acknowledgement waits behind
// them and the publish times out.
func TestMosquittoPublishConnection(t *testing.T) {
	r := newMosquittoRig(t, nil)
	c := r.client(t, pubUser, nil)
	ctx := open(t, c)
	logged := func(re string) bool { return regexp.MustCompile(re).MatchString(r.broker.Log()) }
	poll(t, "the publish connection", func() bool {
		return logged(`New client connected from .* as ` + regexp.QuoteMeta(pubUser) + ` `)
	})
	if !logged(`New client connected from .* as ` + regexp.QuoteMeta(mqtt.ControllerUsername) + ` `) {
		t.Fatalf("the main connection is not in Mosquitto's log:\n%s", r.broker.Log())
	}
	// The controller routes publishes to it once its connect handler ran,
	// a moment after the broker's log line: a publish before that would go
	// on the main connection.
	poll(t, "the controller's publish connection up", func() bool { return mqtt.PublishConnectionUp(c) })
	if err := desired(ctx, c, 1); err != nil {
		t.Fatal(err)
	}
	poll(t, "a desired state on the publish connection", func() bool {
		return logged(`Received PUBLISH from ` + regexp.QuoteMeta(pubUser) + ` .*'loa/v1/node/tt-01/desired'`)
	})
	if logged(`Received PUBLISH from ` + regexp.QuoteMeta(mqtt.ControllerUsername) + ` .*'loa/v1/node/tt-01/desired'`) {
		t.Errorf("a desired state went on the main connection:\n%s", r.broker.Log())
	}
	// Mosquitto acknowledges what the ACL denies, and only logs it.
	if logged(`Denied PUBLISH`) {
		t.Errorf("the exported ACL denies the publishing account:\n%s", r.broker.Log())
	}

	r.proxy.Hold()
	defer r.proxy.Release()
	start := time.Now()
	if err := desired(ctx, c, 2); err != nil {
		t.Fatalf("desired state while the receiving connection is stalled: %v", err)
	}
	t.Logf("acknowledged in %v while the receiving connection was stalled", time.Since(start))
}

// With Mosquitto down, a command or alert is refused within a second
// (downWait), saying the controller is not connected, instead of after the
// whole PublishTimeout: the officer learns at once that the alert is not
// going out. A live call's frame (QoS 0, which paho takes as sent while it
// reconnects, and drops) is refused too, so the call ends and its speaker
// is told rather than speaking to nobody. Once Mosquitto is back,
// publishes go through again.
func TestMosquittoDownPublishSaysSo(t *testing.T) {
	r := newMosquittoRig(t, nil)
	c := r.client(t, pubUser, nil)
	c.PublishTimeout = time.Minute // a wait this long would fail the test's own deadline
	ctx, cancel := context.WithTimeout(open(t, c), 30*time.Second)
	defer cancel()
	poll(t, "the controller's publish connection up", func() bool { return mqtt.PublishConnectionUp(c) })
	// The main connection lost, the publish connection up: publishes go
	// on, not refused.
	r.proxy.Cut()
	poll(t, "the main connection lost", func() bool { return !c.Connected() })
	if err := c.SendAreaCommand(ctx, "12346", protocol.Command{Name: protocol.CmdAlert}, time.Minute); err != nil {
		t.Fatalf("an alert with only the publish connection up: %v", err)
	}
	r.proxy.Restore()
	poll(t, "the main connection back", c.Connected)
	r.broker.Stop()
	poll(t, "the controller sees the broker gone", func() bool { return !c.Connected() })
	err := c.SendAreaCommand(ctx, "12346", protocol.Command{Name: protocol.CmdAlert}, time.Minute)
	if err == nil || !strings.Contains(err.Error(), "not connected to the broker at tcp://"+r.proxy.Addr()) {
		t.Fatalf("an alert with the broker down returned %v, want not connected to the broker", err)
	}
	if strings.Contains(err.Error(), r.pass) {
		t.Fatalf("the error shows the controller's broker password: %v", err)
	}
	frame := protocol.Live{Call: "live-1", Kind: protocol.LiveAudio, Seq: 7, Audio: []byte{1, 2, 3}}
	if err := c.SendLive(ctx, "12346", frame); err == nil || !strings.Contains(err.Error(), "not connected to the broker") {
		t.Fatalf("a live frame with the broker down returned %v, want not connected to the broker", err)
	}
	r.broker.Restart()
	poll(t, "the controller reconnected", c.Connected)
	if err := c.SendAreaCommand(ctx, "12346", protocol.Command{Name: protocol.CmdAlert}, time.Minute); err != nil {
		t.Fatalf("an alert after the broker came back: %v", err)
	}
	if err := c.SendLive(ctx, "12346", frame); err != nil {
		t.Fatalf("a live frame after the broker came back: %v", err)
	}
}

// The same stall on one connection (no PublishUsername): the
// acknowledgement waits behind what Mosquitto writes to the controller.
func TestMosquittoOneConnectionStalls(t *testing.T) {
	r := newMosquittoRig(t, nil)
	c := r.client(t, "", nil)
	ctx := open(t, c)
	if err := desired(ctx, c, 1); err != nil {
		t.Fatal(err)
	}
	r.proxy.Hold()
	defer r.proxy.Release()
	err := desired(ctx, c, 2)
	if err == nil || !strings.Contains(err.Error(), "did not accept it within") {
		t.Fatalf("desired state on one stalled connection: %v, want a timeout", err)
	}
}

// With files exported before the publishing account existed, Mosquitto
// refuses the publish connection: the controller publishes on the main
// one, and says once what to do, however often it tries again.
func TestMosquittoOldFilesPublishOnTheMainConnection(t *testing.T) {
	r := newMosquittoRig(t, func(line string) bool { return !strings.Contains(line, pubUser) })
	log := &syncbuf.Buffer{}
	c := r.client(t, pubUser, log)
	ctx := open(t, c)
	for v := range uint64(3) {
		if err := desired(ctx, c, v+1); err != nil {
			t.Fatalf("desired state without the publishing account: %v", err)
		}
	}
	// Mosquitto logs a publish before it acknowledges it, but its log
	// reaches the test through a reader of its own, which may not have
	// read the line yet when the publish returns (a run under load failed
	// so, the line missing from the log it printed).
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(r.broker.Log(), "Received PUBLISH from "+mqtt.ControllerUsername+" "); {
		if time.Now().After(deadline) {
			t.Fatalf("no publish on the main connection:\n%s", r.broker.Log())
		}
		time.Sleep(10 * time.Millisecond) // polling Mosquitto's log
	}
	// Two refusals at least (the client retries after a second), logged
	// once.
	poll(t, "a second refusal", func() bool {
		// Mosquitto names a refused client by its address; only the
		// publish connection is refused here.
		return strings.Count(r.broker.Log(), "Sending CONNACK to 127.0.0.1 (0, 5)") >= 2
	})
	poll(t, "the refusal logged", func() bool { return strings.Contains(log.String(), "refused the publish connection") })
	if n := strings.Count(log.String(), "refused the publish connection"); n != 1 {
		t.Errorf("refusal logged %d times, want once:\n%s", n, log.String())
	}
	if err := desired(ctx, c, 4); err != nil {
		t.Fatalf("desired state after the refusals: %v", err)
	}
}

// A desired state in flight when the publish connection drops is sent
// again on the main connection, and acknowledged there: paho, with a
// clean session, would never complete it. Later publishes go on the main
// connection until the publish connection is back.
func TestMosquittoPublishConnectionLostInFlight(t *testing.T) {
	r := newMosquittoRig(t, nil)
	pubProxy, err := netproxy.Start(r.broker.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer pubProxy.Close()
	log := &syncbuf.Buffer{}
	c := r.client(t, pubUser, log)
	mqtt.SetPublishBrokerURL(c, "tcp://"+pubProxy.Addr())
	c.PublishTimeout = 5 * time.Second
	ctx := open(t, c)
	poll(t, "the publish connection", func() bool { return strings.Contains(log.String(), "publish connection connected") })

	pubProxy.Hold() // Mosquitto takes the publish; its acknowledgement is kept back
	defer pubProxy.Release()
	errc := make(chan error, 1)
	go func() { errc <- desired(ctx, c, 1) }()
	poll(t, "the desired state on the publish connection", func() bool {
		return strings.Contains(r.broker.Log(), "Received PUBLISH from "+pubUser+" ")
	})
	pubProxy.Cut()
	if err := <-errc; err != nil {
		t.Fatalf("desired state in flight when the publish connection dropped: %v", err)
	}
	// Mosquitto logs the publish before it acknowledges it, but its log
	// reaches the test through a reader of its own, which may not have read
	// the line yet when the publish returns (a full run failed so, the line
	// missing from the log it printed).
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(r.broker.Log(), "Received PUBLISH from "+mqtt.ControllerUsername+" "); {
		if time.Now().After(deadline) {
			t.Fatalf("not re-sent on the main connection:\n%s", r.broker.Log())
		}
		time.Sleep(10 * time.Millisecond) // polling Mosquitto's log
	}
	// The re-sent publish can complete before the handler of the lost
	// connection, which re-sent it, has logged it.
	poll(t, "the client's log to say it re-sent one", func() bool { return strings.Contains(log.String(), "resent_on_main=1") })
	if err := desired(ctx, c, 2); err != nil {
		t.Fatalf("desired state while the publish connection is away: %v", err)
	}
}

// TestMosquittoRefusalIsLogged: a controller pointed at Mosquitto with a
// wrong password (or a broker certificate it does not trust) logged
// nothing about its connection, only desired states "not accepted by the
// broker" 10 s later, and the operator could not tell why. The reason a
// connection attempt fails for must be logged, without the password; once
// the broker takes the password, the controller connects.
func TestMosquittoRefusalIsLogged(t *testing.T) {
	r := newMosquittoRig(t, nil)
	var log syncbuf.Buffer
	c := r.client(t, "", &log)
	c.Password = "not-the-password"
	if err := c.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	poll(t, "the refusal in the log", func() bool {
		return strings.Contains(log.String(), "cannot connect to the broker") && strings.Contains(log.String(), "not Authorized")
	})
	if strings.Contains(log.String(), c.Password) {
		t.Fatalf("the log shows the controller's broker password:\n%s", log.String())
	}
	files, err := mqtt.ExportMosquitto(ctx, r.nodes, r.areas, topics, mqtt.ControllerUsername, loaxa.HashBrokerSecret(c.Password))
	if err != nil {
		t.Fatal(err)
	}
	r.broker.SetAuth(files.Passwd, files.ACL)
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestMosquittoNodeBackAfterACrashIsOnline: a board whose agent crashes
// (its connection ends without a DISCONNECT) or whose link dies unseen
// (the broker still holds its connection) and that connects again within
// seconds must be shown online, not offline by a Last Will published
// after its new connection's online state. The embedded broker publishes
// the Will of a connection taken over before the new connection's
// messages; this holds Mosquitto (2.0.11) to the same, both ways a board
// comes back.
func TestMosquittoNodeBackAfterACrashIsOnline(t *testing.T) {
	r := newRig(t)
	pass := loaxa.NewSecret()
	b := mosquittotest.Start(t, mosquittotest.Options{
		Users:  map[string]string{mqtt.ControllerUsername: pass, "tt-01": "secret-tt-01"},
		Config: "use_username_as_clientid true\n",
	})
	proxy, err := netproxy.Start(b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	c := r.client(t, false)
	c.BrokerURL = b.URL()
	c.Username, c.Password = mqtt.ControllerUsername, pass
	open(t, c)
	stateTopic := topics.Node("tt-01", protocol.ChanState)
	state := func(st protocol.Status, version uint64) []byte {
		t.Helper()
		raw, err := protocol.Encode(protocol.TypeState, "tt-01", "controller", 0, time.Now(), protocol.State{Status: st, At: time.Now(), DesiredVersion: version})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	online := func(cl paho.Client, version uint64) {
		t.Helper()
		if tok := cl.Publish(stateTopic, 1, true, state(protocol.StatusOnline, version)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("board publish: %v", tok.Error())
		}
	}
	// board connects as the agent does: its Will offline, then online.
	board := func(url string, version uint64) paho.Client {
		t.Helper()
		o := paho.NewClientOptions().AddBroker(url).SetClientID("tt-01").SetUsername("tt-01").SetPassword("secret-tt-01").
			SetAutoReconnect(false).SetConnectTimeout(5*time.Second).
			SetBinaryWill(stateTopic, state(protocol.StatusOffline, 0), 1, true)
		cl := paho.NewClient(o)
		if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("board connect: %v", tok.Error())
		}
		t.Cleanup(func() { cl.Disconnect(50) })
		online(cl, version)
		return cl
	}
	// shown waits until the controller shows the board online running
	// version: a state the board published after anything its return
	// made the broker publish, so a late Will would come before it.
	shown := func(what string, version uint64) {
		t.Helper()
		poll(t, what, func() bool {
			n, err := r.nodes.FindNodeByID(context.Background(), "tt-01")
			return err == nil && n.Status.State == loaxa.NodeOnline && n.Status.RunningVersion == version
		})
	}

	board("tcp://"+proxy.Addr(), 1)
	shown("the board online", 1)
	proxy.Cut() // the agent killed: its connection closed, no DISCONNECT
	back := board(b.URL(), 2)
	online(back, 3)
	shown("the board online again after its crash", 3)
	back.Disconnect(50)

	proxy.Restore()
	board("tcp://"+proxy.Addr(), 4)
	shown("the board online through the proxy", 4)
	proxy.Freeze()           // its link dead unseen: Mosquitto still holds the connection
	back = board(b.URL(), 5) // takes its own session over
	online(back, 6)
	shown("the board online after taking its own session over", 6)
	proxy.Thaw()
}
