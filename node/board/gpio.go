package board

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"loaxa.vn/protocol"
)

// ErrRelayFeedback is returned by GPIO.SetAmplifier when the relay's
// feedback contact does not follow the command (a stuck or welded relay).
var ErrRelayFeedback = errors.New("amplifier relay feedback disagrees with the command")

// File is a board file: which GPIO lines (by their name on the Linux GPIO
// character device, as gpioinfo lists them) drive the amplifier relay and
// read the inputs a board has. An input left out is a sensor the board
// lacks: it is reported absent.
//
//	{
//	  "amplifier":          {"line": "GPIO17"},
//	  "amplifier_feedback": {"line": "GPIO27"},
//	  "amplifier_fault":    {"line": "GPIO22", "active_low": true},
//	  "door":               {"line": "GPIO23", "active_low": true},
//	  "mains":              {"line": "GPIO24"},
//	  "settle_ms": 30
//	}
type File struct {
	// Amplifier is the relay's output line; required.
	Amplifier Line `json:"amplifier"`
	// Feedback reads the relay's auxiliary contact: on when the amplifier
	// is powered.
	Feedback *Line `json:"amplifier_feedback,omitempty"`
	// Fault reads the amplifier module's fault (protect) output.
	Fault *Line `json:"amplifier_fault,omitempty"`
	// Door reads the tamper switch: active when the door is open.
	Door *Line `json:"door,omitempty"`
	// Mains reads a mains-present signal from the power supply.
	Mains *Line `json:"mains,omitempty"`
	// SettleMS is how long the relay takes to move before its feedback is
	// read (default 20, at most 1000).
	SettleMS int `json:"settle_ms,omitempty"`
}

// Line is one GPIO line; ActiveLow inverts it (active = low level).
type Line struct {
	Name      string `json:"line"`
	ActiveLow bool   `json:"active_low,omitempty"`
}

// Largest board file and line name accepted.
const (
	maxFileBytes = 64 << 10
	maxLineName  = 64
)

// ReadFile reads and checks a board file.
func ReadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("board file: %w", err)
	}
	f, err := ParseFile(data)
	if err != nil {
		return nil, fmt.Errorf("board file %s: %w", path, err)
	}
	return f, nil
}

// ParseFile decodes a board file strictly (unknown fields are errors, so a
// misspelt "door" is not silently a board without a door switch) and
// checks it.
func ParseFile(data []byte) (*File, error) {
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("%d bytes is more than a board file needs (at most %d)", len(data), maxFileBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("not a board file (JSON with amplifier, amplifier_feedback, amplifier_fault, door, mains, settle_ms): %w", err)
	}
	if dec.More() {
		return nil, errors.New("text after the board file's JSON object")
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

// Validate checks that every line has a name, no line is used twice and
// the settle time is sane.
func (f *File) Validate() error {
	seen := map[string]string{}
	for _, l := range f.lines() {
		switch {
		case l.line == nil:
			continue
		case l.line.Name == "":
			return fmt.Errorf("%s: give the GPIO line's name, e.g. {\"line\": \"GPIO17\"}", l.role)
		case len(l.line.Name) > maxLineName:
			return fmt.Errorf("%s: line name of %d bytes is too long", l.role, len(l.line.Name))
		case seen[l.line.Name] != "":
			return fmt.Errorf("%s: line %q is already the %s", l.role, l.line.Name, seen[l.line.Name])
		}
		seen[l.line.Name] = l.role
	}
	if f.SettleMS < 0 || f.SettleMS > 1000 {
		return fmt.Errorf("settle_ms %d: want 0 to 1000", f.SettleMS)
	}
	return nil
}

type role struct {
	role string
	line *Line
}

func (f *File) lines() []role {
	return []role{{"amplifier", &f.Amplifier}, {"amplifier_feedback", f.Feedback}, {"amplifier_fault", f.Fault}, {"door", f.Door}, {"mains", f.Mains}}
}

// Pin is a GPIO line as the board uses it; the periph.io lines (PeriphPins)
// and test fakes implement it.
type Pin interface {
	// Out drives the line high (true) or low.
	Out(high bool) error
	// In makes the line an input.
	In() error
	// Read returns the line's level.
	Read() bool
}

// Pins opens a GPIO line by name.
type Pins func(name string) (Pin, error)

// GPIO is a board whose amplifier relay and inputs are GPIO lines. It has
// no speaker-line check, battery or temperature sensor: those are absent
// from its snapshot. It is safe for concurrent use.
type GPIO struct {
	file   File
	settle time.Duration
	sleep  func(time.Duration)

	mu      sync.Mutex
	amp     Pin
	inputs  map[string]Pin // by role
	command bool
}

// OpenGPIO opens the lines of f with pins, switches the amplifier off and
// makes the inputs inputs.
func OpenGPIO(f *File, pins Pins) (*GPIO, error) {
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("board file: %w", err)
	}
	g := &GPIO{file: *f, settle: 20 * time.Millisecond, sleep: time.Sleep, inputs: map[string]Pin{}}
	if f.SettleMS > 0 {
		g.settle = time.Duration(f.SettleMS) * time.Millisecond
	}
	var err error
	if g.amp, err = pins(f.Amplifier.Name); err != nil {
		return nil, fmt.Errorf("amplifier line %s: %w", f.Amplifier.Name, err)
	}
	if err := g.amp.Out(f.Amplifier.ActiveLow); err != nil { // inactive: off
		return nil, fmt.Errorf("switch amplifier line %s off: %w", f.Amplifier.Name, err)
	}
	for _, l := range f.lines()[1:] {
		if l.line == nil {
			continue
		}
		p, err := pins(l.line.Name)
		if err != nil {
			return nil, fmt.Errorf("%s line %s: %w", l.role, l.line.Name, err)
		}
		if err := p.In(); err != nil {
			return nil, fmt.Errorf("%s line %s as input: %w", l.role, l.line.Name, err)
		}
		g.inputs[l.role] = p
	}
	return g, nil
}

// SetAmplifier drives the relay and, with a feedback line, checks after
// the settle time that it followed.
func (g *GPIO) SetAmplifier(on bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.amp.Out(on != g.file.Amplifier.ActiveLow); err != nil {
		return fmt.Errorf("switch amplifier %v: %w", on, err)
	}
	g.command = on
	if fb := g.inputs["amplifier_feedback"]; fb != nil {
		g.sleep(g.settle)
		if active(fb, g.file.Feedback) != on {
			return fmt.Errorf("switch amplifier %v: %w", on, ErrRelayFeedback)
		}
	}
	return nil
}

func active(p Pin, l *Line) bool { return p.Read() != l.ActiveLow }

// Snapshot reads the inputs the board has.
func (g *GPIO) Snapshot() protocol.Board {
	g.mu.Lock()
	defer g.mu.Unlock()
	command := g.command
	b := protocol.Board{Amplifier: command, AmplifierCommand: &command}
	read := func(role string, l *Line) *bool {
		p := g.inputs[role]
		if p == nil {
			return nil
		}
		v := active(p, l)
		return &v
	}
	if fb := read("amplifier_feedback", g.file.Feedback); fb != nil {
		b.Amplifier = *fb
	}
	b.AmplifierFault = read("amplifier_fault", g.file.Fault)
	b.DoorOpen = read("door", g.file.Door)
	b.Mains = read("mains", g.file.Mains)
	return b
}
