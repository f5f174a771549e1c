package emergencybench

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/mqtt"
	"loaxa.vn/e2e/rig"
)

// TestAgentAlertTraffic prints what real node agents (a firmware-sim
// fleet of 2, as the benchmark runs them) publish for one emergency after
// a warm-up one: every message on the nodes' state and event topics, when
// (after the API call), its size and its body. It is how the thin nodes
// of BenchmarkControllerRound were made to publish the same; it runs only
// with LOAXA_BENCH_CAPTURE=1.
func TestAgentAlertTraffic(t *testing.T) {
	if os.Getenv("LOAXA_BENCH_CAPTURE") == "" {
		t.Skip("set LOAXA_BENCH_CAPTURE=1 to print a real agent's messages for an alert")
	}
	dir := t.TempDir()
	sim := filepath.Join(dir, "firmware-sim")
	if out, err := exec.Command("go", "build", "-o", sim, "loaxa.vn/firmware-sim").CombinedOutput(); err != nil {
		t.Fatalf("go build firmware-sim: %v\n%s", err, out)
	}
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	c := rig.StartControllerWith(t, rig.ControllerOptions{Logger: quiet})
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")

	type seen struct {
		at      time.Time
		topic   string
		qos     byte
		payload string
	}
	var mu sync.Mutex
	var msgs []seen
	sniff := paho.NewClient(paho.NewClientOptions().AddBroker(c.App.Broker.URL()).SetClientID("sniffer").
		SetUsername(mqtt.ControllerUsername).SetPassword(c.App.Broker.ControllerSecret))
	if tok := sniff.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("sniffer: %v", tok.Error())
	}
	defer sniff.Disconnect(50)
	tok := sniff.SubscribeMultiple(map[string]byte{"loa/v1/node/+/state": 1, "loa/v1/node/+/event": 1, "loa/v1/node/+/cmd": 1}, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		msgs = append(msgs, seen{time.Now(), m.Topic(), m.Qos(), string(m.Payload())})
		mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("sniffer subscribe: %v", tok.Error())
	}

	cmd := exec.Command(sim, "fleet", "--controller", c.URL, "--nodes", "2", "--area", "12346", "--prefix", "cap",
		"--wait", "1m", "--log-level", "warn", "--agent-log-level", "error")
	cmd.Env = append(os.Environ(), "LOAXA_TOKEN="+c.Token)
	f := startHelper(t, "fleet", cmd)
	defer f.stop(t)
	rig.Eventually(t, time.Minute, "both nodes online", func() bool {
		var resp struct{ Nodes []*loaxa.Node }
		c.MustDo("GET", "/api/v1/nodes?area=12346", nil, &resp)
		on := 0
		for _, nd := range resp.Nodes {
			if nd.Status.State == loaxa.NodeOnline {
				on++
			}
		}
		return on == 2
	})
	ct := c.Upload("bao-dong.wav", rig.ToneWAV(880, 200*time.Millisecond, 16000, 1))
	for round := range 2 {
		time.Sleep(3 * time.Second) // the nodes' states after connecting, out of the way
		mu.Lock()
		msgs = nil
		mu.Unlock()
		t0 := time.Now()
		var em loaxa.Emergency
		c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": ct.ID, "targets": []string{"12346"}, "repeat": 1}, &em)
		time.Sleep(15 * time.Second)
		mu.Lock()
		fmt.Printf("round %d: lead %d ms, start %v after the call\n", round, em.Areas[0].LeadMS, em.Areas[0].Start.Sub(t0).Round(time.Millisecond))
		for _, m := range msgs {
			if round == 1 || !strings.HasSuffix(m.topic, "/cmd") {
				fmt.Printf("%8.3f s  %-32s qos %d  %5d B  %s\n", m.at.Sub(t0).Seconds(), m.topic, m.qos, len(m.payload), m.payload)
			}
		}
		mu.Unlock()
	}
}
