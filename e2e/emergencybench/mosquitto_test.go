package emergencybench

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/mqtt"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/internal/mosquittotest"
	"loaxa.vn/protocol"
)

// envBroker selects the broker of BenchmarkControllerRound: "" or
// "embedded" (the controller's own), or "mosquitto": a real Mosquitto
// that the benchmark starts, configured as a province installs it.
const envBroker = "LOAXA_BENCH_BROKER"

// droppedLine is what Mosquitto logs (notice) when a client's queue is
// full and it starts dropping the messages for it: once per episode, not
// per message.
const droppedLine = "Outgoing messages are being dropped for client"

// benchBroker is the broker a round benchmark runs on.
type benchBroker struct {
	url  string                // the controller's --broker; "" runs the embedded one
	mosq *mosquittotest.Broker // nil: embedded
}

// startBenchBroker starts the broker envBroker selects for n nodes. A
// Mosquitto gets the configuration the controller exports
// (mqtt.MosquittoConf, with the files' paths of this run), a soft limit
// of open files for n connections and more, and until install the
// controller's two accounts alone.
func startBenchBroker(b *testing.B, n int) *benchBroker {
	switch v := os.Getenv(envBroker); v {
	case "", "embedded":
		return &benchBroker{}
	case "mosquitto":
	default:
		b.Fatalf("%s=%q: want embedded or mosquitto", envBroker, v)
	}
	user, pass := mqtt.ControllerUsername, loaxa.NewSecret()
	hash := loaxa.HashBrokerSecret(pass)
	pub := user + mqtt.PublishUsernameSuffix
	m := mosquittotest.Start(b, mosquittotest.Options{
		PasswordFile: user + ":" + hash + "\n" + pub + ":" + hash + "\n",
		ACL:          "user " + user + "\ntopic readwrite loa/v1/#\n\nuser " + pub + "\ntopic write loa/v1/#\n",
		Config:       mosquittotest.Installed(b, mqtt.MosquittoConf),
		OpenFiles:    uint64(n) + 1024,
	})
	u := url.URL{Scheme: "tcp", Host: m.Addr(), User: url.UserPassword(user, pass)}
	return &benchBroker{url: u.String(), mosq: m}
}

// install does what an operator does after enrolling: fetch the files
// from the controller, install them, reload Mosquitto. It returns once
// probe's node may connect and the controller's publishing connection,
// refused so far, is up.
func (bb *benchBroker) install(b *testing.B, c *rig.Controller, probe *protocol.Credentials) {
	if bb.mosq == nil {
		return
	}
	var files struct {
		Files   map[string]string
		Missing []string
	}
	c.MustDo("GET", "/api/v1/broker/mosquitto", nil, &files)
	if len(files.Missing) > 0 {
		b.Fatalf("nodes left out of the password file: %v", files.Missing)
	}
	if files.Files["loaxa.conf"] != mqtt.MosquittoConf {
		b.Fatalf("the controller exports another configuration than the benchmark runs:\n%s", files.Files["loaxa.conf"])
	}
	bb.mosq.SetAuth(files.Files["loaxa.passwd"], files.Files["loaxa.acl"])
	rig.Eventually(b, time.Minute, "mosquitto knows the enrolled nodes", func() bool {
		o := paho.NewClientOptions().AddBroker(probe.Broker).SetClientID(probe.Node).
			SetUsername(probe.Username).SetPassword(probe.Secret).SetConnectTimeout(5 * time.Second)
		cl := paho.NewClient(o)
		tok := cl.Connect()
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			time.Sleep(200 * time.Millisecond) // the reload is asynchronous
			return false
		}
		cl.Disconnect(0)
		return true
	})
	// The publishing connection retries at most 10 s apart.
	rig.Eventually(b, time.Minute, "the controller's publishing connection", func() bool {
		return strings.Contains(bb.mosq.Log(), " as "+mqtt.ControllerUsername+mqtt.PublishUsernameSuffix+" ")
	})
}

// cpu is the Mosquitto process's CPU time so far (0 on the embedded
// broker, whose CPU is the controller's).
func (bb *benchBroker) cpu(b *testing.B) time.Duration {
	if bb.mosq == nil {
		return 0
	}
	d, err := pidCPU(bb.mosq.Pid())
	if err != nil {
		b.Fatalf("mosquitto: %v", err)
	}
	return d
}

// drops is how often Mosquitto logged so far that it began dropping a
// client's messages.
func (bb *benchBroker) drops() int {
	if bb.mosq == nil {
		return 0
	}
	return strings.Count(bb.mosq.Log(), droppedLine)
}

// dropLines returns Mosquitto's lines about dropping, for the log.
func (bb *benchBroker) dropLines() string {
	if bb.mosq == nil {
		return ""
	}
	var out []string
	for line := range strings.Lines(bb.mosq.Log()) {
		if strings.Contains(line, droppedLine) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return strings.Join(out, "; ")
}

// pidCPU is process pid's user and system CPU time so far
// (/proc/<pid>/stat, in clock ticks of 10 ms).
func pidCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command's name in parentheses: utime and
	// stime are the 12th and 13th.
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	var total time.Duration
	for _, s := range f[11:13] {
		ticks, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat %q: %w", pid, s, err)
		}
		total += time.Duration(ticks) * 10 * time.Millisecond
	}
	return total, nil
}
