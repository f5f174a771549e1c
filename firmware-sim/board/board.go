// Package board simulates the hardware of a speaker box for the node agent:
// an amplifier relay with a feedback contact and the amplifier's fault
// output, a speaker-line check, mains power with a backup battery and its
// charger, an enclosure temperature sensor, a door (tamper) switch and a
// modem. It implements agent.BoardWatcher, so a real agent drives it
// exactly as it drives a real board and hears of every injected fault at
// once.
//
// The simulation has no goroutines: it is driven by an injected clock and
// brings its physics up to date whenever it is read or switched. Between two
// such moments the inputs (relay, mains) are constant, so the state follows
// in closed form — the battery linearly, the temperature exponentially
// towards its equilibrium — and a fake clock gives exact, repeatable values.
//
// Fault injection (CutMains, FailAmplifier, StickRelay, SetTemperature,
// SetBatteryVolts, SetAmplifierFault, SetSpeakerLine, SetDoor, SetSignal,
// and Inject by name, also over HTTP: see Control) is how tests and the
// fleet prove the agent and the controller cope with hardware trouble; Switches is the relay's log, so tests can check the
// amplifier was on while audio played and off after.
package board

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

// Errors SetAmplifier returns.
var (
	// ErrRelayFeedback means the relay was commanded but its feedback
	// contact reports the other position (a welded or stuck relay).
	ErrRelayFeedback = errors.New("amplifier relay feedback disagrees with the command")
	// ErrNoPower means the amplifier cannot be switched on: mains is off
	// and the battery is at its cut-off voltage.
	ErrNoPower = errors.New("no power for the amplifier: mains off and battery at cut-off")
)

// Config holds the physical constants of a simulated box. DefaultConfig
// describes a pole-mounted box with a 12 V backup battery in a hot climate.
type Config struct {
	// Battery voltages: Full when charged, CutOff where the power board
	// drops the amplifier, Dead where the battery stops falling (the board
	// itself would be off).
	BatteryFullVolts, BatteryCutOffVolts, BatteryDeadVolts float64
	// Battery rates per hour: charging on mains, draining on battery with
	// the amplifier on, and with it off (board and modem only).
	ChargeVoltsPerHour, AmplifierDrainVoltsPerHour, IdleDrainVoltsPerHour float64
	// AmbientC is the air temperature around the box.
	AmbientC float64
	// AmplifierRiseC is how far above ambient the enclosure settles with
	// the amplifier on; ThermalTau is the time constant of that approach
	// (and of cooling back down).
	AmplifierRiseC float64
	ThermalTau     time.Duration
	// SpeakerOhms is the speaker line's impedance when it is sound.
	SpeakerOhms float64
	// RSSIDBm and Link are the modem's signal and link type at start.
	RSSIDBm int
	Link    string
}

// DefaultConfig returns the constants of a typical box: a full battery plays
// for about an hour without mains, and the enclosure settles 15 °C above a
// 30 °C day with a 20-minute time constant.
func DefaultConfig() Config {
	return Config{
		BatteryFullVolts:           13.6,
		BatteryCutOffVolts:         11.6,
		BatteryDeadVolts:           10.5,
		ChargeVoltsPerHour:         1.0,
		AmplifierDrainVoltsPerHour: 2.0,
		IdleDrainVoltsPerHour:      0.05,
		AmbientC:                   30,
		AmplifierRiseC:             15,
		ThermalTau:                 20 * time.Minute,
		SpeakerOhms:                50, // four horns on a 100 V line
		RSSIDBm:                    -75,
		Link:                       "4g",
	}
}

// Validate checks that the constants describe a possible box.
func (c Config) Validate() error {
	switch {
	case !(c.BatteryDeadVolts < c.BatteryCutOffVolts && c.BatteryCutOffVolts < c.BatteryFullVolts):
		return fmt.Errorf("board config: want dead %.2f V < cut-off %.2f V < full %.2f V", c.BatteryDeadVolts, c.BatteryCutOffVolts, c.BatteryFullVolts)
	case c.ChargeVoltsPerHour < 0 || c.AmplifierDrainVoltsPerHour <= 0 || c.IdleDrainVoltsPerHour < 0:
		return fmt.Errorf("board config: battery rates must not be negative, and the amplifier must drain")
	case c.ThermalTau <= 0 || c.AmplifierRiseC < 0:
		return fmt.Errorf("board config: thermal time constant must be positive and the amplifier rise not negative")
	case c.SpeakerOhms <= ShortOhms:
		return fmt.Errorf("board config: speaker impedance %.1f Ω must be above the short threshold %.1f Ω", c.SpeakerOhms, ShortOhms)
	}
	return nil
}

// Switch is one movement of the amplifier relay.
type Switch struct {
	At time.Time
	On bool
	// Reason is SwitchCommand, SwitchFreed or SwitchCutOff.
	Reason string
}

// Switch reasons.
const (
	SwitchCommand = "command" // SetAmplifier moved it
	SwitchFreed   = "freed"   // a stuck relay was mended and followed its last command
	SwitchCutOff  = "cut-off" // the battery reached its cut-off voltage
)

// Board is a simulated speaker box. Its zero value is not usable; call New.
// It is safe for concurrent use.
type Board struct {
	clock clock.Clock
	cfg   Config

	mu       sync.Mutex
	last     time.Time // physics are up to date at this instant
	relay    bool      // actual relay position (what the feedback reads)
	mains    bool
	volts    float64
	tempC    float64
	failErr  error // SetAmplifier fails with this
	stuck    bool  // the relay does not move
	command  bool  // where the relay was last told to go
	ampFault bool
	line     protocol.SpeakerLine
	door     bool
	rssi     int
	link     string
	noCard   bool // the sound card is out (FaultSoundCardOut)
	roCard   bool // the SD card went read-only (FaultCardReadOnly)
	switches []Switch
	changed  chan struct{}
}

// Line-check thresholds: below ShortOhms the line is short, above OpenOhms
// it is open.
const (
	ShortOhms = 2.0
	OpenOhms  = 10000.0
)

// New returns a board on mains with a full battery, the amplifier off and
// the enclosure at ambient temperature.
func New(c clock.Clock, cfg Config) (*Board, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if c == nil {
		c = clock.Real{}
	}
	return &Board{
		clock:   c,
		cfg:     cfg,
		last:    c.Now(),
		mains:   true,
		volts:   cfg.BatteryFullVolts,
		tempC:   cfg.AmbientC,
		line:    protocol.LineOK,
		rssi:    cfg.RSSIDBm,
		link:    cfg.Link,
		changed: make(chan struct{}, 1),
	}, nil
}

// SetAmplifier switches the amplifier relay and checks its feedback.
func (b *Board) SetAmplifier(on bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.update()
	if b.failErr != nil {
		return fmt.Errorf("switch amplifier %s: %w", onOff(on), b.failErr)
	}
	if on && !b.mains && b.volts <= b.cfg.BatteryCutOffVolts {
		return fmt.Errorf("switch amplifier on at %.2f V: %w", b.volts, ErrNoPower)
	}
	b.command = on
	if !b.stuck && b.relay != on {
		b.relay = on
		b.switches = append(b.switches, Switch{At: b.last, On: on, Reason: SwitchCommand})
	}
	if b.relay != on {
		return fmt.Errorf("switch amplifier %s: %w", onOff(on), ErrRelayFeedback)
	}
	return nil
}

// Snapshot reads the sensors: relay feedback and command, the amplifier's
// fault output, the speaker line, mains, battery voltage (rounded to
// 10 mV) and charging, enclosure temperature (rounded to 0.1 °C), the door
// switch and the modem, as a board's inputs and ADCs would report them.
func (b *Board) Snapshot() protocol.Board {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.update()
	mains, command, fault, door, rssi := b.mains, b.command, b.ampFault, b.door, b.rssi
	charging := b.mains && b.volts < b.cfg.BatteryFullVolts
	volts := math.Round(b.volts*100) / 100
	temp := math.Round(b.tempC*10) / 10
	ohms := b.cfg.SpeakerOhms
	switch b.line {
	case protocol.LineOpen:
		ohms = math.Inf(1)
	case protocol.LineShort:
		ohms = 0.4
	}
	st := protocol.Board{
		Amplifier: b.relay, AmplifierCommand: &command, AmplifierFault: &fault,
		SpeakerLine: b.line, Mains: &mains, BatteryVolts: &volts, Charging: &charging,
		TemperatureC: &temp, DoorOpen: &door, RSSIDBm: &rssi, Link: b.link,
	}
	if !math.IsInf(ohms, 0) {
		st.SpeakerOhms = &ohms // an open line has no finite impedance to report
	}
	return st
}

// Changed signals after every injected change (BoardWatcher).
func (b *Board) Changed() <-chan struct{} { return b.changed }

// Switches returns the relay's movements so far, oldest first.
func (b *Board) Switches() []Switch {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.update()
	return append([]Switch(nil), b.switches...)
}

// Amplifier reports whether the relay is on now.
func (b *Board) Amplifier() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.update()
	return b.relay
}

// CutMains simulates a power cut: the box runs on its battery.
func (b *Board) CutMains() { b.set(func() { b.mains = false }) }

// RestoreMains brings mains power back; the battery charges.
func (b *Board) RestoreMains() { b.set(func() { b.mains = true }) }

// FailAmplifier makes every SetAmplifier fail with err (wrapped) and leave
// the relay where it is, as a dead relay driver would; nil repairs it.
func (b *Board) FailAmplifier(err error) { b.set(func() { b.failErr = err }) }

// StickRelay makes the relay ignore commands (stuck true) or obey them
// again (false); while stuck, SetAmplifier reports ErrRelayFeedback when
// the relay is not where it was told to go. A freed relay goes where its
// coil was last told, as a healthy one is, so its feedback agrees with the
// command again (unless the battery cannot hold the amplifier on).
func (b *Board) StickRelay(stuck bool) {
	b.set(func() {
		b.stuck = stuck
		if !stuck && b.relay != b.command {
			b.relay = b.command
			b.switches = append(b.switches, Switch{At: b.last, On: b.relay, Reason: SwitchFreed})
			b.cutOff()
		}
	})
}

// SetTemperature sets the enclosure temperature now, e.g. to simulate a box
// in the sun; it then evolves towards its equilibrium as usual.
func (b *Board) SetTemperature(c float64) { b.set(func() { b.tempC = c }) }

// SetBatteryVolts sets the battery voltage now, clamped to the battery's
// range. Setting it at or below the cut-off with mains off drops the
// amplifier, as the power board would.
func (b *Board) SetBatteryVolts(v float64) {
	b.set(func() {
		b.volts = math.Max(b.cfg.BatteryDeadVolts, math.Min(b.cfg.BatteryFullVolts, v))
		b.cutOff()
	})
}

// SetAmplifierFault raises (true) or clears the amplifier's fault output.
func (b *Board) SetAmplifierFault(fault bool) { b.set(func() { b.ampFault = fault }) }

// SetSpeakerLine makes the speaker line sound (LineOK), cut (LineOpen) or
// shorted (LineShort).
func (b *Board) SetSpeakerLine(l protocol.SpeakerLine) { b.set(func() { b.line = l }) }

// SetDoor opens (true) or closes the enclosure door.
func (b *Board) SetDoor(open bool) { b.set(func() { b.door = open }) }

// SetSignal sets the modem's signal strength and link type ("" keeps it).
func (b *Board) SetSignal(rssiDBm int, link string) {
	b.set(func() {
		b.rssi = rssiDBm
		if link != "" {
			b.link = link
		}
	})
}

// SetSoundCard plugs the box's sound card in (true) or pulls it out: a
// USB sound card that dropped off on a brownout, or a dead one. The agent
// learns it from its sound output (firmware-sim/fleet), not from the
// board's snapshot, as on a real box.
func (b *Board) SetSoundCard(present bool) { b.set(func() { b.noCard = !present }) }

// SoundCard reports whether the box has its sound card.
func (b *Board) SoundCard() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.noCard
}

// SetCardReadOnly makes the box's SD card go read-only (true), as the
// kernel remounts a failing card, or puts a sound one in. A fleet box
// restarts its agent on the change (firmware-sim/fleet): on a store in
// memory, downloading into memory, while the card is read-only.
func (b *Board) SetCardReadOnly(ro bool) { b.set(func() { b.roCard = ro }) }

// CardReadOnly reports whether the box's SD card is read-only.
func (b *Board) CardReadOnly() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.roCard
}

// set brings the physics up to now, then changes an input, and tells a
// watcher.
func (b *Board) set(change func()) {
	b.mu.Lock()
	b.update()
	change()
	b.mu.Unlock()
	select {
	case b.changed <- struct{}{}:
	default:
	}
}

// update advances the physics from b.last to the clock's now, in segments
// during which nothing switches.
func (b *Board) update() {
	now := b.clock.Now()
	dt := now.Sub(b.last)
	if dt <= 0 {
		return // a clock stepped back does not undo physics
	}
	if b.relay && !b.mains {
		// The amplifier drains the battery until the cut-off drops it.
		untilCutOff := hoursDuration((b.volts - b.cfg.BatteryCutOffVolts) / b.cfg.AmplifierDrainVoltsPerHour)
		if untilCutOff < dt {
			b.advance(untilCutOff)
			b.volts = b.cfg.BatteryCutOffVolts // exact, whatever the rounding
			b.cutOff()
			dt -= untilCutOff
		}
	}
	b.advance(dt)
	b.last = now
}

// advance integrates a segment of length d with constant inputs.
func (b *Board) advance(d time.Duration) {
	h := d.Hours()
	switch {
	case b.mains:
		b.volts = math.Min(b.cfg.BatteryFullVolts, b.volts+b.cfg.ChargeVoltsPerHour*h)
	case b.relay:
		b.volts -= b.cfg.AmplifierDrainVoltsPerHour * h
	default:
		b.volts = math.Max(b.cfg.BatteryDeadVolts, b.volts-b.cfg.IdleDrainVoltsPerHour*h)
	}
	target := b.cfg.AmbientC
	if b.relay {
		target += b.cfg.AmplifierRiseC
	}
	b.tempC = target + (b.tempC-target)*math.Exp(-float64(d)/float64(b.cfg.ThermalTau))
	b.last = b.last.Add(d)
}

// cutOff drops the amplifier if the battery cannot hold it.
func (b *Board) cutOff() {
	if b.relay && !b.mains && b.volts <= b.cfg.BatteryCutOffVolts {
		b.relay = false
		b.switches = append(b.switches, Switch{At: b.last, On: false, Reason: SwitchCutOff})
	}
}

func hoursDuration(h float64) time.Duration {
	if h <= 0 {
		return 0
	}
	return time.Duration(h * float64(time.Hour))
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}
