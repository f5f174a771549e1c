package cap

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Action is what loaxa does with an alert.
type Action string

// Actions, in the words of the API's answer.
const (
	ActionPlay      Action = "play"      // status Actual: an emergency, now
	ActionDrill     Action = "drill"     // status Exercise: an emergency drill, now
	ActionPending   Action = "pending"   // playable, but its event is not on the auto-start list: one click to approve
	ActionCancel    Action = "cancel"    // msgType Cancel: cancel what the references started
	ActionLog       Action = "log"       // Test, System, Draft, Ack, Error: recorded, not played
	ActionExpired   Action = "expired"   // its info expired: recorded, not played
	ActionDuplicate Action = "duplicate" // the same sender and identifier came before: nothing
	ActionNoTarget  Action = "no-target" // its areas match no area and no node here
	// ActionCancelled: a later Cancel or Update withdrew it before it
	// played (it waited for approval, or it came after them).
	ActionCancelled Action = "cancelled"
)

// StaleAfter is how old an alert without expires may be and still start
// on its own: an older one (from a feed's history the first time it is
// polled, or held while the controller was down) waits for an officer's
// approval rather than sounding a warning that may be over.
const StaleAfter = time.Hour

// Decision is what to do with one alert.
type Decision struct {
	Action Action
	// Reason says why (for a pending alert, first why it waits), then
	// notes each info block of the sequence left out because it expired.
	// It does not say how to approve a pending alert: that names the
	// alert's record, which does not exist yet.
	Reason string
	// Info is the block to play (Vietnamese if present): the first of the
	// sequence that has not expired (Alert.Blocks); of an expired alert,
	// the first.
	Info *Info
	// Blocks, when more than one block in Info's language has not
	// expired, are those to play, Info first, each to its own areas.
	Blocks []*Info
	// Cancel lists the keys of earlier alerts to cancel first (Update,
	// Cancel).
	Cancel []string
	// Expires is Info's expiry, zero if none; of an expired alert, when
	// its last block expired.
	Expires time.Time
}

// Decide says what to do with a at now. seen reports whether an alert
// key was handled before; autoStart whether an event type may start
// without approval.
func Decide(a *Alert, now time.Time, seen func(key string) bool, autoStart func(event string) bool) Decision {
	if seen(a.Key()) {
		return Decision{Action: ActionDuplicate, Reason: fmt.Sprintf("alert %s from %s was received before", a.Identifier, a.Sender)}
	}
	switch a.Status {
	case "Test", "System", "Draft":
		return Decision{Action: ActionLog, Reason: "status " + a.Status + " is recorded, never played"}
	}
	switch a.MsgType {
	case "Ack", "Error":
		return Decision{Action: ActionLog, Reason: "msgType " + a.MsgType + " is recorded, never played"}
	case "Cancel":
		return Decision{Action: ActionCancel, Cancel: a.Refs(), Reason: "cancels " + strings.Join(a.Refs(), " ")}
	}
	d := Decision{Info: a.Info()}
	if a.MsgType == "Update" {
		d.Cancel = a.Refs()
	}
	if d.Info == nil {
		d.Action, d.Reason = ActionLog, "the alert has no info block to play"
		return d
	}
	// Each block of the sequence is judged on its own: the first may have
	// expired (the coast's warning overnight) while a later one holds
	// (inland, until the evening). The alert has expired only when every
	// block has.
	var live []*Info
	var last time.Time // the latest expiry of the blocks that expired
	var gone []string  // a note for each block that expired
	for _, in := range a.Blocks() {
		exp := in.ExpiresAt()
		if exp.IsZero() || exp.After(now) {
			live = append(live, in)
			continue
		}
		if exp.After(last) {
			last = exp
		}
		gone = append(gone, fmt.Sprintf("%s not played: it expired at %s", in.Label(), exp.Format(time.RFC3339)))
	}
	if len(live) == 0 {
		d.Expires = last
		d.Action, d.Reason = ActionExpired, "it expired at "+last.Format(time.RFC3339)
		return d
	}
	d.Info, d.Expires = live[0], live[0].ExpiresAt()
	if len(live) > 1 {
		d.Blocks = live
	}
	d.Action = ActionPlay
	if a.Status == "Exercise" {
		d.Action = ActionDrill
	}
	// CAP 1.2 (3.2.1): only a Public alert is "for general dissemination
	// to unrestricted audiences"; a loudspeaker reaches everyone within
	// earshot, so a Restricted or Private one is broadcast only if an
	// officer decides it should be.
	switch {
	case a.Scope != "Public":
		d.Action = ActionPending
		d.Reason = fmt.Sprintf("scope %s%s: it is not for the public, and a loudspeaker reaches everyone within earshot; "+
			"approve it only if it should be broadcast", a.Scope, a.audience())
	case now.Sub(a.SentAt()) > StaleAfter && slices.ContainsFunc(live, func(in *Info) bool { return in.ExpiresAt().IsZero() }):
		d.Action = ActionPending
		d.Reason = fmt.Sprintf("it was sent at %s, more than %v ago, and an info block it plays gives no expires: approve it only if it still holds",
			a.SentAt().Format(time.RFC3339), StaleAfter)
	default:
		for _, in := range live {
			if !autoStart(in.Event) {
				d.Reason = fmt.Sprintf("event %q is not on the auto-start list", in.Event)
				d.Action = ActionPending
				break
			}
		}
	}
	// Why it waits comes first (the console reads it); what of it does not
	// play follows.
	d.Reason = strings.Join(slices.DeleteFunc(append([]string{d.Reason}, gone...), func(s string) bool { return s == "" }), "; ")
	return d
}

// audience says whom a Restricted or Private alert is for, as its sender
// wrote it, or nothing.
func (a *Alert) audience() string {
	switch {
	case a.Scope == "Restricted" && strings.TrimSpace(a.Restriction) != "":
		return fmt.Sprintf(" (%q)", strings.Join(strings.Fields(a.Restriction), " "))
	case a.Scope == "Private" && strings.TrimSpace(a.Addresses) != "":
		return fmt.Sprintf(" (addresses %q)", strings.Join(strings.Fields(a.Addresses), " "))
	}
	return ""
}

// NodePosition is where a node stands and which area it is in.
type NodePosition struct {
	Area     string
	Lat, Lon float64
}

// Targets maps an info block's areas to loaxa areas: a geocode whose
// value is a known area id names that area; a polygon or circle names the
// area of every node inside it. The result is sorted and without repeats.
func Targets(in *Info, isArea func(id string) bool, nodes []NodePosition) []string {
	var out []string
	add := func(id string) {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	for _, ar := range in.Areas {
		for _, g := range ar.Geocodes {
			if v := strings.TrimSpace(g.Value); v != "" && isArea(v) {
				add(v)
			}
		}
		var polys [][]Point
		for _, p := range ar.Polygons {
			if ps, err := ParsePolygon(p); err == nil {
				polys = append(polys, ps)
			}
		}
		var circles []Circle
		for _, c := range ar.Circles {
			if ci, err := ParseCircle(c); err == nil {
				circles = append(circles, ci)
			}
		}
		for _, n := range nodes {
			p := Point{n.Lat, n.Lon}
			in := slices.ContainsFunc(polys, func(ps []Point) bool { return Contains(ps, p) }) ||
				slices.ContainsFunc(circles, func(c Circle) bool { return c.Holds(p) })
			if in {
				add(n.Area)
			}
		}
	}
	slices.Sort(out)
	return out
}
