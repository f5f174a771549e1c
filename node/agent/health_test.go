package agent_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	simboard "loaxa.vn/firmware-sim/board"
	"loaxa.vn/internal/promtest"
	"loaxa.vn/node/agent"
	"loaxa.vn/node/audio"
	"loaxa.vn/node/nodetest"
	"loaxa.vn/protocol"
	"loaxa.vn/protocol/nodeaudio"
)

// TestHeartbeat: with nothing changing, the node still publishes its state
// once per heartbeat, with the interval, its uptime, free disk and the
// settings it applies.
func TestHeartbeat(t *testing.T) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	cred := ctl.Credentials("n1", "x1")
	n := startAgent(t, cred, options{tune: func(c *agent.Config) { c.Heartbeat = 100 * time.Millisecond }})
	waitConnected(t, n)
	nodetest.Eventually(t, 10*time.Second, "fewer than 5 states on an idle node", func() bool {
		return len(ctl.Log("n1").States) >= 5
	})
	st := ctl.Log("n1").States
	last := st[len(st)-1]
	if last.Status != protocol.StatusOnline || last.HeartbeatMS != 100 || last.DiskFreeBytes == nil || *last.DiskFreeBytes <= 0 ||
		last.AmplifierPolicy != protocol.AmpAuto {
		t.Errorf("heartbeat state: %+v", last)
	}
}

// captureOutput plays nothing; it records the peak sample of each play.
type captureOutput struct {
	mu    sync.Mutex
	peaks []int
}

var _ agent.Output = (*captureOutput)(nil)

func (c *captureOutput) Play(ctx context.Context, pcm io.Reader) error {
	b, err := io.ReadAll(pcm)
	if err != nil {
		return err
	}
	peak := 0
	for i := 0; i+1 < len(b); i += 2 {
		v := int(int16(binary.LittleEndian.Uint16(b[i:])))
		peak = max(peak, v, -v)
	}
	c.mu.Lock()
	c.peaks = append(c.peaks, peak)
	c.mu.Unlock()
	return ctx.Err()
}

func (c *captureOutput) Close() error { return nil }

func (c *captureOutput) Peaks() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.peaks)
}

// selfTests returns the self-test results the controller holds.
func selfTests(ctl *nodetest.Controller, node string) []protocol.TestResult {
	var out []protocol.TestResult
	for _, e := range ctl.Events(node) {
		if e.Type == protocol.EventSelfTest && e.Test != nil {
			out = append(out, *e.Test)
		}
	}
	return out
}

// TestVolumeMuteAndEmergency: a non-emergency play follows the node's
// volume; muted, it is not played (suspended, muted); an emergency plays
// at full level whatever the volume and mute.
func TestVolumeMuteAndEmergency(t *testing.T) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	cred := ctl.Credentials("n1", "x1")
	out := &captureOutput{}
	n := startAgent(t, cred, options{tune: func(c *agent.Config) { c.Output = out }})
	waitConnected(t, n)
	ref := ctl.AddContent(200 * time.Millisecond)

	d := desired("n1", 1, []protocol.Occurrence{occurrence("full", ref, time.Now().Add(800*time.Millisecond))}, ref)
	d.Config.Volume = 15
	ctl.PublishDesired(d)
	waitEvents(t, ctl, "n1", []string{"received full", "started full", "completed full"})

	d = desired("n1", 2, []protocol.Occurrence{occurrence("quiet", ref, time.Now().Add(800*time.Millisecond))}, ref)
	d.Config.Volume = 7
	ctl.PublishDesired(d)
	waitEvents(t, ctl, "n1", []string{"received full", "started full", "completed full", "received quiet", "started quiet", "completed quiet"})
	nodetest.Eventually(t, 5*time.Second, "volume 7 not in state", func() bool {
		st := ctl.Log("n1").States
		v := st[len(st)-1].Volume
		return v != nil && *v == 7
	})

	emergency := occurrence("alarm", ref, time.Now().Add(1500*time.Millisecond))
	emergency.Priority = protocol.PriorityEmergency
	d = desired("n1", 3, []protocol.Occurrence{occurrence("muted", ref, time.Now().Add(800*time.Millisecond)), emergency}, ref)
	d.Config.Volume, d.Config.Muted = 3, true
	ctl.PublishDesired(d)
	waitEvents(t, ctl, "n1", []string{"received full", "started full", "completed full", "received quiet", "started quiet", "completed quiet",
		"received muted", "received alarm", "suspended muted muted", "started alarm", "completed alarm"})

	peaks := out.Peaks()
	if len(peaks) != 3 {
		t.Fatalf("%d plays, want 3 (the muted one not played): %v", len(peaks), peaks)
	}
	ratio := float64(peaks[1]) / float64(peaks[0])
	if want := audio.VolumeGain(7); math.Abs(ratio-want) > 0.01 {
		t.Errorf("volume 7 played at %.3f of volume 15, want %.3f (peaks %v)", ratio, want, peaks)
	}
	if peaks[2] != peaks[0] {
		t.Errorf("emergency peak %d, want the full level %d", peaks[2], peaks[0])
	}
}

// gatedOutput hands the test the peak sample of each 100 ms the play
// gives it and waits for the test's word before it reads on, until free
// is closed.
type gatedOutput struct {
	peaks chan int
	next  chan struct{}
	free  chan struct{}
}

var _ agent.Output = (*gatedOutput)(nil)

func (g *gatedOutput) Play(ctx context.Context, pcm io.Reader) error {
	buf := make([]byte, nodeaudio.Bytes(100*time.Millisecond))
	for {
		n, err := io.ReadFull(pcm, buf)
		peak := 0
		for i := 0; i+1 < n; i += 2 {
			v := int(int16(binary.LittleEndian.Uint16(buf[i:])))
			peak = max(peak, v, -v)
		}
		if err != nil {
			return ctx.Err()
		}
		select {
		case <-g.free:
			continue
		default:
		}
		select {
		case g.peaks <- peak:
		case <-g.free:
			continue
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case <-g.next:
		case <-g.free:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (g *gatedOutput) Close() error { return nil }

// TestVolumeAndMuteApplyToThePlayOnAir: residents complained at night of a
// long bulletin at full level; the technician turned the cluster down,
// then muted it, and nothing changed until the next bulletin. A volume or
// mute set while a normal play is on air applies to it at once: the next
// audio the output reads is at the new level, and muted, the play stops,
// suspended with reason muted (it would play again if unmuted in time:
// TestUnmutedInTimePlaysWhatTheMuteHeldBack). An emergency on air keeps its full level and
// plays on whatever the node's volume and mute.
func TestVolumeAndMuteApplyToThePlayOnAir(t *testing.T) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	cred := ctl.Credentials("n1", "x1")
	out := &gatedOutput{peaks: make(chan int), next: make(chan struct{}), free: make(chan struct{})}
	freed := false
	free := func() {
		if !freed {
			close(out.free)
			freed = true
		}
	}
	defer free()
	n := startAgent(t, cred, options{tune: func(c *agent.Config) { c.Output = out }})
	waitConnected(t, n)
	samples := make([]int16, 5*nodeaudio.SampleRate)
	for i := range samples {
		samples[i] = int16(8000 * math.Sin(2*math.Pi*440*float64(i)/nodeaudio.SampleRate))
	}
	b, err := nodeaudio.Encode(samples)
	if err != nil {
		t.Fatal(err)
	}
	ref := ctl.AddFile(b, 5*time.Second)
	peak := func() int {
		t.Helper()
		select {
		case p := <-out.peaks:
			return p
		case <-time.After(15 * time.Second):
			t.Fatal("the output was given no audio")
			return 0
		}
	}
	readOn := func() {
		t.Helper()
		select {
		case out.next <- struct{}{}:
		case <-time.After(15 * time.Second):
			t.Fatal("the output is not reading on: the play ended")
		}
	}
	// settings publishes version v of the desired state with occs, and
	// waits until the node says it applies it.
	settings := func(v uint64, occs []protocol.Occurrence, volume int, muted bool) {
		t.Helper()
		d := desired("n1", v, occs, ref)
		d.Config.Volume, d.Config.Muted = volume, muted
		ctl.PublishDesired(d)
		nodetest.Eventually(t, 10*time.Second, fmt.Sprintf("version %d not applied", v), func() bool {
			st := ctl.Log("n1").States
			return len(st) > 0 && st[len(st)-1].DesiredVersion == v
		})
	}
	within := func(got, want float64) bool { return math.Abs(got-want) <= 0.1*want }

	night := []protocol.Occurrence{occurrence("night", ref, time.Now().Add(800*time.Millisecond))}
	settings(1, night, 15, false)
	peak()
	readOn()
	full := peak()
	settings(2, night, 5, false)
	readOn()
	if got, want := float64(peak())/float64(full), audio.VolumeGain(5); !within(got, want) {
		t.Errorf("turned down to 5 during the play, the next audio is at %.3f of full, want %.3f", got, want)
	}
	settings(3, night, 5, true) // the output, waiting to read on, is stopped
	waitEvents(t, ctl, "n1", []string{"received night", "started night", "suspended night muted"})

	// The bulletin the mute stopped, taken off the programme, does not
	// play again when the node is unmuted.
	alarm := occurrence("alarm", ref, time.Now().Add(800*time.Millisecond))
	alarm.Priority = protocol.PriorityEmergency
	alarms := []protocol.Occurrence{alarm}
	settings(4, alarms, 15, false)
	peak()
	readOn()
	peak()
	settings(5, alarms, 1, true)
	readOn()
	if got := float64(peak()) / float64(full); !within(got, 1) {
		t.Errorf("an emergency on air turned down and muted plays at %.3f of full, want full", got)
	}
	free()
	waitEvents(t, ctl, "n1", []string{"received night", "started night", "suspended night muted", "received alarm", "failed night removed", "started alarm", "completed alarm"})
}

// TestSelfTests: the silent test reports the speaker line and passes on a
// sound box; a cut line fails it; the audible test plays the tone at the
// test volume with the amplifier on.
func TestSelfTests(t *testing.T) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	cred := ctl.Credentials("n1", "x1")
	b, err := simboard.New(nil, simboard.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	out := &captureOutput{}
	n := startAgent(t, cred, options{hw: b, tune: func(c *agent.Config) { c.Output = out }})
	waitConnected(t, n)

	ctl.SendCommand("n1", protocol.Command{Name: protocol.CmdSelfTest, Test: protocol.TestSilent, TestID: "st1"})
	nodetest.Eventually(t, 10*time.Second, "no result of st1", func() bool { return len(selfTests(ctl, "n1")) == 1 })
	if r := selfTests(ctl, "n1")[0]; !r.Pass || r.ID != "st1" || r.Line != protocol.LineOK || r.Ohms == nil {
		t.Errorf("silent test of a sound box: %+v", r)
	}
	nodetest.Eventually(t, 5*time.Second, "amplifier left on after the silent test", func() bool { return !b.Amplifier() })

	b.SetSpeakerLine(protocol.LineOpen)
	ctl.SendCommand("n1", protocol.Command{Name: protocol.CmdSelfTest, Test: protocol.TestSilent, TestID: "st2"})
	nodetest.Eventually(t, 10*time.Second, "no result of st2", func() bool { return len(selfTests(ctl, "n1")) == 2 })
	if r := selfTests(ctl, "n1")[1]; r.Pass || !slices.Equal(r.Problems, []string{protocol.ProblemLineOpen}) || r.Line != protocol.LineOpen {
		t.Errorf("silent test of a cut line: %+v", r)
	}

	b.SetSpeakerLine(protocol.LineOK)
	ctl.SendCommand("n1", protocol.Command{Name: protocol.CmdSelfTest, Test: protocol.TestAudible, TestID: "st3"})
	nodetest.Eventually(t, 10*time.Second, "no result of st3", func() bool { return len(selfTests(ctl, "n1")) == 3 })
	if r := selfTests(ctl, "n1")[2]; !r.Pass || r.Kind != protocol.TestAudible {
		t.Errorf("audible test: %+v", r)
	}
	peaks := out.Peaks()
	want := int(0.5 * math.MaxInt16 * audio.VolumeGain(protocol.TestVolume))
	if len(peaks) != 1 || peaks[0] < want-2 || peaks[0] > want+2 {
		t.Errorf("tone peaks %v, want one at about %d", peaks, want)
	}
	// The amplifier goes off after the result is sent: look at the relay
	// once it has.
	nodetest.Eventually(t, 5*time.Second, "amplifier left on after the audible test", func() bool { return !b.Amplifier() })
	sw := b.Switches()
	if len(sw) < 6 || !sw[4].On || sw[5].On {
		t.Errorf("relay moves %+v: want on/off for each of the three tests", sw)
	}
}

// TestRemoteCommands: reboot calls the board's reboot; state-now publishes
// the state at once.
func TestRemoteCommands(t *testing.T) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	cred := ctl.Credentials("n1", "x1")
	rebooted := make(chan struct{}, 1)
	n := startAgent(t, cred, options{statePoll: time.Hour, tune: func(c *agent.Config) {
		c.Heartbeat = time.Hour
		c.Reboot = func() { rebooted <- struct{}{} }
	}})
	waitConnected(t, n)
	nodetest.Eventually(t, 10*time.Second, "no first state", func() bool { return len(ctl.Log("n1").States) > 0 })
	before := len(ctl.Log("n1").States)
	ctl.SendCommand("n1", protocol.Command{Name: protocol.CmdStateNow})
	nodetest.Eventually(t, 10*time.Second, "no state after state-now", func() bool { return len(ctl.Log("n1").States) > before })
	ctl.SendCommand("n1", protocol.Command{Name: protocol.CmdReboot})
	select {
	case <-rebooted:
	case <-time.After(10 * time.Second):
		t.Fatal("reboot not called")
	}
}

// TestMetrics scrapes the agent's metrics after a play and a refused
// message, parsed with Prometheus' own parser.
func TestMetrics(t *testing.T) {
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	cred := ctl.Credentials("n1", "x1")
	n := startAgent(t, cred, options{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(n.a.Collectors()...)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	waitConnected(t, n)
	ref := ctl.AddContent(200 * time.Millisecond)
	ctl.PublishDesired(desired("n1", 1, []protocol.Occurrence{occurrence("o1", ref, time.Now().Add(800*time.Millisecond))}, ref))
	waitEvents(t, ctl, "n1", []string{"received o1", "started o1", "completed o1"})
	nodetest.Eventually(t, 5*time.Second, "outbox emptied", func() bool { return n.a.Status().Outbox == 0 })

	m := promtest.Scrape(t, srv.URL)
	for _, tt := range []struct {
		name   string
		labels []string
		want   func(float64) bool
	}{
		{"loaxa_node_events_total", []string{"type", "completed"}, func(v float64) bool { return v == 1 }},
		{"loaxa_node_events_total", []string{"type", "started"}, func(v float64) bool { return v == 1 }},
		{"loaxa_node_link_connects_total", nil, func(v float64) bool { return v >= 1 }},
		{"loaxa_node_link_deaf_total", nil, func(v float64) bool { return v == 0 }},
		{"loaxa_node_link_restated_total", nil, func(v float64) bool { return v == 0 }},
		{"loaxa_node_cache_bytes", nil, func(v float64) bool { return v == float64(ref.Size) }},
		{"loaxa_node_cache_limit_bytes", nil, func(v float64) bool { return v > 0 }},
		{"loaxa_node_outbox_events", nil, func(v float64) bool { return v == 0 }},
		{"loaxa_node_storage_damaged_files", nil, func(v float64) bool { return v == 0 }},
		{"loaxa_node_sound_device_missing", nil, func(v float64) bool { return v == 0 }},
		{"loaxa_node_store_in_memory", nil, func(v float64) bool { return v == 0 }},
		{"loaxa_node_desired_version", nil, func(v float64) bool { return v == 1 }},
	} {
		if v, ok := m.Value(tt.name, tt.labels...); !ok || !tt.want(v) {
			t.Errorf("%s%v = %v (present %v)", tt.name, tt.labels, v, ok)
		}
	}
}
