package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"loaxa.vn/controller/app"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/firmware-sim/board"
	"loaxa.vn/firmware-sim/fleet"
	"loaxa.vn/internal/clock"
	"loaxa.vn/internal/netproxy"
	"loaxa.vn/node/agent"
	"loaxa.vn/node/audio"
	"loaxa.vn/protocol"
)

// fastHealth makes the controller sweep for silent nodes often.
func fastHealth(cfg *app.Config) { cfg.Health.Sweep = 50 * time.Millisecond }

// quickStates makes an agent publish changes at once.
func quickStates(c *agent.Config) {
	c.StateDebounce = 20 * time.Millisecond
	c.MQTTMaxReconnect = 200 * time.Millisecond
}

// startFleet enrols and runs n simulated boxes in area through the API;
// tune, if given, adjusts the fleet's configuration.
func startFleet(t *testing.T, c *rig.Controller, prefix, area string, n int, tune ...func(*fleet.Config)) *fleet.Fleet {
	t.Helper()
	cfg := fleet.Config{
		Controller: c.URL, Token: c.Token, Nodes: n, Area: area, Prefix: prefix,
		AgentLogger: rig.Logger(t, "fleet"),
		Tune:        func(ac *agent.Config) { quickStates(ac); ac.ContentSpread = -1 },
	}
	for _, f := range tune {
		f(&cfg)
	}
	f, err := fleet.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("fleet: %v", err)
		}
	})
	rig.Eventually(t, 30*time.Second, fmt.Sprintf("%d %s nodes online", n, prefix), func() bool {
		var resp struct{ Nodes []loaxa.Node }
		c.MustDo("GET", "/api/v1/nodes?state=online&area="+area, nil, &resp)
		return len(resp.Nodes) == n
	})
	return f
}

func openAlarms(c *rig.Controller, node string) map[string]loaxa.Alarm {
	var resp struct{ Alarms []loaxa.Alarm }
	c.MustDo("GET", "/api/v1/alarms?state=open&node="+node, nil, &resp)
	out := map[string]loaxa.Alarm{}
	for _, a := range resp.Alarms {
		out[a.Kind] = a
	}
	return out
}

func alarm(c *rig.Controller, node, kind string) (loaxa.Alarm, bool) {
	var resp struct{ Alarms []loaxa.Alarm }
	c.MustDo("GET", "/api/v1/alarms?kind="+kind+"&node="+node, nil, &resp)
	if len(resp.Alarms) == 0 {
		return loaxa.Alarm{}, false
	}
	return resp.Alarms[0], true // newest first
}

// TestInjectedFaultsRaiseAndClearAlarms breaks a simulated box one fault at
// a time through the simulator's HTTP control, and checks that each
// surfaces as the right alarm and node fault, and ends when mended. Then a
// dead amplifier driver makes a bulletin fail: the failed-to-sound alarm
// opens, and the next completed play ends it.
// TestSoundCardPulledOutOfASimulatedBox: a box's sound card is pulled out
// in the middle of an alert, through the firmware simulator's control.
// The agent stops the play and is started again without the card, as
// systemd starts the node program: the alert waits, the board says
// "suspended" for the sound device, the no-sound-device alarm opens. The
// card plugged back in, the agent starts again with it and plays the whole
// alert; the alarm ends. Pulled out again while nothing plays, the agent
// finds it within its state poll.
func TestSoundCardPulledOutOfASimulatedBox(t *testing.T) {
	t.Parallel()
	c, f, control := faultyBox(t, "sc", func(cfg *fleet.Config) {
		cfg.SoundRecheck = 100 * time.Millisecond
		tune := cfg.Tune
		cfg.Tune = func(ac *agent.Config) { tune(ac); ac.StatePoll = 200 * time.Millisecond }
	})
	const id = "sc-0001"
	card := func(method string) { t.Helper(); injectFault(t, control, id, method, board.FaultSoundCardOut) }
	message := c.Upload("bao-dong.wav", rig.ToneWAV(660, 4*time.Second, 16000, 1))
	var em loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": message.ID, "targets": []string{"12346"}, "repeat": 1}, &em)
	cluster := func() loaxa.EmergencyNode {
		if rep := report(c, em.ID); len(rep.Nodes) == 1 {
			return rep.Nodes[0]
		}
		return loaxa.EmergencyNode{}
	}
	rig.Eventually(t, 20*time.Second, "the alert sounding", func() bool { return cluster().State == string(loaxa.DeliveryStarted) })

	card("POST")
	rig.Eventually(t, 20*time.Second, "the alert suspended for the sound device", func() bool {
		n := cluster()
		return n.State == string(loaxa.DeliverySuspended) && n.Reason == protocol.ReasonAudioDevice
	})
	rig.Eventually(t, 20*time.Second, "the no-sound-device alarm open", func() bool {
		_, ok := openAlarms(c, id)[loaxa.AlarmNoSoundDevice]
		return ok
	})
	if n := f.Sim(id).Restarts(); n != 1 {
		t.Errorf("the box started its agent again %d times, want once (without the card)", n)
	}
	if got := cluster(); got.State != string(loaxa.DeliverySuspended) {
		t.Errorf("without its card the alert is %s, want it still suspended", got.State)
	}

	card("DELETE")
	rig.Eventually(t, 30*time.Second, "the alert played whole after the card came back", func() bool {
		return cluster().State == string(loaxa.DeliveryCompleted)
	})
	if n := cluster(); n.PlayedMS < 4000 {
		t.Errorf("played %d ms after the card came back, want the whole alert (its message alone is 4,000)", n.PlayedMS)
	}
	rig.Eventually(t, 10*time.Second, "the no-sound-device alarm ended", func() bool {
		a, ok := alarm(c, id, loaxa.AlarmNoSoundDevice)
		return ok && !a.Open()
	})
	if n := f.Sim(id).Restarts(); n != 2 {
		t.Errorf("the box started its agent again %d times, want twice (without the card, then with it)", n)
	}

	// Pulled out while nothing plays: the agent finds it within its state
	// poll, not when the next alert fails on it.
	card("POST")
	rig.Eventually(t, 20*time.Second, "the no-sound-device alarm open again, with nothing played", func() bool {
		_, ok := openAlarms(c, id)[loaxa.AlarmNoSoundDevice]
		return ok
	})
	card("DELETE")
	rig.Eventually(t, 20*time.Second, "the no-sound-device alarm ended again", func() bool {
		_, ok := openAlarms(c, id)[loaxa.AlarmNoSoundDevice]
		return !ok && c.Node(id).Status.NoSoundDevice == ""
	})
}

// faultyBox starts a controller with fast health checks and a fleet of one
// box, prefix-0001, in commune 12346, and serves the fleet's fault
// injection (Fleet.Control) at the returned URL.
func faultyBox(t *testing.T, prefix string, tune ...func(*fleet.Config)) (*rig.Controller, *fleet.Fleet, string) {
	t.Helper()
	c := rig.StartControllerWith(t, rig.ControllerOptions{Configure: fastHealth})
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	f := startFleet(t, c, prefix, "12346", 1, tune...)
	control := httptest.NewServer(f.Control())
	t.Cleanup(control.Close)
	return c, f, control.URL
}

// injectFault raises (POST) or clears (DELETE) fault on box id through the
// fleet's control at url.
func injectFault(t *testing.T, url, id, method, fault string) {
	t.Helper()
	req, _ := http.NewRequest(method, url+"/boards/"+id+"/faults/"+fault, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s: %d", method, fault, resp.StatusCode)
	}
}

// TestSDCardGoneReadOnlyInASimulatedBox: a box whose SD card goes
// read-only restarts on a store in memory: the controller opens
// storage-failed, and an alert whose message the box never had plays
// whole, downloaded into memory. Once the card is sound again, the alarm
// ends.
func TestSDCardGoneReadOnlyInASimulatedBox(t *testing.T) {
	t.Parallel()
	c, f, control := faultyBox(t, "ro")
	const id = "ro-0001"
	rig.Eventually(t, 20*time.Second, id+" online", func() bool { return c.Node(id).Status.State == loaxa.NodeOnline })

	injectFault(t, control, id, "POST", board.FaultCardReadOnly)
	rig.Eventually(t, 20*time.Second, "the storage-failed alarm open", func() bool {
		_, ok := openAlarms(c, id)[loaxa.AlarmStorageFailed]
		return ok
	})
	if got := c.Node(id).Status.StorageFault; !strings.Contains(got, "read-only") {
		t.Errorf("the node's storage fault is %q, want the card read-only", got)
	}
	if n := f.Sim(id).Restarts(); n != 1 {
		t.Errorf("the box started its agent again %d times, want once", n)
	}
	message := c.Upload("bao-dong.wav", rig.ToneWAV(660, 3*time.Second, 16000, 1))
	var em loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": message.ID, "targets": []string{"12346"}, "repeat": 1}, &em)
	rig.Eventually(t, 30*time.Second, "the alert played", func() bool {
		_, ns := reportNodes(c, em.ID)
		return ns[id].State == string(loaxa.DeliveryCompleted)
	})
	if _, ns := reportNodes(c, em.ID); ns[id].PlayedMS < 3000 {
		t.Errorf("played %d ms, want the whole alert (its message alone is 3,000)", ns[id].PlayedMS)
	}

	injectFault(t, control, id, "DELETE", board.FaultCardReadOnly)
	rig.Eventually(t, 20*time.Second, "the storage-failed alarm ended", func() bool {
		a, ok := alarm(c, id, loaxa.AlarmStorageFailed)
		return ok && !a.Open() && c.Node(id).Status.StorageFault == ""
	})
	if n := f.Sim(id).Restarts(); n != 2 {
		t.Errorf("the box started its agent again %d times, want twice", n)
	}
}

func TestInjectedFaultsRaiseAndClearAlarms(t *testing.T) {
	t.Parallel()
	c, f, control := faultyBox(t, "hf")
	const id = "hf-0001"
	inject := func(method, fault string) { t.Helper(); injectFault(t, control, id, method, fault) }
	// relay-stuck shows only while the agent switches the relay; the
	// health model's unit test and the self-tests cover it.
	for fault, kind := range map[string]string{
		board.FaultSpeakerOpen: loaxa.AlarmSpeakerOpen, board.FaultSpeakerShort: loaxa.AlarmSpeakerShort,
		board.FaultMainsOff: loaxa.AlarmMainsOff, board.FaultBatteryLow: loaxa.AlarmBatteryLow,
		board.FaultOverheat: loaxa.AlarmOverheat, board.FaultDoorOpen: loaxa.AlarmDoorOpen,
		board.FaultWeakSignal: loaxa.AlarmWeakSignal, board.FaultAmplifierFault: loaxa.AlarmAmplifier,
	} {
		t.Run(fault, func(t *testing.T) {
			if open := openAlarms(c, id); len(open) != 0 {
				t.Fatalf("alarms open before %s: %v", fault, open)
			}
			inject("POST", fault)
			rig.Eventually(t, 10*time.Second, kind+" alarm open", func() bool {
				_, ok := openAlarms(c, id)[kind]
				return ok
			})
			if open := openAlarms(c, id); len(open) != 1 {
				t.Errorf("%s opened %v, want only %s", fault, open, kind)
			}
			faults := c.Node(id).Status.Faults
			if len(faults) != 1 || faults[0].Kind != kind || faults[0].Since.IsZero() {
				t.Errorf("node faults %+v", faults)
			}
			inject("DELETE", fault)
			rig.Eventually(t, 10*time.Second, kind+" alarm ended", func() bool {
				a, ok := alarm(c, id, kind)
				return ok && !a.Open() && !a.End.Before(a.Start)
			})
			if faults := c.Node(id).Status.Faults; len(faults) != 0 {
				t.Errorf("node faults after the fix: %+v", faults)
			}
		})
	}

	t.Run("failed-to-sound", func(t *testing.T) {
		b := f.Sim(id).Board
		b.FailAmplifier(errors.New("relay driver dead"))
		tone := c.Upload("tone.wav", rig.ToneWAV(440, 300*time.Millisecond, 16000, 1))
		c.Announce(tone.ID, []string{"12346"}, nil, time.Now().Add(2*time.Second))
		rig.Eventually(t, 20*time.Second, "failed-to-sound alarm open", func() bool {
			_, ok := openAlarms(c, id)[loaxa.AlarmFailedToSound]
			return ok
		})
		b.FailAmplifier(nil)
		c.Announce(tone.ID, []string{"12346"}, nil, time.Now().Add(2*time.Second))
		rig.Eventually(t, 20*time.Second, "failed-to-sound alarm ended", func() bool {
			a, ok := alarm(c, id, loaxa.AlarmFailedToSound)
			return ok && !a.Open()
		})
		if c.Node(id).Status.LastPlay.IsZero() {
			t.Error("no last play after a completed play")
		}
	})

	// A failing SD card: a bit of the cached bulletin changed through the
	// simulator's control; the next play finds it and the alarm opens.
	t.Run("storage-damaged", func(t *testing.T) {
		damage := func(box, query string) (int, map[string]string) {
			t.Helper()
			resp, err := http.Post(control+"/boards/"+box+"/storage/damage"+query, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]string
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			return resp.StatusCode, body
		}
		news := c.Upload("ban-tin.wav", rig.ToneWAV(523, 3*time.Second, 16000, 1))
		played := func(ann *loaxa.Announcement) func() bool {
			return func() bool {
				ds := c.Deliveries(ann.ID)
				return len(ds) == 1 && ds[0].State == loaxa.DeliveryCompleted
			}
		}
		rig.Eventually(t, 30*time.Second, "the bulletin played", played(c.Announce(news.ID, []string{"12346"}, nil, time.Now().Add(2*time.Second))))
		if status, body := damage("hf-9999", ""); status != http.StatusNotFound || body["error"] == "" {
			t.Errorf("damage on an unknown box: %d %v, want 404 with an error", status, body)
		}
		if status, body := damage(id, "?content="+strings.Repeat("0", 64)); status != http.StatusConflict || !strings.Contains(body["error"], "no cached content") {
			t.Errorf("damage of content not cached: %d %v, want 409 saying so", status, body)
		}
		if status, body := damage(id, "?content="+news.ID); status != http.StatusOK || body["content"] != news.ID {
			t.Fatalf("damage the bulletin: %d %v", status, body)
		}
		again := c.Announce(news.ID, []string{"12346"}, nil, time.Now().Add(2*time.Second))
		rig.Eventually(t, 20*time.Second, "storage-damaged alarm open", func() bool {
			a, ok := openAlarms(c, id)[loaxa.AlarmStorageDamaged]
			return ok && a.Facts.DamagedFiles == 1
		})
		rig.Eventually(t, 30*time.Second, "the bulletin played again, fetched anew", played(again))
	})
}

// TestOfflineByHeartbeatTimeoutAndLastWill runs the controller on a fake
// clock. A half-open link (every byte lost, nothing closed) sends no Last
// Will: the node goes stale, then offline, by its missed heartbeats alone,
// and the offline alarm follows. A cut link makes the broker send the
// node's Last Will: offline at once, the alarm after the threshold.
// Reconnecting ends each alarm.
func TestOfflineByHeartbeatTimeoutAndLastWill(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(time.Now())
	c := rig.StartControllerOn(t, "", clk)
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	cr := c.CreateNode("tt-01", "12346")
	link, err := netproxy.Start(strings.TrimPrefix(c.App.Broker.URL(), "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { link.Close() })
	rig.StartNode(t, cr, rig.NodeOptions{Broker: "tcp://" + link.Addr(), Tune: quickStates})
	state := func() string { return c.Node("tt-01").Status.State }
	rig.Eventually(t, 15*time.Second, "node online", func() bool { return state() == loaxa.NodeOnline })
	if hb := c.Node("tt-01").Status.HeartbeatMS; hb != agent.DefaultHeartbeat.Milliseconds() {
		t.Fatalf("heartbeat %d ms reported", hb)
	}
	offlineAlarm := func() (loaxa.Alarm, bool) { return alarm(c, "tt-01", loaxa.AlarmOffline) }

	// advanceUntil moves the controller's clock on in steps of the sweep
	// interval, sweeping after each, until cond holds: a state the node
	// sent just before the link froze may still arrive after a first step.
	// Left to the sweep's own timer, a loaded machine ran it after several
	// steps: the node went from online to offline, its stale 30 s stepped
	// over, and the test waited for stale in vain (a full run).
	advanceUntil := func(what string, cond func() bool) {
		t.Helper()
		rig.Eventually(t, 20*time.Second, what, func() bool {
			if cond() {
				return true
			}
			clk.Advance(5 * time.Second)
			c.App.Health.SweepNow(context.Background())
			return false
		})
	}
	link.Freeze()
	clk.Advance(150 * time.Second) // 2.5 heartbeats of 60 s
	advanceUntil("node stale", func() bool { return state() == loaxa.NodeStale })
	advanceUntil("node offline by timeout", func() bool { return state() == loaxa.NodeOffline })
	if _, ok := offlineAlarm(); ok {
		t.Fatal("offline alarm before the threshold")
	}
	clk.Advance(9 * time.Minute)
	advanceUntil("offline alarm", func() bool { a, ok := offlineAlarm(); return ok && a.Open() })
	link.Thaw()
	link.Cut() // the streams lost bytes: start afresh
	link.Restore()
	rig.Eventually(t, 15*time.Second, "node back online", func() bool { return state() == loaxa.NodeOnline })
	rig.Eventually(t, 10*time.Second, "offline alarm ended", func() bool { a, _ := offlineAlarm(); return !a.Open() })

	first, _ := offlineAlarm()
	link.Cut()
	rig.Eventually(t, 10*time.Second, "node offline by its Last Will", func() bool { return state() == loaxa.NodeOffline })
	clk.Advance(9 * time.Minute)
	advanceUntil("second offline alarm", func() bool { a, ok := offlineAlarm(); return ok && a.Open() && a.ID != first.ID })
	link.Restore()
	rig.Eventually(t, 15*time.Second, "node back online again", func() bool { return state() == loaxa.NodeOnline })
	rig.Eventually(t, 10*time.Second, "second offline alarm ended", func() bool { a, _ := offlineAlarm(); return !a.Open() })
}

// TestSelfTestFindsTheCutLine: of 50 simulated clusters one has a cut
// speaker line; a silent self-test of the commune names exactly that one.
func TestSelfTestFindsTheCutLine(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	f := startFleet(t, c, "st", "12346", 50)
	f.Sim("st-0037").Board.SetSpeakerLine(protocol.LineOpen)

	var run loaxa.SelfTest
	c.MustDo("POST", "/api/v1/selftests", map[string]any{"kind": "silent", "area": "12346"}, &run)
	if len(run.Nodes) != 50 {
		t.Fatalf("self-test of %d nodes, want 50", len(run.Nodes))
	}
	var rep loaxa.SelfTestReport
	rig.Eventually(t, 30*time.Second, "every node answered", func() bool {
		c.MustDo("GET", "/api/v1/selftests/"+run.ID, nil, &rep)
		return rep.Complete
	})
	if rep.Pass != 49 || rep.Fail != 1 || rep.NoAnswer != 0 {
		t.Fatalf("report: %d pass, %d fail, %d no answer", rep.Pass, rep.Fail, rep.NoAnswer)
	}
	bad := rep.Rows[0]
	if bad.Node != "st-0037" || bad.Status != loaxa.TestFail || !slices.Equal(bad.Problems, []string{protocol.ProblemLineOpen}) || bad.Line != protocol.LineOpen {
		t.Errorf("failing row %+v, want st-0037 with an open speaker line", bad)
	}
}

// peakOutput plays in real time like audio.None and records each play's
// peak sample.
type peakOutput struct {
	*audio.None
	mu    sync.Mutex
	peaks []int
}

func (o *peakOutput) Play(ctx context.Context, pcm io.Reader) error {
	// Measured as it plays, not read ahead: a stream (a relayed station)
	// must flow at the output's pace for preemption to be real.
	peak := 0
	err := o.None.Play(ctx, readFunc(func(p []byte) (int, error) {
		n, err := pcm.Read(p)
		for i := 0; i+1 < n; i += 2 {
			v := int(int16(binary.LittleEndian.Uint16(p[i:])))
			peak = max(peak, v, -v)
		}
		return n, err
	}))
	o.mu.Lock()
	o.peaks = append(o.peaks, peak)
	o.mu.Unlock()
	return err
}

type readFunc func([]byte) (int, error)

func (f readFunc) Read(p []byte) (int, error) { return f(p) }

func (o *peakOutput) Peaks() []int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.peaks)
}

// TestRemoteVolume: a volume set through the API reaches the node in its
// signed desired state, shows in its state, and the node plays at it.
func TestRemoteVolume(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	cr := c.CreateNode("tt-01", "12346")
	out := &peakOutput{None: audio.NewNone(clock.Real{})}
	rig.StartNode(t, cr, rig.NodeOptions{Output: out, Tune: quickStates})
	tone := c.Upload("tone.wav", rig.ToneWAV(440, 300*time.Millisecond, 16000, 1))
	playAt := func(volume int) {
		t.Helper()
		c.MustDo("PATCH", "/api/v1/nodes/tt-01/settings", map[string]int{"volume": volume}, nil)
		rig.Eventually(t, 15*time.Second, fmt.Sprintf("volume %d in the node's state", volume), func() bool {
			v := c.Node("tt-01").Status.Volume
			return v != nil && *v == volume
		})
		a := c.Announce(tone.ID, nil, []string{"tt-01"}, time.Now().Add(2*time.Second))
		rig.Eventually(t, 20*time.Second, "played", func() bool {
			ds := c.Deliveries(a.ID)
			return len(ds) == 1 && ds[0].State == loaxa.DeliveryCompleted
		})
	}
	playAt(15)
	playAt(5)
	peaks := out.Peaks()
	if len(peaks) != 2 {
		t.Fatalf("%d plays", len(peaks))
	}
	if ratio, want := float64(peaks[1])/float64(peaks[0]), audio.VolumeGain(5); math.Abs(ratio-want) > 0.01 {
		t.Errorf("volume 5 played at %.3f of volume 15, want %.3f (peaks %v)", ratio, want, peaks)
	}
	var audit struct{ Entries []loaxa.AuditEntry }
	c.MustDo("GET", "/api/v1/audit", nil, &audit)
	n := 0
	for _, e := range audit.Entries {
		if e.Action == "node.settings" && e.Target == "tt-01" && e.Actor == "admin" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d node.settings audit entries, want 2", n)
	}
}

// TestDamagedStorageRaisesAnAlarm: a bulletin cached on a cluster is
// changed on the board's storage (an SD card that flipped a bit). The next
// play of it stops at the damaged chunk before the speaker has it,
// fetches the file again and plays it whole; the cluster reports the
// damage, and the controller opens a storage-damaged alarm that tells a
// technician to change the card.
func TestDamagedStorageRaisesAnAlarm(t *testing.T) {
	t.Parallel()
	c := rig.StartControllerWith(t, rig.ControllerOptions{Configure: fastHealth})
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	dir := t.TempDir()
	out := &recordingOutput{}
	rig.StartNode(t, c.CreateNode("tt-01", "12346"), rig.NodeOptions{Dir: dir, Output: out})
	rig.Eventually(t, 15*time.Second, "tt-01 online", func() bool { return c.Node("tt-01").Status.State == loaxa.NodeOnline })
	ct := c.Upload("tiem-chung.wav", rig.ToneWAV(440, 4*time.Second, 16000, 1))
	completed := func(ann *loaxa.Announcement) func() bool {
		return func() bool {
			for _, d := range c.Deliveries(ann.ID) {
				if d.Node == "tt-01" && d.State == loaxa.DeliveryCompleted {
					return true
				}
			}
			return false
		}
	}
	first := c.Announce(ct.ID, []string{"12346"}, nil, time.Now().Add(1500*time.Millisecond))
	rig.Eventually(t, 30*time.Second, "the first play completed", completed(first))

	cached := filepath.Join(dir, "content", ct.ID)
	if _, err := os.Stat(cached + ".chunks"); err != nil {
		t.Fatalf("the cluster keeps no chunk list beside its file: %v", err)
	}
	b, err := os.ReadFile(cached)
	if err != nil {
		t.Fatal(err)
	}
	b[protocol.ChunkSize+500] ^= 0x10
	if err := os.WriteFile(cached, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if open := openAlarms(c, "tt-01"); len(open) != 0 {
		t.Fatalf("alarms open before the damage is found: %v", open)
	}

	start := time.Now().Add(1500 * time.Millisecond)
	second := c.Announce(ct.ID, []string{"12346"}, nil, start)
	rig.Eventually(t, 30*time.Second, "the second play completed", completed(second))
	var types []string
	for _, e := range c.Events(url.Values{"node": {"tt-01"}}) {
		if e.Occurrence == loaxa.OccurrenceID(second.ID, start) && e.Type != protocol.EventReceived && e.Type != protocol.EventContentReady {
			types = append(types, string(e.Type)+" "+e.Reason)
		}
	}
	if want := []string{"started ", "suspended content-missing", "started ", "completed "}; strings.Join(types, ",") != strings.Join(want, ",") {
		t.Errorf("events %q, want %q: the damaged chunk stops the play, which plays again once the file is fetched again", types, want)
	}
	// At the cluster's volume, each play of the bulletin sounds the same
	// as the first, from the file as it came.
	if plays := out.Plays(); len(plays) != 3 || len(plays[0]) != 2*len(c.NodeAudio(ct.ID)) ||
		!bytes.Equal(plays[2], plays[0]) || len(plays[1]) >= len(plays[0]) || !bytes.Equal(plays[1], plays[0][:len(plays[1])]) {
		var lens []int
		for _, p := range plays {
			lens = append(lens, len(p))
		}
		t.Errorf("the output got plays of %v bytes; want the first, the stopped one (a beginning of the first) and the first again, whole", lens)
	}

	rig.Eventually(t, 10*time.Second, "storage-damaged alarm open", func() bool {
		_, ok := openAlarms(c, "tt-01")[loaxa.AlarmStorageDamaged]
		return ok
	})
	a, _ := alarm(c, "tt-01", loaxa.AlarmStorageDamaged)
	if a.Severity != loaxa.SeverityWarning || a.Facts.DamagedFiles != 1 || a.Area != "12346" {
		t.Errorf("alarm %+v, want a warning for one damaged file in 12346", a)
	}
	if st := c.Node("tt-01").Status; st.StorageDamaged != 1 || len(st.Faults) != 1 || st.Faults[0].Kind != loaxa.AlarmStorageDamaged {
		t.Errorf("node reports %d damaged files with faults %+v, want 1 and the storage-damaged fault", st.StorageDamaged, st.Faults)
	}
}

// TestLastWillThroughMosquitto: on a Mosquitto installed as a province
// installs it, a node's Last Will (its offline state, on its own state
// topic, which the ACL lets it write) reaches the controller when its
// link is cut, and the node is online again once it reconnects.
func TestLastWillThroughMosquitto(t *testing.T) {
	t.Parallel()
	m := rig.StartMosquitto(t, 0)
	c := rig.StartController(t, m.ControllerBroker())
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	cr := c.CreateNode("tt-01", "12346")
	m.Install(t, c, cr)
	link, err := netproxy.Start(m.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { link.Close() })
	rig.StartNode(t, cr, rig.NodeOptions{Broker: "tcp://" + link.Addr(), Tune: quickReconnect})
	state := func() string { return c.Node("tt-01").Status.State }
	rig.Eventually(t, 15*time.Second, "node online", func() bool { return state() == loaxa.NodeOnline })
	link.Cut()
	rig.Eventually(t, 10*time.Second, "node offline by its Last Will", func() bool { return state() == loaxa.NodeOffline })
	link.Restore()
	rig.Eventually(t, 15*time.Second, "node back online", func() bool { return state() == loaxa.NodeOnline })
}

// TestDeafLinkThroughMosquitto: the broker stops delivering to a node that
// stays connected; here Mosquitto is reloaded with an ACL that lets the
// node read nothing, as a mistaken regeneration would. The node notices
// that its own state no longer comes back, drops the connection and
// reconnects, and says so in its state; the controller opens a link-deaf
// alarm. Once the broker delivers again, the node reconnects by itself
// and answers a self-test.
func TestDeafLinkThroughMosquitto(t *testing.T) {
	t.Parallel()
	m := rig.StartMosquitto(t, 0)
	c := rig.StartControllerWith(t, rig.ControllerOptions{Broker: m.ControllerBroker(), Configure: fastHealth})
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	cr := c.CreateNode("tt-01", "12346")
	m.Install(t, c, cr)
	var files struct{ Files map[string]string }
	c.MustDo("GET", "/api/v1/broker/mosquitto", nil, &files)
	passwd, acl := files.Files["loaxa.passwd"], files.Files["loaxa.acl"]
	own := "topic readwrite loa/v1/node/tt-01/state\n"
	if !strings.Contains(acl, own) {
		t.Fatalf("the exported ACL does not let the node read its own state:\n%s", acl)
	}
	var deaf strings.Builder
	for line := range strings.Lines(strings.Replace(acl, own, "topic write loa/v1/node/tt-01/state\n", 1)) {
		if !strings.HasPrefix(line, "topic read ") {
			deaf.WriteString(line)
		}
	}

	n := rig.StartNode(t, cr, rig.NodeOptions{Tune: func(ac *agent.Config) {
		quickStates(ac)
		ac.Heartbeat = time.Second // a probe a second
		// Seconds, so that a slow echo on a loaded machine is not taken
		// for deafness before the test makes the broker deaf.
		ac.MQTTEchoTimeout = 3 * time.Second
	}})
	rig.Eventually(t, 15*time.Second, "node online", func() bool { return c.Node("tt-01").Status.State == loaxa.NodeOnline })
	rig.Eventually(t, 15*time.Second, "the node hears its own state", n.Agent.LinkChecks)
	if open := openAlarms(c, "tt-01"); len(open) != 0 {
		t.Fatalf("alarms open before the broker went deaf: %v", open)
	}

	m.SetAuth(passwd, deaf.String())
	rig.Eventually(t, 30*time.Second, "link-deaf alarm open", func() bool {
		_, ok := openAlarms(c, "tt-01")[loaxa.AlarmLinkDeaf]
		return ok
	})
	a, _ := alarm(c, "tt-01", loaxa.AlarmLinkDeaf)
	if a.Severity != loaxa.SeverityWarning || a.Facts.DeafTimes < 1 || a.Area != "12346" {
		t.Errorf("alarm %+v, want a warning in 12346 for at least one deaf connection", a)
	}
	if st := c.Node("tt-01").Status; st.LinkDeaf < 1 {
		t.Errorf("node status reports link_deaf %d, want at least 1", st.LinkDeaf)
	}

	m.SetAuth(passwd, acl)
	// board.None has no line check, so its silent self-test fails: an
	// answer either way is what tells that the node hears.
	rig.Eventually(t, 90*time.Second, "the node answers a self-test", func() bool {
		var run loaxa.SelfTest
		c.MustDo("POST", "/api/v1/selftests", map[string]any{"kind": "silent", "area": "12346"}, &run)
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			var rep loaxa.SelfTestReport
			c.MustDo("GET", "/api/v1/selftests/"+run.ID, nil, &rep)
			if rep.Pass+rep.Fail == 1 {
				return true
			}
			time.Sleep(100 * time.Millisecond)
		}
		return false
	})
}

// TestSimulatedBoxSaysItInstallsNoRelease: a technician trying a rollout
// on the simulated fleet (docs/fleet-health.md, docs/deploy.md) saw its
// canary fail with "this agent does not update itself (not started by its
// service)", which sends them looking for a systemd unit. A simulated box
// never installs agent releases; its refusal says so, and the rollout
// halts with that reason.
func TestSimulatedBoxSaysItInstallsNoRelease(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	startFleet(t, c, "ota", "12346", 1)

	// A release archive as build-boards.sh writes it, its "binary" an
	// ELF header for x86-64: the simulated box never fetches it.
	head := make([]byte, 64)
	copy(head, "\x7fELF\x02\x01\x01")
	binary.LittleEndian.PutUint16(head[18:], 62)
	var archive bytes.Buffer
	zw := gzip.NewWriter(&archive)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: "loaxa-node-2.0.0-linux-amd64/node", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(head))}); err != nil {
		t.Fatal(err)
	}
	tw.Write(head)
	tw.Close()
	zw.Close()
	req, _ := http.NewRequest("POST", c.URL+"/api/v1/releases?version=2.0.0&arch=amd64", &archive)
	if status, body := c.Send(req, nil); status != http.StatusCreated {
		t.Fatalf("upload: %d %s", status, body)
	}
	var ro loaxa.Rollout
	c.MustDo("POST", "/api/v1/rollouts", map[string]any{"version": "2.0.0", "targets": map[string][]string{"areas": {"12346"}}}, &ro)
	rig.Eventually(t, 30*time.Second, "the rollout halted", func() bool {
		c.MustDo("GET", "/api/v1/rollouts/"+ro.ID, nil, &ro)
		return ro.State == loaxa.RolloutHalted
	})
	const want = "canary ota-0001 failed: a simulated box (firmware-sim) does not install agent releases"
	if !strings.HasPrefix(ro.Reason, want) {
		t.Errorf("halted with %q, want it to begin %q", ro.Reason, want)
	}
}
