package protocol_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"loaxa.vn/protocol"
)

func validAlert() protocol.Alert {
	id := strings.Repeat("ab", 32)
	chime := strings.Repeat("cd", 32)
	start := time.Date(2025, 9, 6, 8, 0, 0, 0, time.UTC)
	return protocol.Alert{
		Occurrence: protocol.Occurrence{ID: "e000001@20250906T080000.000Z", Announcement: "e000001", Content: id,
			Priority: protocol.PriorityEmergency, Start: start, Expires: start.Add(10 * time.Minute), Repeat: 3,
			OpeningChime: chime, ClosingChime: chime, Volume: 15},
		Content: []protocol.ContentRef{{ID: chime}, {ID: id}},
	}
}

func TestAlertValidate(t *testing.T) {
	for name, change := range map[string]func(a *protocol.Alert){
		"no id":             func(a *protocol.Alert) { a.Occurrence.ID = "" },
		"content unlisted":  func(a *protocol.Alert) { a.Content = a.Content[:1] },
		"chime unlisted":    func(a *protocol.Alert) { a.Occurrence.OpeningChime = strings.Repeat("ef", 32) },
		"intro unlisted":    func(a *protocol.Alert) { a.Occurrence.Intro = strings.Repeat("ef", 32) },
		"bad content id":    func(a *protocol.Alert) { a.Content[0].ID = "x" },
		"normal priority":   func(a *protocol.Alert) { a.Occurrence.Priority = protocol.PriorityNormal },
		"no expiry":         func(a *protocol.Alert) { a.Occurrence.Expires = time.Time{} },
		"expires at start":  func(a *protocol.Alert) { a.Occurrence.Expires = a.Occurrence.Start },
		"too many repeats":  func(a *protocol.Alert) { a.Occurrence.Repeat = protocol.MaxRepeat + 1 },
		"volume too high":   func(a *protocol.Alert) { a.Occurrence.Volume = 16 },
		"negative volume":   func(a *protocol.Alert) { a.Occurrence.Volume = -1 },
		"unknown preemptor": func(a *protocol.Alert) { a.Occurrence.OnPreempt = "later" },
		"negative window":   func(a *protocol.Alert) { a.ReportWindowMS = -1 },
	} {
		a := validAlert()
		a.Content = append([]protocol.ContentRef(nil), a.Content...)
		change(&a)
		if err := a.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	a := validAlert()
	if err := a.Validate(); err != nil {
		t.Errorf("valid alert refused: %v", err)
	}
}

// TestAlertReportWindow: the window a node applies is the alert's, cut to
// MaxReportWindowMS; a longer one from a newer controller is accepted, not
// refused (the alarm matters more than when it is reported).
func TestAlertReportWindow(t *testing.T) {
	for _, c := range []struct {
		ms   int64
		want time.Duration
	}{
		{0, 0},
		{1, time.Millisecond},
		{7_500, 7500 * time.Millisecond},
		{protocol.MaxReportWindowMS, protocol.MaxReportWindowMS * time.Millisecond},
		{protocol.MaxReportWindowMS + 1, protocol.MaxReportWindowMS * time.Millisecond},
		{1 << 62, protocol.MaxReportWindowMS * time.Millisecond},
	} {
		a := validAlert()
		a.ReportWindowMS = c.ms
		if err := a.Validate(); err != nil {
			t.Errorf("window %d ms refused: %v", c.ms, err)
		}
		if got := a.ReportWindow(); got != c.want {
			t.Errorf("window %d ms: node applies %v, want %v", c.ms, got, c.want)
		}
	}
	// An older controller's alert has no field at all.
	raw, _ := json.Marshal(validAlert())
	if strings.Contains(string(raw), "report_window") {
		t.Errorf("alert without a window encodes one: %s", raw)
	}
}

func TestDeadlineIsExpiry(t *testing.T) {
	a := validAlert()
	if got := a.Occurrence.Deadline(time.Hour); !got.Equal(a.Occurrence.Expires) {
		t.Errorf("deadline %v, want the expiry %v whatever the grace", got, a.Occurrence.Expires)
	}
}

// FuzzAlertCommand decodes arbitrary command bodies as a node does and
// validates the alert: it must never panic, and an alert it accepts must
// survive re-encoding and be accepted again.
func FuzzAlertCommand(f *testing.F) {
	a := validAlert()
	seed, _ := json.Marshal(protocol.Command{Name: protocol.CmdAlert, Alert: &a})
	f.Add(seed)
	f.Add([]byte(`{"name":"alert-cancel","occurrence":"e000001@x"}`))
	f.Add([]byte(`{"name":"alert","alert":{"occurrence":{"id":"x","volume":99}}}`))
	a.ReportWindowMS = 10_000
	seed, _ = json.Marshal(protocol.Command{Name: protocol.CmdAlert, Alert: &a})
	f.Add(seed)
	f.Add([]byte(`{"name":"alert","alert":{"report_window_ms":-5}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var cmd protocol.Command
		if json.Unmarshal(raw, &cmd) != nil || cmd.Alert == nil {
			return
		}
		if cmd.Alert.Validate() != nil {
			return
		}
		if w := cmd.Alert.ReportWindow(); w < 0 || w > protocol.MaxReportWindowMS*time.Millisecond {
			t.Fatalf("accepted alert gives a report window of %v", w)
		}
		again, err := json.Marshal(cmd.Alert)
		if err != nil {
			t.Fatal(err)
		}
		var b protocol.Alert
		if err := json.Unmarshal(again, &b); err != nil {
			t.Fatalf("re-decode %s: %v", again, err)
		}
		if err := b.Validate(); err != nil {
			t.Fatalf("accepted alert refused after re-encoding: %v\n%s", err, again)
		}
	})
}
