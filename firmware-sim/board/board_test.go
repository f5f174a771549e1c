package board

import (
	"errors"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/node/agent"
)

var _ agent.Board = (*Board)(nil)

var t0 = time.Date(2026, 3, 2, 5, 30, 0, 0, time.UTC)

func newBoard(t *testing.T) (*Board, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(t0)
	b, err := New(clk, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return b, clk
}

// step advances the fake clock, then acts on the board.
type step struct {
	after time.Duration
	do    func(*Board) error
}

func on(b *Board) error      { return b.SetAmplifier(true) }
func off(b *Board) error     { return b.SetAmplifier(false) }
func cut(b *Board) error     { b.CutMains(); return nil }
func restore(b *Board) error { b.RestoreMains(); return nil }

func volts(v float64) func(*Board) error {
	return func(b *Board) error { b.SetBatteryVolts(v); return nil }
}

func temp(c float64) func(*Board) error {
	return func(b *Board) error { b.SetTemperature(c); return nil }
}

func TestPhysics(t *testing.T) {
	tests := []struct {
		name      string
		steps     []step
		amplifier bool
		mains     bool
		volts     float64
		tempC     float64
	}{
		{"fresh board", nil, false, true, 13.6, 30},
		{"one time constant of playing on mains", []step{{0, on}, {20 * time.Minute, nil}},
			true, true, 13.6, 45 - 15/math.E},
		{"half an hour playing on battery", []step{{0, cut}, {0, on}, {30 * time.Minute, nil}},
			true, false, 12.6, 45 - 15*math.Exp(-1.5)},
		{"ten idle hours on battery", []step{{0, cut}, {10 * time.Hour, nil}},
			false, false, 13.1, 30},
		{"charging on mains stops at full", []step{{0, volts(12)}, {time.Hour, nil}, {2 * time.Hour, nil}},
			false, true, 13.6, 30},
		{"charging for one hour", []step{{0, volts(12)}, {time.Hour, nil}},
			false, true, 13.0, 30},
		{"cut-off drops the amplifier, then idle drain", []step{{0, cut}, {0, on}, {2 * time.Hour, nil}},
			false, false, 11.55, 30 + (15-15*math.Exp(-3))*math.Exp(-3)},
		{"mains back while playing", []step{{0, cut}, {0, on}, {30 * time.Minute, restore}, {30 * time.Minute, nil}},
			true, true, 13.1, 45 - 15*math.Exp(-3)},
		{"hot box cools towards ambient", []step{{0, temp(60)}, {20 * time.Minute, nil}},
			false, true, 13.6, 30 + 30/math.E},
		{"amplifier off again cools", []step{{0, on}, {time.Hour, off}, {20 * time.Minute, nil}},
			false, true, 13.6, 30 + (15-15*math.Exp(-3))/math.E},
		{"battery set below dead clamps", []step{{0, cut}, {0, volts(3)}}, false, false, 10.5, 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, clk := newBoard(t)
			for i, s := range tt.steps {
				clk.Advance(s.after)
				if s.do != nil {
					if err := s.do(b); err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
				}
			}
			got := b.Snapshot()
			if got.Amplifier != tt.amplifier || *got.Mains != tt.mains {
				t.Errorf("amplifier %v mains %v, want %v %v", got.Amplifier, *got.Mains, tt.amplifier, tt.mains)
			}
			if math.Abs(*got.BatteryVolts-tt.volts) > 0.005 {
				t.Errorf("battery %.3f V, want %.3f", *got.BatteryVolts, tt.volts)
			}
			if math.Abs(*got.TemperatureC-tt.tempC) > 0.05 {
				t.Errorf("temperature %.2f °C, want %.2f", *got.TemperatureC, tt.tempC)
			}
		})
	}
}

func TestSetAmplifierFaults(t *testing.T) {
	errDriver := errors.New("relay driver dead")
	tests := []struct {
		name    string
		setup   []func(*Board) error
		cmd     bool
		wantErr error // nil: success
		relay   bool  // relay position afterwards
	}{
		{"healthy", nil, true, nil, true},
		{"failed driver", []func(*Board) error{func(b *Board) error { b.FailAmplifier(errDriver); return nil }}, true, errDriver, false},
		{"failed driver cannot switch off", []func(*Board) error{on, func(b *Board) error { b.FailAmplifier(errDriver); return nil }}, false, errDriver, true},
		{"repaired driver", []func(*Board) error{func(b *Board) error { b.FailAmplifier(errDriver); b.FailAmplifier(nil); return nil }}, true, nil, true},
		{"stuck open", []func(*Board) error{func(b *Board) error { b.StickRelay(true); return nil }}, true, ErrRelayFeedback, false},
		{"stuck closed", []func(*Board) error{on, func(b *Board) error { b.StickRelay(true); return nil }}, false, ErrRelayFeedback, true},
		{"stuck where told", []func(*Board) error{on, func(b *Board) error { b.StickRelay(true); return nil }}, true, nil, true},
		{"unstuck", []func(*Board) error{func(b *Board) error { b.StickRelay(true); b.StickRelay(false); return nil }}, true, nil, true},
		{"flat battery without mains", []func(*Board) error{cut, volts(11.6)}, true, ErrNoPower, false},
		{"flat battery on mains", []func(*Board) error{volts(11)}, true, nil, true},
		{"switching off needs no power", []func(*Board) error{on, cut, volts(11.7)}, false, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := newBoard(t)
			for i, f := range tt.setup {
				if err := f(b); err != nil {
					t.Fatalf("setup %d: %v", i, err)
				}
			}
			err := b.SetAmplifier(tt.cmd)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("SetAmplifier(%v) = %v, want success", tt.cmd, err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("SetAmplifier(%v) = %v, want %v", tt.cmd, err, tt.wantErr)
			}
			if got := b.Amplifier(); got != tt.relay {
				t.Errorf("relay %v after, want %v", got, tt.relay)
			}
			if got := b.Snapshot().Amplifier; got != tt.relay {
				t.Errorf("snapshot reports relay %v, want %v", got, tt.relay)
			}
		})
	}
}

func TestSwitches(t *testing.T) {
	b, clk := newBoard(t)
	clk.Advance(time.Second)
	if err := b.SetAmplifier(true); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if err := b.SetAmplifier(true); err != nil { // already on: no movement
		t.Fatal(err)
	}
	clk.Advance(3 * time.Second)
	if err := b.SetAmplifier(false); err != nil {
		t.Fatal(err)
	}
	// On battery at 12.6 V the amplifier lasts exactly half an hour.
	b.CutMains()
	b.SetBatteryVolts(12.6)
	if err := b.SetAmplifier(true); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	start := t0.Add(5 * time.Second)
	want := []Switch{
		{t0.Add(time.Second), true, SwitchCommand},
		{t0.Add(5 * time.Second), false, SwitchCommand},
		{start, true, SwitchCommand},
		{start.Add(30 * time.Minute), false, SwitchCutOff},
	}
	got := b.Switches()
	if len(got) != len(want) {
		t.Fatalf("switches %v, want %v", got, want)
	}
	for i := range want {
		// The cut-off instant is computed from float volts: allow a
		// microsecond.
		if got[i].On != want[i].On || got[i].Reason != want[i].Reason || got[i].At.Sub(want[i].At).Abs() > time.Microsecond {
			t.Errorf("switch %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if err := b.SetAmplifier(true); !errors.Is(err, ErrNoPower) {
		t.Errorf("SetAmplifier after cut-off = %v, want ErrNoPower", err)
	}
	got[0].On = false
	if !b.Switches()[0].On {
		t.Error("Switches returned the board's own log, not a copy")
	}
}

func TestClockSteppedBack(t *testing.T) {
	b, clk := newBoard(t)
	b.CutMains()
	if err := b.SetAmplifier(true); err != nil {
		t.Fatal(err)
	}
	clk.Advance(30 * time.Minute)
	before := b.Snapshot()
	clk.Set(t0.Add(-time.Hour))
	after := b.Snapshot()
	if *after.BatteryVolts != *before.BatteryVolts || *after.TemperatureC != *before.TemperatureC {
		t.Fatalf("stepping the clock back changed the physics: %v → %v V", *before.BatteryVolts, *after.BatteryVolts)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		ok     bool
	}{
		{"default", func(*Config) {}, true},
		{"cut-off above full", func(c *Config) { c.BatteryCutOffVolts = 14 }, false},
		{"dead above cut-off", func(c *Config) { c.BatteryDeadVolts = 12 }, false},
		{"no amplifier drain", func(c *Config) { c.AmplifierDrainVoltsPerHour = 0 }, false},
		{"negative charge", func(c *Config) { c.ChargeVoltsPerHour = -1 }, false},
		{"no thermal time constant", func(c *Config) { c.ThermalTau = 0 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.change(&cfg)
			_, err := New(clock.NewFake(t0), cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("New = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	b, clk := newBoard(t)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 200 {
				switch (i + j) % 4 {
				case 0:
					b.SetAmplifier(j%2 == 0)
				case 1:
					b.Snapshot()
				case 2:
					clk.Advance(time.Second)
				case 3:
					b.Switches()
				}
			}
		})
	}
	wg.Wait()
	sw := b.Switches()
	if !slices.IsSortedFunc(sw, func(a, b Switch) int { return a.At.Compare(b.At) }) {
		t.Fatal("switch log not in time order")
	}
}
