package protocol

import (
	"errors"
	"fmt"
	"time"
)

// Emergency commands. An alert travels as one signed Command on the cmd
// topic of each targeted area (the broker fans it out to every node below),
// and again on a node's own cmd topic when the controller resends it to a
// node that has not acknowledged it.
const (
	// CmdAlert plays Command.Alert now, over anything lower.
	CmdAlert = "alert"
	// CmdAlertCancel stops the alert named by Command.Occurrence wherever
	// it plays or waits, and keeps it from starting later.
	CmdAlertCancel = "alert-cancel"
)

// Alert is an emergency announcement for the moment: one occurrence with
// the content it needs. Occurrence.Start is the synchronised start instant
// (a short lead after the alert was issued): nodes that have it in time
// start together, nodes that get it late start at once and report how late
// (Event.LateMS). Occurrence.Expires is the end of its validity: a node
// never starts it later, and the command's envelope expires then too, so a
// node that comes back after that hears nothing stale. Content not on the
// node is fetched at once; its content-ready event says when it arrived.
//
// ReportWindowMS (optional, added later) spreads the node's reports of the
// alert: each node waits a random delay within the window, chosen once per
// alert, after each report's own time (after the alert's start for a
// report made before it, the receipt) before it sends it (events and
// state), so that the reports of a large area do not reach the broker and
// controller while the alert is still fanning out. The window runs from
// the alert's start: a node that has the alert later picks its delay
// within what is left of the window, and reports at once after it. 0 (and
// an older controller, which does not send it) means report at once. A
// node uses at most MaxReportWindowMS of it, whatever a newer controller
// asks.
type Alert struct {
	Occurrence     Occurrence   `json:"occurrence"`
	Content        []ContentRef `json:"content"`
	ReportWindowMS int64        `json:"report_window_ms,omitempty"`
}

// MaxReportWindowMS is the longest report window a node applies
// (Alert.ReportWindowMS): a longer one is cut to it, so that no alert can
// keep a node's reports back for long.
const MaxReportWindowMS = 60_000

// ReportWindow returns the window over which the node spreads its reports
// of a, cut to [0, MaxReportWindowMS].
func (a *Alert) ReportWindow() time.Duration {
	return time.Duration(min(max(a.ReportWindowMS, 0), MaxReportWindowMS)) * time.Millisecond
}

// Validate checks an alert a node is about to play.
func (a *Alert) Validate() error {
	o := &a.Occurrence
	refs := make(map[string]bool, len(a.Content))
	for _, c := range a.Content {
		if !ValidContentID(c.ID) {
			return fmt.Errorf("alert %s: content id %q is not a hex SHA-256", o.ID, c.ID)
		}
		refs[c.ID] = true
	}
	switch {
	case o.ID == "":
		return errors.New("alert without an occurrence id")
	case !refs[o.Content]:
		return fmt.Errorf("alert %s needs content %s that is not listed", o.ID, o.Content)
	case o.OpeningChime != "" && !refs[o.OpeningChime] || o.ClosingChime != "" && !refs[o.ClosingChime]:
		return fmt.Errorf("alert %s needs a chime that is not listed", o.ID)
	case o.Intro != "" && !refs[o.Intro]:
		return fmt.Errorf("alert %s needs an intro %s that is not listed", o.ID, o.Intro)
	case o.Priority != PriorityEmergency && o.Priority != PriorityHigh:
		return fmt.Errorf("alert %s: priority %q, want %s or %s", o.ID, o.Priority, PriorityEmergency, PriorityHigh)
	case o.Start.IsZero() || o.Expires.IsZero() || !o.Expires.After(o.Start):
		return fmt.Errorf("alert %s: start %v and expiry %v do not make a validity window", o.ID, o.Start, o.Expires)
	case o.Repeat < 0 || o.Repeat > MaxRepeat || o.GapMS < 0 || o.GapMS > MaxGapMS:
		return fmt.Errorf("alert %s: repeat %d with gap %d ms is out of range", o.ID, o.Repeat, o.GapMS)
	case o.Volume < 0 || o.Volume > MaxVolume:
		return fmt.Errorf("alert %s: volume %d outside 0–%d", o.ID, o.Volume, MaxVolume)
	case o.OnPreempt != "" && o.OnPreempt != PreemptResume && o.OnPreempt != PreemptDrop:
		return fmt.Errorf("alert %s: unknown preemption policy %q", o.ID, o.OnPreempt)
	case a.ReportWindowMS < 0:
		return fmt.Errorf("alert %s: report window %d ms is negative", o.ID, a.ReportWindowMS)
	}
	return nil
}
