package mosquittotest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(standInEnv) != "" {
		os.Exit(standIn(os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

const wait = 10 * time.Second

// connect returns a connected paho client that reconnects on its own, and
// disconnects it when the test ends.
func connect(t *testing.T, b *Broker, id, user, pass string) mqtt.Client {
	t.Helper()
	c, err := dial(b, id, user, pass)
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func dial(b *Broker, id, user, pass string) (mqtt.Client, error) {
	opts := mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID(id).
		SetUsername(user).SetPassword(pass).
		SetAutoReconnect(true).SetMaxReconnectInterval(100 * time.Millisecond).
		SetConnectTimeout(2 * time.Second)
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(wait) {
		c.Disconnect(0)
		return nil, fmt.Errorf("no CONNACK within %v", wait)
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	return c, nil
}

// subscribe returns a channel of the payloads arriving on filter.
func subscribe(t *testing.T, c mqtt.Client, filter string) <-chan string {
	t.Helper()
	got := make(chan string, 16)
	tok := c.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case got <- string(m.Payload()):
		default: // a test that floods its own channel fails on the content anyway
		}
	})
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	return got
}

func publish(t *testing.T, c mqtt.Client, topic, payload string) {
	t.Helper()
	tok := c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func receive(t *testing.T, got <-chan string, want string) {
	t.Helper()
	select {
	case p := <-got:
		if p != want {
			t.Fatalf("received %q, want %q", p, want)
		}
	case <-time.After(wait):
		t.Fatalf("%q not received within %v", want, wait)
	}
}

func TestRoundTrip(t *testing.T) {
	b := Start(t, Options{AllowAnonymous: true})
	if !strings.HasPrefix(b.URL(), "tcp://127.0.0.1:") || strings.HasSuffix(b.URL(), ":1883") {
		t.Fatalf("URL() = %s, want tcp://127.0.0.1:<a free port other than 1883>", b.URL())
	}
	sub := connect(t, b, "sub", "", "")
	got := subscribe(t, sub, "loa/v1/node/+/state")
	pub := connect(t, b, "pub", "", "")
	publish(t, pub, "loa/v1/node/n1/state", "online")
	receive(t, got, "online")
}

func TestUsersAndACL(t *testing.T) {
	b := Start(t, Options{
		Users: map[string]string{"controller": "c-secret", "n1": "n1-secret"},
		ACL: "user controller\ntopic readwrite loa/v1/#\n\n" +
			"user n1\ntopic write loa/v1/node/n1/state\n",
	})
	t.Run("anonymous refused", func(t *testing.T) {
		if c, err := dial(b, "anon", "", ""); err == nil {
			c.Disconnect(0)
			t.Fatal("anonymous client connected with allow_anonymous false")
		}
	})
	t.Run("wrong password refused", func(t *testing.T) {
		if c, err := dial(b, "n1", "n1", "wrong"); err == nil {
			c.Disconnect(0)
			t.Fatal("connected with a wrong password")
		}
	})
	t.Run("acl drops foreign topics", func(t *testing.T) {
		ctl := connect(t, b, "controller", "controller", "c-secret")
		got := subscribe(t, ctl, "loa/v1/node/#")
		n1 := connect(t, b, "n1", "n1", "n1-secret")
		// Mosquitto drops a denied publish silently. Sent first on the same
		// connection, it would arrive before the allowed one if it passed.
		publish(t, n1, "loa/v1/node/n2/state", "forged")
		publish(t, n1, "loa/v1/node/n1/state", "online")
		receive(t, got, "online")
	})
}

func TestPasswordFileAsIs(t *testing.T) {
	// A hash made by mosquitto_passwd for user "tech", password "pw".
	first := Start(t, Options{Users: map[string]string{"tech": "pw"}})
	hashed := first.passwordFile(t)
	first.Stop()

	b := Start(t, Options{PasswordFile: hashed})
	c := connect(t, b, "tech", "tech", "pw")
	got := subscribe(t, c, "t")
	publish(t, c, "t", "hello")
	receive(t, got, "hello")
}

func TestStopAndRestart(t *testing.T) {
	b := Start(t, Options{AllowAnonymous: true})
	url := b.URL()
	lost := make(chan struct{}, 1)
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID("survivor").
		SetAutoReconnect(true).SetMaxReconnectInterval(100 * time.Millisecond).
		SetConnectionLostHandler(func(mqtt.Client, error) {
			select {
			case lost <- struct{}{}:
			default:
			}
		})
	received := make(chan string, 16)
	opts.SetOnConnectHandler(func(c mqtt.Client) {
		// Resubscribe on every connect: the restarted broker kept nothing.
		c.Subscribe("ping", 1, func(_ mqtt.Client, m mqtt.Message) {
			select {
			case received <- string(m.Payload()):
			default:
			}
		})
	})
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)

	b.Stop()
	select {
	case <-lost:
	case <-time.After(wait):
		t.Fatal("client did not notice the broker stop")
	}
	if dialed, err := dial(b, "late", "", ""); err == nil {
		dialed.Disconnect(0)
		t.Fatal("connected to a stopped broker")
	}
	b.Restart()
	if b.URL() != url {
		t.Fatalf("restarted on %s, want the same %s", b.URL(), url)
	}
	pub := connect(t, b, "pub", "", "")
	// The survivor may still be reconnecting: publish until it hears one.
	deadline := time.Now().Add(wait)
	for {
		publish(t, pub, "ping", "after restart")
		select {
		case p := <-received:
			if p != "after restart" {
				t.Fatalf("received %q", p)
			}
			return
		case <-time.After(100 * time.Millisecond): // polling interval
		}
		if time.Now().After(deadline) {
			t.Fatalf("client did not receive after the restart within %v\n%s", wait, b.Log())
		}
	}
}

func (b *Broker) passwordFile(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(b.dir, "passwd"))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func TestStartFailureShowsLog(t *testing.T) {
	if _, err := os.Stat(Binary); err != nil {
		t.Skip("mosquitto not installed: run scripts/test.sh, which installs it")
	}
	// An invalid option makes mosquitto exit at start; the error must say so.
	b := &Broker{t: t, dir: t.TempDir()}
	if err := b.writeFiles(Options{Config: "no_such_option 1\n"}); err != nil {
		t.Fatal(err)
	}
	var err error
	if b.port, err = freePort(); err != nil {
		t.Fatal(err)
	}
	err = b.start()
	if err == nil {
		b.stop()
		t.Fatal("mosquitto started with an invalid option")
	}
	if !strings.Contains(err.Error(), "exited at start") || !strings.Contains(b.Log(), "no_such_option") {
		t.Fatalf("error %v, log %q: want an exit at start with mosquitto's complaint", err, b.Log())
	}
}

// openFiles reads the soft limit of open files of process pid.
func openFiles(t *testing.T, pid int) string {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(raw)) {
		if strings.HasPrefix(line, "Max open files") {
			return strings.Fields(line)[3]
		}
	}
	t.Fatalf("no open files limit in /proc/%d/limits:\n%s", pid, raw)
	return ""
}

func TestOpenFiles(t *testing.T) {
	// 1001, not a limit any process gets by default.
	b := Start(t, Options{AllowAnonymous: true, OpenFiles: 1001})
	if got := openFiles(t, b.Pid()); got != "1001" {
		t.Fatalf("mosquitto's soft limit of open files is %s, want 1001", got)
	}
	b.Restart()
	if got := openFiles(t, b.Pid()); got != "1001" {
		t.Fatalf("after a restart mosquitto's soft limit of open files is %s, want 1001", got)
	}
	b.Stop()
	if b.Pid() != 0 {
		t.Fatalf("Pid() = %d after Stop, want 0", b.Pid())
	}
}
