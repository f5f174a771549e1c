package board

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"loaxa.vn/node/agent"
	"loaxa.vn/protocol"
)

var _ agent.BoardWatcher = (*Board)(nil)

// TestInject raises each fault, checks the snapshot shows it, clears it
// and checks the snapshot is healthy again.
func TestInject(t *testing.T) {
	cfg := DefaultConfig()
	tests := []struct {
		fault string
		shows func(protocol.Board) bool
	}{
		{FaultSpeakerOpen, func(s protocol.Board) bool { return s.SpeakerLine == protocol.LineOpen && s.SpeakerOhms == nil }},
		{FaultSpeakerShort, func(s protocol.Board) bool { return s.SpeakerLine == protocol.LineShort && *s.SpeakerOhms < ShortOhms }},
		{FaultMainsOff, func(s protocol.Board) bool { return !*s.Mains && !*s.Charging }},
		{FaultBatteryLow, func(s protocol.Board) bool { return *s.BatteryVolts == cfg.BatteryCutOffVolts && *s.Charging }},
		{FaultOverheat, func(s protocol.Board) bool { return *s.TemperatureC == OverheatC }},
		{FaultDoorOpen, func(s protocol.Board) bool { return *s.DoorOpen }},
		{FaultWeakSignal, func(s protocol.Board) bool { return *s.RSSIDBm == WeakSignalDBm && s.Link == WeakSignalLink }},
		{FaultAmplifierFault, func(s protocol.Board) bool { return *s.AmplifierFault }},
	}
	healthy := func(s protocol.Board) bool {
		return s.SpeakerLine == protocol.LineOK && *s.SpeakerOhms == cfg.SpeakerOhms && *s.Mains && !*s.Charging &&
			*s.BatteryVolts == cfg.BatteryFullVolts && *s.TemperatureC == cfg.AmbientC && !*s.DoorOpen &&
			*s.RSSIDBm == cfg.RSSIDBm && s.Link == cfg.Link && !*s.AmplifierFault
	}
	for _, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			b, _ := newBoard(t)
			if s := b.Snapshot(); !healthy(s) {
				t.Fatalf("new board not healthy: %+v", s)
			}
			if err := b.Inject(tt.fault, true); err != nil {
				t.Fatal(err)
			}
			select {
			case <-b.Changed():
			default:
				t.Error("injecting did not signal Changed")
			}
			if s := b.Snapshot(); !tt.shows(s) {
				t.Errorf("after injecting: %s", describe(s))
			}
			if err := b.Inject(tt.fault, false); err != nil {
				t.Fatal(err)
			}
			if s := b.Snapshot(); !healthy(s) {
				t.Errorf("after clearing: %s", describe(s))
			}
		})
	}
}

func TestRelayStuckShowsInCommand(t *testing.T) {
	b, _ := newBoard(t)
	if err := b.Inject(FaultRelayStuck, true); err != nil {
		t.Fatal(err)
	}
	if err := b.SetAmplifier(true); !errors.Is(err, ErrRelayFeedback) {
		t.Fatalf("SetAmplifier on a stuck relay: %v, want ErrRelayFeedback", err)
	}
	s := b.Snapshot()
	if s.Amplifier || !*s.AmplifierCommand {
		t.Errorf("stuck relay: feedback %v command %v, want false/true", s.Amplifier, *s.AmplifierCommand)
	}
}

// TestClearedRelayStuckFollowsItsCommand: a technician mended a relay that
// stuck while the agent switched it (DELETE
// /boards/{id}/faults/relay-stuck), and the relay stayed where it had
// stuck, so its feedback kept disagreeing with the command and the
// relay-feedback alarm never ended. Clearing a fault puts the input back
// to its healthy value: a healthy relay is where its coil was last told to
// go, and the log says it moved.
func TestClearedRelayStuckFollowsItsCommand(t *testing.T) {
	for _, tt := range []struct {
		name        string
		before, cmd bool // the relay's position when it sticks; the command it then ignores
	}{
		{"stuck open, a play switched it on", false, true},
		{"stuck closed, the play's end switched it off", true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := newBoard(t)
			if err := b.SetAmplifier(tt.before); err != nil {
				t.Fatal(err)
			}
			if err := b.Inject(FaultRelayStuck, true); err != nil {
				t.Fatal(err)
			}
			if err := b.SetAmplifier(tt.cmd); !errors.Is(err, ErrRelayFeedback) {
				t.Fatalf("switching a stuck relay: %v, want ErrRelayFeedback", err)
			}
			if err := b.Inject(FaultRelayStuck, false); err != nil {
				t.Fatal(err)
			}
			s := b.Snapshot()
			if s.Amplifier != tt.cmd || *s.AmplifierCommand != tt.cmd {
				t.Errorf("after clearing relay-stuck: feedback %v, command %v; want both %v (else relay-feedback stays open after the repair)",
					s.Amplifier, *s.AmplifierCommand, tt.cmd)
			}
			if sw := b.Switches(); len(sw) == 0 || sw[len(sw)-1] != (Switch{At: t0, On: tt.cmd, Reason: SwitchFreed}) {
				t.Errorf("switches %+v, want the last one the relay freed to %v (%s)", sw, tt.cmd, SwitchFreed)
			}
		})
	}
}

// TestSoundCardOut: the sound card is the box's, but the agent learns of
// it from its sound output, not from the snapshot.
func TestSoundCardOut(t *testing.T) {
	b, _ := newBoard(t)
	before := describe(b.Snapshot())
	if !b.SoundCard() {
		t.Fatal("a new board has no sound card")
	}
	if err := b.Inject(FaultSoundCardOut, true); err != nil {
		t.Fatal(err)
	}
	if b.SoundCard() {
		t.Error("the sound card is still in after pulling it out")
	}
	if after := describe(b.Snapshot()); after != before {
		t.Errorf("the snapshot changed with the sound card: %s, was %s", after, before)
	}
	if err := b.Inject(FaultSoundCardOut, false); err != nil {
		t.Fatal(err)
	}
	if !b.SoundCard() {
		t.Error("no sound card after plugging it back in")
	}
}

// TestCardReadOnly: the SD card is the box's too; its agent learns of it
// when it starts again (firmware-sim/fleet), not from the snapshot.
func TestCardReadOnly(t *testing.T) {
	b, _ := newBoard(t)
	before := describe(b.Snapshot())
	if b.CardReadOnly() {
		t.Fatal("a new board's card is read-only")
	}
	if err := b.Inject(FaultCardReadOnly, true); err != nil {
		t.Fatal(err)
	}
	if !b.CardReadOnly() {
		t.Error("the card is not read-only after the fault")
	}
	if after := describe(b.Snapshot()); after != before {
		t.Errorf("the snapshot changed with the card: %s, was %s", after, before)
	}
	if err := b.Inject(FaultCardReadOnly, false); err != nil || b.CardReadOnly() {
		t.Errorf("the card still read-only after clearing the fault (%v)", err)
	}
}

func TestInjectUnknown(t *testing.T) {
	b, _ := newBoard(t)
	err := b.Inject("flood", true)
	if !errors.Is(err, ErrUnknownFault) || !strings.Contains(err.Error(), FaultSpeakerOpen) {
		t.Errorf("Inject(flood): %v, want ErrUnknownFault naming the known faults", err)
	}
}

func TestControl(t *testing.T) {
	b, _ := newBoard(t)
	srv := httptest.NewServer(Control(func(id string) *Board {
		if id == "sim-0001" {
			return b
		}
		return nil
	}))
	defer srv.Close()
	do := func(method, path string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return resp.StatusCode, out
	}
	if code, out := do("POST", "/boards/sim-0001/faults/speaker-open"); code != 200 || out["speaker_line"] != "open" {
		t.Errorf("cut the line: %d %v", code, out)
	}
	if b.Snapshot().SpeakerLine != protocol.LineOpen {
		t.Error("the board's line is not open after the POST")
	}
	if code, out := do("DELETE", "/boards/sim-0001/faults/speaker-open"); code != 200 || out["speaker_line"] != "ok" {
		t.Errorf("mend the line: %d %v", code, out)
	}
	if code, out := do("POST", "/boards/sim-0001/faults/flood"); code != 400 || !strings.Contains(out["error"].(string), "unknown fault") {
		t.Errorf("unknown fault: %d %v", code, out)
	}
	if code, out := do("GET", "/boards/sim-9999"); code != 404 || !strings.Contains(out["error"].(string), "sim-9999") {
		t.Errorf("unknown board: %d %v", code, out)
	}
	if code, out := do("GET", "/faults"); code != 200 || len(out["faults"].([]any)) != len(Faults) {
		t.Errorf("faults: %d %v", code, out)
	}
}

func describe(s protocol.Board) string {
	raw, _ := json.Marshal(s)
	return string(raw)
}
