package e2e

import (
	"fmt"
	"testing"
	"time"

	"loaxa.vn/e2e/rig"
)

// BenchmarkFirstSchedule measures how long a new node's first schedule
// takes, through the real controller, embedded broker and agent: from
// POST /nodes to the agent running its desired state (ms-to-node), and to
// the controller's running_version saying so (ms-to-report), which waits
// for the agent's state debounce (a second). Each op makes a node and
// starts its agent at once.
func BenchmarkFirstSchedule(b *testing.B) {
	c := rig.StartController(b, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	poll := func(what string, done func() bool) {
		deadline := time.Now().Add(30 * time.Second)
		for !done() {
			if time.Now().After(deadline) {
				b.Fatalf("%s: not within 30 s", what)
			}
			time.Sleep(time.Millisecond) // polling the agent and the API
		}
	}
	var toNode, toReport time.Duration
	i := 0
	for b.Loop() {
		i++
		id := fmt.Sprintf("first-%d", i)
		start := time.Now()
		n := rig.StartNode(b, c.CreateNode(id, "31"), rig.NodeOptions{})
		poll(id+" runs its first schedule", func() bool { return n.Agent.Status().DesiredVersion > 0 })
		toNode += time.Since(start)
		poll(id+"'s running_version", func() bool { return c.Node(id).Status.RunningVersion > 0 })
		toReport += time.Since(start)
	}
	b.ReportMetric(float64(toNode.Milliseconds())/float64(i), "ms-to-node")
	b.ReportMetric(float64(toReport.Milliseconds())/float64(i), "ms-to-report")
}
