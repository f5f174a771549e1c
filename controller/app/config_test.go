package app

import (
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/internal/syncbuf"
)

func TestConfigPrecedence(t *testing.T) {
	env := map[string]string{"LOAXA_HTTP": ":9090", "LOAXA_DATA": "/srv/loaxa", "LOAXA_ADMIN_PASSWORD": "from-the-env", "LOAXA_HORIZON": "240h"}
	c := DefaultConfig()
	if err := c.Parse([]string{"--data", "/var/lib/loaxa", "--log-level", "debug"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":9090" || c.DataDir != "/var/lib/loaxa" || c.MQTTAddr != ":1883" || c.AdminPassword != "from-the-env" ||
		c.Horizon != 240*time.Hour || c.LogLevel != slog.LevelDebug {
		t.Errorf("got %+v", c)
	}
}

func TestConfigCapFeeds(t *testing.T) {
	c := DefaultConfig()
	env := map[string]string{"LOAXA_CAP_FEEDS": "https://cap.example.vn/alerts.atom, http://10.0.0.5/cap.xml",
		"LOAXA_CAP_ALERT_HOSTS": "files.example.vn, cdn.example.vn:8443"}
	if err := c.Parse([]string{"--cap-poll", "30s"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if len(c.CapFeeds) != 2 || c.CapFeeds[1] != "http://10.0.0.5/cap.xml" || c.CapPoll != 30*time.Second {
		t.Errorf("feeds %v every %v", c.CapFeeds, c.CapPoll)
	}
	if !slices.Equal(c.CapAlertHosts, []string{"files.example.vn", "cdn.example.vn:8443"}) {
		t.Errorf("alert hosts %q", c.CapAlertHosts)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--horizon", "2h"}, "at least 24h"},
		{[]string{"--horizon", "soon"}, "at least 24h"},
		{[]string{"--max-upload", "-1"}, "positive number"},
		{[]string{"--log-level", "loud"}, "debug, info"},
		{[]string{"extra"}, "unexpected argument"},
		{[]string{"--no-such-flag"}, "not defined"},
		{[]string{"--cap-feeds", "ftp://x/alerts"}, "not an http(s) URL"},
		{[]string{"--cap-poll", "5m"}, "up to 1m"},
		{[]string{"--cap-alert-hosts", "https://files.example.vn/cap"}, "want a host name or host:port"},
		{[]string{"--cap-alert-hosts", "files.example.vn/cap"}, "want a host name or host:port"},
		{[]string{"--status-flush", "10ms"}, "from 100ms to 1m"},
		{[]string{"--status-flush", "5m"}, "from 100ms to 1m"},
		// A typo left the exports piling up, every push failing in the log.
		{[]string{"--upstream-url", "ttn.haiphong.gov.vn/api/loaxa"}, "http(s) URL"},
		{[]string{"--upstream-url", "ftp://ttn.haiphong.gov.vn/api/loaxa"}, "http(s) URL"},
		// Accepted at start, these failed only later: at enrolment, or
		// as a fleet that looked offline.
		{[]string{"--public-url", "loa.haiphong.gov.vn"}, "http(s) URL"},
		{[]string{"--topic-prefix", "loa/+/v1"}, "without +, #"},
		{[]string{"--topic-prefix", "$SYS/loa"}, "leading $"},
		// A board counted unreached while it was still within its
		// probation would only have been slow.
		{[]string{"--rollout-node-timeout", "10m"}, "at least 40m"},
		{[]string{"--rollout-node-timeout", "a day"}, "at least 40m"},
		{[]string{"--mqtt-max-connecting", "0"}, "from 1 to 65536"},
		{[]string{"--mqtt-max-connecting", "lots"}, "from 1 to 65536"},
		{[]string{"--mqtt-max-connecting", "100000"}, "from 1 to 65536"},
		// "want HH:MM" for 25:00, which is written HH:MM, left the
		// technician guessing; and "off" was not offered.
		{[]string{"--daily-test", "25:00"}, `daily test time "25:00": want a time of day from 00:00 to 23:59 (HH:MM, e.g. 03:00), or off for none`},
		{[]string{"--daily-test", "3am"}, `daily test time "3am": want a time of day from 00:00 to 23:59 (HH:MM, e.g. 03:00), or off for none`},
		// 0 was taken and meant an alarm at once: a critical alarm for
		// every board whose link blinked.
		{[]string{"--offline-alarm", "0"}, `offline-alarm "0": want a duration of at least 1m0s, e.g. 10m: shorter, every board whose 3G/4G link drops`},
		{[]string{"--offline-alarm", "30s"}, `offline-alarm "30s": want a duration of at least 1m0s`},
		{[]string{"--offline-alarm", "-1m"}, `offline-alarm "-1m": want a duration of at least 1m0s`},
		{[]string{"--offline-alarm", "ten minutes"}, `offline-alarm "ten minutes": want a duration of at least 1m0s`},
	} {
		cfg := DefaultConfig()
		err := cfg.Parse(c.args, func(string) string { return "" })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one mentioning %q", c.args, err, c.want)
		}
	}
}

// TestRolloutAndBrokerLimitFlags: a province whose boards sit behind
// thin 4G links for days, or whose fleet is larger than the embedded
// broker's 2,048 connections waiting for their CONNECT can serve after a
// restart, could change neither (6 hours before a silent node counts
// unreached; 2,048 waiting): both had no flag. The flags, or their
// environment variables, reach the rollout runner and the broker.
func TestRolloutAndBrokerLimitFlags(t *testing.T) {
	for _, c := range []struct {
		args          []string
		env           map[string]string
		nodeTimeout   time.Duration
		maxConnecting int
	}{
		{nil, nil, 6 * time.Hour, 2048},
		{[]string{"--rollout-node-timeout", "48h"}, map[string]string{"LOAXA_MQTT_MAX_CONNECTING": "4096"}, 48 * time.Hour, 4096},
	} {
		cfg := testConfig(t)
		if err := cfg.Parse(c.args, func(k string) string { return c.env[k] }); err != nil {
			t.Fatalf("%v %v: %v", c.args, c.env, err)
		}
		a := New(cfg, slog.New(slog.DiscardHandler))
		if err := a.Open(); err != nil {
			t.Fatal(err)
		}
		if a.Rollouts.NodeTimeout != c.nodeTimeout || a.Broker.MaxConnecting != c.maxConnecting {
			t.Errorf("%v %v: rollout node timeout %v, broker max connecting %d; want %v and %d",
				c.args, c.env, a.Rollouts.NodeTimeout, a.Broker.MaxConnecting, c.nodeTimeout, c.maxConnecting)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// A busy port fails Open at once, and nothing stays open behind it. The
// start-up log names the addresses the first one is bound to.
func TestOpenFailsOnBusyPort(t *testing.T) {
	var logs syncbuf.Buffer
	first := New(testConfig(t), slog.New(slog.NewTextHandler(&logs, nil)))
	if err := first.Open(); err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	startLogNames(t, logs.String(), "http=http://"+first.HTTP.ListenAddr(), "mqtt=tcp://"+first.Broker.ListenAddr())
	cfg := testConfig(t)
	cfg.HTTPAddr = first.HTTP.Addr
	if l := first.HTTP.URL(); l != "" {
		cfg.HTTPAddr = strings.TrimPrefix(l, "http://")
	}
	second := New(cfg, slog.New(slog.DiscardHandler))
	err := second.Open()
	if err == nil {
		second.Close()
		t.Fatal("a second controller opened on the same HTTP port")
	}
	if !strings.Contains(err.Error(), "listen") {
		t.Errorf("error %q does not say the port is busy", err)
	}
}

// startLogNames checks that the "controller started" line in logs holds
// every one of want. A technician reading the journal saw only "embedded
// broker (in-process)" and could not tell where the broker listened, or
// whether with TLS: the line names every listener with its scheme and
// the port actually bound.
func startLogNames(t *testing.T, logs string, want ...string) {
	t.Helper()
	var line string
	for l := range strings.Lines(logs) {
		if strings.Contains(l, `msg="controller started"`) {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no start-up line in the log:\n%s", logs)
	}
	for _, w := range want {
		if !strings.Contains(line, w+" ") {
			t.Errorf("start-up line %q does not name %s", strings.TrimSpace(line), w)
		}
	}
}

func testConfig(t *testing.T) Config {
	c := DefaultConfig()
	c.HTTPAddr, c.MQTTAddr, c.DataDir, c.AdminPassword = "127.0.0.1:0", "127.0.0.1:0", t.TempDir(), "test-admin-password"
	// The admin's password at bcrypt's lowest cost: at the default, a
	// second of CPU under the race detector for each controller started.
	c.PasswordCost = bcrypt.MinCost
	return c
}

// The first start creates admin with a generated password printed once; a
// restart on the same data keeps it and prints nothing.
func TestBootstrapAdminOnce(t *testing.T) {
	cfg := testConfig(t)
	cfg.AdminPassword = ""
	var out strings.Builder
	a := New(cfg, slog.New(slog.DiscardHandler))
	a.Out = &out
	if err := a.Open(); err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(out.String(), "password: ")
	password, _, _ := strings.Cut(after, "\n")
	u, err := a.Users.FindUserByUsername(t.Context(), "admin")
	if !ok || err != nil || !loaxa.PasswordMatches(u.PasswordHash, password) || u.Role != loaxa.RoleAdmin {
		t.Fatalf("printed %q; admin %+v, %v", out.String(), u, err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	out.Reset()
	b := New(cfg, slog.New(slog.DiscardHandler))
	b.Out = &out
	if err := b.Open(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if out.Len() != 0 {
		t.Errorf("restart printed %q", out.String())
	}
	if u, err := b.Users.FindUserByUsername(t.Context(), "admin"); err != nil || !loaxa.PasswordMatches(u.PasswordHash, password) {
		t.Errorf("admin password changed on restart: %v", err)
	}
}

// A second controller on a data directory a running one holds (the
// systemd service and a `go run` in the same directory) is told so, as
// `controller backup --data` tells it, not "timeout".
func TestSecondControllerOnTheSameDataSaysTheStoreIsInUse(t *testing.T) {
	cfg := testConfig(t)
	first := New(cfg, slog.New(slog.DiscardHandler))
	if err := first.Open(); err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second := New(cfg, slog.New(slog.DiscardHandler))
	err := second.Open()
	if err == nil {
		second.Close()
		t.Fatal("a second controller opened the store a running one holds")
	}
	if !strings.Contains(err.Error(), "in use: a controller is running on it") {
		t.Errorf("error %q does not say a controller runs on %s", err, cfg.DataDir)
	}
}

// LOAXA_ADMIN_PASSWORD is held to the rule of every user's password:
// characters, not bytes, counted (a 9-character Vietnamese password was
// taken), and bcrypt's 72 bytes at most, refused naming the variable
// rather than with bcrypt's own error.
func TestAdminPasswordFromTheEnvironmentIsChecked(t *testing.T) {
	for _, password := range []string{"mật khẩu1", strings.Repeat("mật khẩu đài truyền thanh ", 3)} {
		cfg := testConfig(t)
		cfg.AdminPassword = password
		a := New(cfg, slog.New(slog.DiscardHandler))
		err := a.Open()
		if err == nil {
			a.Close()
			t.Errorf("started with admin password %q", password)
			continue
		}
		if !strings.Contains(err.Error(), "LOAXA_ADMIN_PASSWORD") {
			t.Errorf("password %q: error %q does not name LOAXA_ADMIN_PASSWORD", password, err)
		}
		// What the technician reads in the journal: the rule and the next
		// step, not the API error's Go form ("loaxa error: code=invalid
		// message=…", as it was).
		if strings.Contains(err.Error(), "code=") || !strings.Contains(err.Error(), "start the controller again") {
			t.Errorf("password %q: error %q: want the rule and the next step in words", password, err)
		}
	}
}

// A first start that fails (the MQTT port held by Debian's own mosquitto)
// creates no admin: the generated password it would have printed once,
// above the error, is printed by the first start that runs.
func TestFailedFirstStartLeavesTheAdminToTheNext(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := testConfig(t)
	cfg.AdminPassword = ""
	cfg.MQTTAddr = busy.Addr().String()
	var out strings.Builder
	a := New(cfg, slog.New(slog.DiscardHandler))
	a.Out = &out
	if err := a.Open(); err == nil {
		a.Close()
		t.Fatal("opened on a busy MQTT port")
	}
	if out.Len() != 0 {
		t.Errorf("the failed start printed %q", out.String())
	}

	cfg.MQTTAddr = "127.0.0.1:0"
	b := New(cfg, slog.New(slog.DiscardHandler))
	b.Out = &out
	if err := b.Open(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, after, ok := strings.Cut(out.String(), "password: ")
	password, _, _ := strings.Cut(after, "\n")
	u, err := b.Users.FindUserByUsername(t.Context(), "admin")
	if err != nil || !ok || !loaxa.PasswordMatches(u.PasswordHash, password) {
		t.Errorf("the first start that runs printed %q; admin: %v", out.String(), err)
	}
}
