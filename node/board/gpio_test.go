package board

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakePin is a GPIO line in memory; a relay is modelled by wiring an
// output to a feedback input.
type fakePin struct {
	mu     sync.Mutex
	level  bool
	input  bool
	outErr error
	follow *fakePin // a feedback line that follows this output
	stuck  bool     // the follower does not follow
}

func (p *fakePin) Out(high bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.outErr != nil {
		return p.outErr
	}
	p.level = high
	if p.follow != nil && !p.stuck {
		p.follow.set(high)
	}
	return nil
}

func (p *fakePin) In() error {
	p.mu.Lock()
	p.input = true
	p.mu.Unlock()
	return nil
}

func (p *fakePin) Read() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.level
}

func (p *fakePin) set(v bool) {
	p.mu.Lock()
	p.level = v
	p.mu.Unlock()
}

var _ Pin = (*fakePin)(nil)

type fakeBoard struct {
	pins  map[string]*fakePin
	slept []time.Duration
}

func (f *fakeBoard) open(name string) (Pin, error) {
	if p := f.pins[name]; p != nil {
		return p, nil
	}
	return nil, errors.New("no such line")
}

func newFake() *fakeBoard {
	fb := &fakeBoard{pins: map[string]*fakePin{}}
	for _, n := range []string{"GPIO17", "GPIO27", "GPIO22", "GPIO23", "GPIO24"} {
		fb.pins[n] = &fakePin{}
	}
	fb.pins["GPIO17"].follow = fb.pins["GPIO27"]
	return fb
}

const fullFile = `{
  "amplifier":          {"line": "GPIO17"},
  "amplifier_feedback": {"line": "GPIO27"},
  "amplifier_fault":    {"line": "GPIO22", "active_low": true},
  "door":               {"line": "GPIO23", "active_low": true},
  "mains":              {"line": "GPIO24"},
  "settle_ms": 30
}`

func openFull(t *testing.T, fb *fakeBoard) *GPIO {
	t.Helper()
	f, err := ParseFile([]byte(fullFile))
	if err != nil {
		t.Fatal(err)
	}
	// Healthy idle levels: fault and door inputs are active low, so high.
	fb.pins["GPIO22"].set(true)
	fb.pins["GPIO23"].set(true)
	fb.pins["GPIO24"].set(true)
	g, err := OpenGPIO(f, fb.open)
	if err != nil {
		t.Fatal(err)
	}
	g.sleep = func(d time.Duration) { fb.slept = append(fb.slept, d) }
	return g
}

func TestGPIOBoard(t *testing.T) {
	fb := newFake()
	g := openFull(t, fb)
	for _, n := range []string{"GPIO27", "GPIO22", "GPIO23", "GPIO24"} {
		if !fb.pins[n].input {
			t.Errorf("%s not made an input", n)
		}
	}
	s := g.Snapshot()
	if s.Amplifier || *s.AmplifierCommand || *s.AmplifierFault || *s.DoorOpen || !*s.Mains {
		t.Errorf("idle snapshot %+v", s)
	}
	// Sensors the board lacks are absent, not zero.
	if s.BatteryVolts != nil || s.TemperatureC != nil || s.SpeakerLine != "" || s.RSSIDBm != nil || s.Charging != nil {
		t.Errorf("absent sensors reported: %+v", s)
	}
	if err := g.SetAmplifier(true); err != nil {
		t.Fatal(err)
	}
	if !fb.pins["GPIO17"].Read() || len(fb.slept) != 1 || fb.slept[0] != 30*time.Millisecond {
		t.Errorf("relay line %v, settle waits %v", fb.pins["GPIO17"].Read(), fb.slept)
	}
	fb.pins["GPIO22"].set(false) // fault output active (low)
	fb.pins["GPIO23"].set(false) // door open
	fb.pins["GPIO24"].set(false) // mains gone
	s = g.Snapshot()
	if !s.Amplifier || !*s.AmplifierFault || !*s.DoorOpen || *s.Mains {
		t.Errorf("snapshot with faults %+v", s)
	}
	// A stuck relay: the feedback stays on.
	fb.pins["GPIO17"].stuck = true
	if err := g.SetAmplifier(false); !errors.Is(err, ErrRelayFeedback) {
		t.Fatalf("stuck relay: %v, want ErrRelayFeedback", err)
	}
	if s := g.Snapshot(); !s.Amplifier || *s.AmplifierCommand {
		t.Errorf("stuck relay snapshot: feedback %v command %v", s.Amplifier, *s.AmplifierCommand)
	}
}

func TestGPIOActiveLowRelayWithoutFeedback(t *testing.T) {
	fb := newFake()
	f, err := ParseFile([]byte(`{"amplifier": {"line": "GPIO17", "active_low": true}}`))
	if err != nil {
		t.Fatal(err)
	}
	g, err := OpenGPIO(f, fb.open)
	if err != nil {
		t.Fatal(err)
	}
	if !fb.pins["GPIO17"].Read() {
		t.Error("active-low relay not released (high) at open")
	}
	if err := g.SetAmplifier(true); err != nil {
		t.Fatal(err)
	}
	if fb.pins["GPIO17"].Read() {
		t.Error("active-low relay not driven low when switched on")
	}
	s := g.Snapshot()
	if !s.Amplifier || s.AmplifierFault != nil || s.DoorOpen != nil || s.Mains != nil {
		t.Errorf("snapshot of a relay-only board: %+v", s)
	}
}

func TestOpenGPIOErrors(t *testing.T) {
	fb := newFake()
	f, _ := ParseFile([]byte(`{"amplifier": {"line": "GPIO99"}}`))
	if _, err := OpenGPIO(f, fb.open); err == nil || !strings.Contains(err.Error(), "GPIO99") {
		t.Errorf("unknown line: %v", err)
	}
	fb.pins["GPIO17"].outErr = errors.New("line busy")
	f, _ = ParseFile([]byte(`{"amplifier": {"line": "GPIO17"}}`))
	if _, err := OpenGPIO(f, fb.open); err == nil || !strings.Contains(err.Error(), "line busy") {
		t.Errorf("busy line: %v", err)
	}
}

func TestParseFile(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`{}`, "amplifier: give the GPIO line's name"},
		{`{"amplifier": {"line": "GPIO17"}, "dor": {"line": "GPIO23"}}`, `unknown field "dor"`},
		{`{"amplifier": {"line": "GPIO17"}, "door": {"line": "GPIO17"}}`, `door: line "GPIO17" is already the amplifier`},
		{`{"amplifier": {"line": "GPIO17"}, "settle_ms": 5000}`, "settle_ms 5000"},
		{`{"amplifier": {"line": "GPIO17"}} {}`, "text after"},
		{`not json`, "not a board file"},
	} {
		if _, err := ParseFile([]byte(tt.in)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseFile(%s): %v, want %q", tt.in, err, tt.want)
		}
	}
	path := filepath.Join(t.TempDir(), "board.json")
	os.WriteFile(path, []byte(fullFile), 0o600)
	f, err := ReadFile(path)
	if err != nil || f.Door == nil || !f.Door.ActiveLow || f.SettleMS != 30 {
		t.Errorf("ReadFile: %+v, %v", f, err)
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "none.json")); err == nil {
		t.Error("missing file read")
	}
}

func FuzzParseFile(f *testing.F) {
	f.Add([]byte(fullFile))
	f.Add([]byte(`{"amplifier": {"line": "GPIO17", "active_low": true}}`))
	f.Add([]byte(`{"amplifier": {"line": ""}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ParseFile(data)
		if err != nil {
			return
		}
		// What parses is valid and opens on a board with every line.
		if err := file.Validate(); err != nil {
			t.Fatalf("parsed but invalid: %v", err)
		}
		pins := func(name string) (Pin, error) { return &fakePin{}, nil }
		g, err := OpenGPIO(file, pins)
		if err != nil {
			t.Fatalf("parsed but does not open: %v", err)
		}
		g.sleep = func(time.Duration) {}
		_ = g.SetAmplifier(true)
		_ = g.Snapshot()
	})
}
