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
	Reason string
	// Info is the block to play (Vietnamese if present).
	Info *Info
	// Blocks, when the alert has more than one block in Info's language,
	// are those to play, Info first, each to its own areas: the others of
	// the sequence that have not expired (Alert.Blocks).
	Blocks []*Info
	// Cancel lists the keys of earlier alerts to cancel first (Update,
	// Cancel).
	Cancel []string
	// Expires is the info's expiry, zero if none.
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
	d.Expires = d.Info.ExpiresAt()
	if !d.Expires.IsZero() && !d.Expires.After(now) {
		d.Action, d.Reason = ActionExpired, "it expired at "+d.Expires.Format(time.RFC3339)
		return d
	}
	if blocks := a.Blocks(); len(blocks) > 1 {
		for _, in := range blocks {
			if exp := in.ExpiresAt(); in == d.Info || exp.IsZero() || exp.After(now) {
				d.Blocks = append(d.Blocks, in)
			}
		}
		if len(d.Blocks) < 2 {
			d.Blocks = nil // Info alone
		}
	}
	d.Action = ActionPlay
	if a.Status == "Exercise" {
		d.Action = ActionDrill
	}
	// CAP 1.2 (3.2.1): only a Public alert is "for general dissemination
	// to unrestricted audiences"; a loudspeaker reaches everyone within
	// earshot, so a Restricted or Private one is broadcast only if an
	// officer decides it should be.
	if a.Scope != "Public" {
		d.Action = ActionPending
		d.Reason = fmt.Sprintf("scope %s%s: it is not for the public, and a loudspeaker reaches everyone within earshot; "+
			"approve it with POST /api/v1/cap/{id}/approve only if it should be broadcast", a.Scope, a.audience())
		return d
	}
	if d.Expires.IsZero() && now.Sub(a.SentAt()) > StaleAfter {
		d.Action = ActionPending
		d.Reason = fmt.Sprintf("it was sent at %s, more than %v ago, and gives no expires; approve it with POST /api/v1/cap/{id}/approve if it still holds",
			a.SentAt().Format(time.RFC3339), StaleAfter)
		return d
	}
	for _, in := range append([]*Info{d.Info}, d.Blocks...) {
		if !autoStart(in.Event) {
			d.Reason = fmt.Sprintf("event %q is not on the auto-start list; approve it with POST /api/v1/cap/{id}/approve", in.Event)
			d.Action = ActionPending
			break
		}
	}
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
