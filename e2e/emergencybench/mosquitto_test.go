package emergencybench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"loaxa.vn/e2e/rig"
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
	url  string         // the controller's --broker; "" runs the embedded one
	mosq *rig.Mosquitto // nil: embedded
}

// startBenchBroker starts the broker envBroker selects for n nodes: a
// Mosquitto as a province installs it, with a soft limit of open files
// for n connections and more.
func startBenchBroker(b *testing.B, n int) *benchBroker {
	switch v := os.Getenv(envBroker); v {
	case "", "embedded":
		return &benchBroker{}
	case "mosquitto":
	default:
		b.Fatalf("%s=%q: want embedded or mosquitto", envBroker, v)
	}
	m := rig.StartMosquitto(b, uint64(n)+1024)
	return &benchBroker{url: m.ControllerBroker(), mosq: m}
}

// install makes the broker know the enrolled nodes (rig.Mosquitto.Install).
func (bb *benchBroker) install(b *testing.B, c *rig.Controller, probe *protocol.Credentials) {
	bb.mosq.Install(b, c, probe)
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
