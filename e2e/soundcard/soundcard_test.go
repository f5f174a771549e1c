// Package soundcard runs the real node program, as a board's service
// manager does, on a board whose sound card is missing when it starts:
// the agent runs on without it and the controller says so; an alert due
// then waits; once the card can be opened the agent exits with the restart
// status, and started again it plays the alert through oto and ALSA. The
// node is a process of its own: its sound device is found, or not, as a
// board's is, through ALSA's configuration.
package soundcard

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/internal/alsatest"
	"loaxa.vn/internal/syncbuf"
	"loaxa.vn/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// missingCard is an ALSA configuration whose default device is a card the
// machine does not have: opening it fails as on a board whose USB sound
// card is unplugged.
const missingCard = `pcm.!default {
	type hw
	card "loaxa_no_such_card"
}
`

// exitRestart is the node's exit status for its service manager to start
// it again (node/main.go exitReboot).
const exitRestart = 75

// agentProc is one run of the node program.
type agentProc struct {
	cmd  *exec.Cmd
	log  *syncbuf.Buffer
	done chan struct{}
}

func startAgent(t *testing.T, exe string, args, env []string) *agentProc {
	t.Helper()
	p := &agentProc{log: &syncbuf.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(exe, args...)
	p.cmd.Env = append(os.Environ(), env...) // the later HOME wins
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("node log:\n%s", p.log.String())
		}
	})
	return p
}

func (p *agentProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func TestNodeStartedWithoutItsSoundCard(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "loaxa-node")
	// Built before the capture moves HOME, where go keeps its build cache.
	if b, err := exec.Command("go", "build", "-o", exe, "loaxa.vn/node").CombinedOutput(); err != nil {
		t.Fatalf("go build loaxa.vn/node: %v\n%s", err, b)
	}
	capture := alsatest.Setup(t)
	// The board's HOME: its .asoundrc names a card it does not have, until
	// the card is "plugged in" below.
	home := filepath.Join(dir, "home")
	asoundrc := filepath.Join(home, ".asoundrc")
	if err := os.MkdirAll(filepath.Join(home, ".config"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(asoundrc, []byte(missingCard), 0o644); err != nil {
		t.Fatal(err)
	}

	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	credFile := filepath.Join(dir, "node.json")
	if err := protocol.WriteCredentials(credFile, c.CreateNode("tt-01", "12346")); err != nil {
		t.Fatal(err)
	}
	args := []string{"--credentials", credFile, "--data", filepath.Join(dir, "data"), "--sound-recheck", "300ms", "--log-level", "info"}
	env := []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config")}
	first := startAgent(t, exe, args, env)

	rig.Eventually(t, 20*time.Second, "the cluster online, saying it has no sound device", func() bool {
		n := c.Node("tt-01")
		return n.Status.State == loaxa.NodeOnline && n.Status.NoSoundDevice != ""
	})
	t.Logf("the node says: %s", c.Node("tt-01").Status.NoSoundDevice)
	var alarms struct{ Alarms []loaxa.Alarm }
	rig.Eventually(t, 10*time.Second, "the no-sound-device alarm open", func() bool {
		c.MustDo("GET", "/api/v1/alarms?state=open&node=tt-01&kind="+loaxa.AlarmNoSoundDevice, nil, &alarms)
		return len(alarms.Alarms) == 1
	})
	if a := alarms.Alarms[0]; a.Severity != loaxa.SeverityCritical || a.Facts.Error != c.Node("tt-01").Status.NoSoundDevice {
		t.Errorf("alarm %s with facts %s, want critical with the node's error", a.Severity, rig.Describe(a.Facts))
	}

	// An alert while the card is missing: the cluster has it, and waits.
	message := c.Upload("bao-dong.wav", rig.PCMWAV(alsatest.Chirp(time.Second, 12000), 16000, 1))
	var em loaxa.Emergency
	c.MustDo("POST", "/api/v1/emergency", map[string]any{"content_id": message.ID, "targets": []string{"12346"}, "repeat": 1}, &em)
	report := func() loaxa.EmergencyNode {
		var rep loaxa.EmergencyReport
		c.MustDo("GET", "/api/v1/emergency/"+em.ID, nil, &rep)
		if len(rep.Nodes) != 1 {
			t.Fatalf("emergency report has %d nodes, want 1", len(rep.Nodes))
		}
		return rep.Nodes[0]
	}
	rig.Eventually(t, 20*time.Second, "the alert suspended for the missing sound device", func() bool {
		n := report()
		return n.State == string(loaxa.DeliverySuspended) && n.Reason == protocol.ReasonAudioDevice
	})
	if first.exited() {
		t.Fatalf("the agent exited while its card was still missing: %v", first.cmd.ProcessState)
	}

	// The card is plugged in: ALSA's default is the capture now. Within a
	// recheck the agent can open it, and exits for its service manager to
	// start it again.
	tmp := asoundrc + ".new"
	raw, err := os.ReadFile(filepath.Join(capture.Home, ".asoundrc"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, asoundrc); err != nil {
		t.Fatal(err)
	}
	select {
	case <-first.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the agent did not stop once its sound card could be opened")
	}
	if code := first.cmd.ProcessState.ExitCode(); code != exitRestart {
		t.Fatalf("the agent exited with status %d once its card was back, want %d (the service manager starts it again)", code, exitRestart)
	}

	// Started again, as systemd does: the alert plays through the card.
	from := capture.Len()
	startAgent(t, exe, args, env)
	opening, closing, msg := c.NodeAudio(em.OpeningChime), c.NodeAudio(em.ClosingChime), c.NodeAudio(message.ID)
	mo := capture.Await(t, opening, from, 30*time.Second)
	mm := capture.Await(t, msg, mo.Offset+len(opening)-16, 10*time.Second)
	capture.Await(t, closing, mm.Offset+len(msg)-16, 10*time.Second)
	rig.Eventually(t, 20*time.Second, "the alert completed", func() bool { return report().State == string(loaxa.DeliveryCompleted) })
	rig.Eventually(t, 20*time.Second, "the no-sound-device alarm ended", func() bool {
		c.MustDo("GET", "/api/v1/alarms?state=open&node=tt-01&kind="+loaxa.AlarmNoSoundDevice, nil, &alarms)
		return len(alarms.Alarms) == 0 && c.Node("tt-01").Status.NoSoundDevice == ""
	})
}
