package loaxa

import (
	"context"
	"slices"
	"strings"
	"time"

	"loaxa.vn/protocol"
)

// EmergencyIDPrefix starts every emergency id ("e000001"); announcement ids
// start with "a", so the two never share deliveries.
const EmergencyIDPrefix = "e"

// IsEmergencyID reports whether id names an emergency.
func IsEmergencyID(id string) bool { return strings.HasPrefix(id, EmergencyIDPrefix) }

// Kinds of emergency message.
const (
	EmergencyAlert    = "alert"     // the warning itself
	EmergencyAllClear = "all-clear" // the follow-up: the danger has passed
)

// States of an emergency.
const (
	EmergencyActive    = "active"    // nodes may still start it (before Expires)
	EmergencyCancelled = "cancelled" // stopped everywhere by an operator
	EmergencyExpired   = "expired"   // past Expires: no node starts it any more
)

// Limits of an emergency request.
const (
	DefaultEmergencyRepeat = 3
	// DefaultEmergencyWindow is how long after its planned end an alert
	// still starts on a node that gets it late, unless the request says.
	DefaultEmergencyWindow = 5 * time.Minute
	MaxEmergencyWindow     = 24 * time.Hour
)

// Emergency (phát khẩn cấp) is an urgent message put on every speaker of
// some areas at once, over whatever plays, at full (or the given) volume.
// It is sent as one signed alert per targeted area, tracked node by node
// through the deliveries of its occurrence.
type Emergency struct {
	ID    string `json:"id"`
	Kind  string `json:"kind"`
	Title string `json:"title"`
	// Follows is the emergency an all-clear follows; AllClear the
	// all-clear sent after this one.
	Follows  string `json:"follows,omitempty"`
	AllClear string `json:"all_clear,omitempty"`

	ContentID string `json:"content_id"`
	Text      string `json:"text,omitempty"` // what text-to-speech read, if it made the content
	// IntroContentID, if set, is a recording played once after the opening
	// chime, before the message: a warning kept on the clusters that
	// sounds at once while the message (typed words, read out) may still
	// be downloading.
	IntroContentID string   `json:"intro_content_id,omitempty"`
	OpeningChime   string   `json:"opening_chime"`
	ClosingChime   string   `json:"closing_chime"`
	Targets        []string `json:"targets"` // areas
	Repeat         int      `json:"repeat"`
	Volume         int      `json:"volume"` // 1–15; 15 is full
	// Drill marks an exercise (diễn tập): every message, event, log line
	// and report about it says so.
	Drill bool `json:"drill"`

	// Occurrence is the id every node reports it under.
	Occurrence string    `json:"occurrence"`
	Issued     time.Time `json:"issued"`
	// Publishing is the occurrence its alert is being published as,
	// stored beside the publish and cleared once the emergency is recorded
	// as sent (Occurrence): a controller stopped in between leaves it, and
	// its restart knows that the alert may have gone out and what a cancel
	// must name (controller/emergency restore.go).
	Publishing string    `json:"publishing,omitempty"`
	Expires    time.Time `json:"expires"`
	// PlannedMS is the length of one play: chimes and every repeat.
	PlannedMS int64 `json:"planned_ms"`
	// Areas is what was sent per targeted area.
	Areas []EmergencyArea `json:"areas"`

	State string `json:"state"`
	// CutOff: the controller stopped while it was being sent, and its
	// clusters may sound it. It stays active, so that it can be
	// cancelled, until its expiry, but it is not followed node by node
	// or sent again (controller/emergency restore.go).
	CutOff      bool      `json:"cut_off,omitempty"`
	CancelledAt time.Time `json:"cancelled_at,omitzero"`
	CancelledBy string    `json:"cancelled_by,omitempty"`
	CreatedBy   string    `json:"created_by"`
}

// EmergencyArea is the alert published on one area's cmd topic.
type EmergencyArea struct {
	Area string `json:"area"`
	// Nodes is how many nodes the area held when it was sent: its
	// enrolled ones, those it targets.
	Nodes int `json:"nodes"`
	// AwaitingEnrolment is how many more it held that waited for their
	// enrolment code (clusters not put up yet): not targeted, but one that
	// redeems its code while the alert is in force is sent it then.
	AwaitingEnrolment int `json:"awaiting_enrolment,omitempty"`
	// Start is the instant every node of the area starts together: the
	// issue time plus LeadMS.
	Start  time.Time `json:"start"`
	LeadMS int64     `json:"lead_ms"`
	// LeadFrom says where the lead came from: "measured" (the fan-out of
	// the area's last alert) or "estimated" (from the number of nodes).
	LeadFrom string `json:"lead_from"`
	// ReportWindowMS is the window over which the area's nodes spread
	// their reports of the alert (protocol.Alert.ReportWindowMS), chosen
	// from Nodes: 0 for a small area, which reports at once.
	ReportWindowMS int64 `json:"report_window_ms,omitempty"`
	// PublishedAt is when the broker took the publish: an external broker
	// acknowledged it, or the embedded one had queued it for every
	// connected node of the area (its fan-out, done within the publish:
	// 1–2.4 s at 10,000 simulated nodes on two saturated cores, BENCHMARKS.md).
	// Error says why it did not, if it did not.
	PublishedAt time.Time `json:"published_at,omitzero"`
	Error       string    `json:"error,omitempty"`
}

// EmergencyRequest is what an operator asks for. ContentID names stored
// audio (the HTTP layer turns text into content first).
type EmergencyRequest struct {
	Kind      string
	Follows   string
	Title     string
	ContentID string
	Text      string
	// IntroContentID is Emergency.IntroContentID; "" for none.
	IntroContentID string
	Targets        []string
	Repeat         int // 0: DefaultEmergencyRepeat
	Volume         int // 0: full
	Drill          bool
	// Expires, if not zero, is when nodes stop starting it; otherwise
	// DefaultEmergencyWindow after its planned end.
	Expires   time.Time
	CreatedBy string
}

// Node states in an emergency report beyond the delivery states.
const (
	// EmergencyOffline: the node has not reported the alert and is offline.
	EmergencyOffline = "offline"
	// EmergencyCancelledState: the node stopped it, or will never start
	// it, because it was cancelled.
	EmergencyCancelledState = "cancelled"
	// EmergencyUnconfirmed: the node began the alert (or had it cut off,
	// to play again), and by now every play of it would have ended
	// (UnconfirmedAfter), but it has not reported how it ended: its power
	// or its link went with the storm. Not sounding, as far as anyone
	// knows; its report comes when it is back.
	EmergencyUnconfirmed = "unconfirmed"
	// ReasonNotReached: the alert expired or was cancelled before the
	// node had it.
	ReasonNotReached = "not-reached"
)

// EmergencyNode is one node's part in an emergency.
type EmergencyNode struct {
	Node string `json:"node"`
	Area string `json:"area"`
	// State is the delivery state (pending, received, started, completed,
	// failed, missed, preempted), "cancelled", or "offline" for a pending
	// node that is offline.
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// ReceivedMS is how long after the issue the node had it; LateMS how
	// late after its area's start it began.
	ReceivedMS *int64 `json:"received_ms,omitempty"`
	LateMS     int64  `json:"late_ms,omitempty"`
	// ChimeSkippedMS is how much of the opening chime's beginning a node
	// that began late left out, so that the rest played on its area's
	// timeline: it was LateMS - ChimeSkippedMS off it.
	ChimeSkippedMS int64 `json:"chime_skipped_ms,omitempty"`
	PlayedMS       int64 `json:"played_ms,omitempty"`
	ContentReady   bool  `json:"content_ready"`
	// ContentReadyMS is how long after the issue the node had the audio;
	// Fetched says it did not have it when the alert came and fetched it
	// at once (its start may be late for that).
	ContentReadyMS *int64 `json:"content_ready_ms,omitempty"`
	Fetched        bool   `json:"fetched,omitempty"`
	// SoundMS is how long after the issue the node began playing it: its
	// area's lead plus its late_ms, on its clock corrected to the
	// controller's. Only for a node that began.
	SoundMS *int64 `json:"sound_ms,omitempty"`
	// MessageMS is how long after its start the node began the message,
	// if the message came after the chime's end (it was downloading);
	// MessageInStep says whether that (with the node's LateMS, after the
	// area's start) was on one of the repeats of its area's nodes that had
	// the message in time (MessageGrid).
	MessageMS     *int64 `json:"message_ms,omitempty"`
	MessageInStep *bool  `json:"message_in_step,omitempty"`
	Resends       int    `json:"resends,omitempty"`
	Online        bool   `json:"online"`
	// SilencedBy, for a node that began the alert, are the faults that
	// keep it silent (SilencingFaults) open while it played, from the
	// alarm history (PlayedIntoFault): its state may read completed, but
	// its pole may have said nothing. Kept once the fault is mended
	// (docs/emergency.md).
	// A pointer, like the optional times above, so that entries compare
	// with == once those are set aside (the stream's sameNode).
	SilencedBy *[]string `json:"silenced_by,omitempty"`
}

// MessageGrid is when the nodes of an area that began an alert together
// and had its message in time begin each repeat of the message, in ms
// after their start: the first at BaseMS (the opening chime and any
// intro), each next PeriodMS later (the message and the gap), Repeats in
// all.
type MessageGrid struct {
	BaseMS, PeriodMS int64
	Repeats          int
}

// InStep says whether a message begun ms after the start fell on one of
// the grid's repeats, within StartTogether.
func (g MessageGrid) InStep(ms int64) bool {
	if g.PeriodMS <= 0 || g.Repeats <= 0 {
		return false
	}
	d := ms - g.BaseMS
	k := (d + g.PeriodMS/2) / g.PeriodMS
	if d < 0 {
		k = 0
	}
	off := d - k*g.PeriodMS
	return k < int64(g.Repeats) && off >= -StartTogether.Milliseconds() && off <= StartTogether.Milliseconds()
}

// EmergencyTiming is how fast the alert reached the speakers, from the
// nodes' own reports (their clocks corrected to the controller's), so that
// after a drill on real boards a technician reads what the benchmarks
// measure in simulation: whether the area had the alert within its lead
// and began together.
type EmergencyTiming struct {
	// Received counts the nodes that reported the alert; ReceivedMS is
	// how long after the issue they had it.
	Received   int          `json:"received"`
	ReceivedMS *Percentiles `json:"received_ms,omitempty"`
	// Started counts the nodes that began playing it; SoundMS is how long
	// after the issue they did, SkewMS how far from their area's timeline
	// they played (|late_ms − chime_skipped_ms|: a node that began late
	// and skipped into its chime by as much is on it).
	Started int          `json:"started"`
	SoundMS *Percentiles `json:"sound_ms,omitempty"`
	SkewMS  *Percentiles `json:"skew_ms,omitempty"`
	// OffStart counts the nodes that played more than StartTogether off
	// their area's timeline: they had the alert late (later than the
	// chime can make up), or are out of step (a clock, a slow output).
	OffStart int `json:"off_start"`
	// ChimeSkipped counts the nodes that began late and left out the
	// beginning of their opening chime to play in step.
	ChimeSkipped int `json:"chime_skipped,omitempty"`
	// MessageLate counts the nodes that began with the chime before they
	// could play the message (downloading it) and have said when they
	// began it; MessageInStep those of them that began it on a repeat of
	// the nodes that had it in time, so that neighbours did not echo.
	MessageLate   int `json:"message_late,omitempty"`
	MessageInStep int `json:"message_in_step,omitempty"`
}

// StartTogether is how far from the shared start instant a node may begin
// and still count as starting with its neighbours: the target for
// the start skew.
const StartTogether = 20 * time.Millisecond

// Percentiles are the median, 99th percentile (nearest rank) and maximum
// of a set of milliseconds.
type Percentiles struct {
	P50 int64 `json:"p50"`
	P99 int64 `json:"p99"`
	Max int64 `json:"max"`
}

// PercentilesOf returns the percentiles of ms (sorted in place), nil for
// none.
func PercentilesOf(ms []int64) *Percentiles {
	if len(ms) == 0 {
		return nil
	}
	slices.Sort(ms)
	rank := func(p int) int64 { return ms[max((len(ms)*p+99)/100, 1)-1] }
	return &Percentiles{P50: rank(50), P99: rank(99), Max: ms[len(ms)-1]}
}

// TimingOf returns the timing of the nodes of a report.
func TimingOf(nodes []EmergencyNode) EmergencyTiming {
	var t EmergencyTiming
	var received, sound, skew []int64
	together := StartTogether.Milliseconds()
	for _, n := range nodes {
		if n.ReceivedMS != nil {
			received = append(received, *n.ReceivedMS)
		}
		if n.SoundMS != nil {
			sound = append(sound, *n.SoundMS)
			off := n.LateMS - n.ChimeSkippedMS
			if off < 0 {
				off = -off
			}
			if n.ChimeSkippedMS > 0 {
				t.ChimeSkipped++
			}
			skew = append(skew, off)
			if off > together {
				t.OffStart++
			}
		}
		if n.MessageInStep != nil {
			t.MessageLate++
			if *n.MessageInStep {
				t.MessageInStep++
			}
		}
	}
	t.Received, t.Started = len(received), len(sound)
	t.ReceivedMS, t.SoundMS, t.SkewMS = PercentilesOf(received), PercentilesOf(sound), PercentilesOf(skew)
	return t
}

// EmergencySummary counts the nodes of an emergency. Reached counts nodes
// that reported the alert (received or further); Sounding those playing it
// now; Suspended those that began it and were cut off, silent until they
// play it again (its message stopped coming, a restart, a later alert);
// Offline pending nodes that are offline; Pending pending nodes that are
// online (the controller resends to them).
type EmergencySummary struct {
	Targeted  int `json:"targeted"`
	Reached   int `json:"reached"`
	Sounding  int `json:"sounding"`
	Suspended int `json:"suspended"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
	Cancelled int `json:"cancelled"`
	Offline   int `json:"offline"`
	Pending   int `json:"pending"`
	// Unconfirmed counts the nodes that began the alert and have not
	// reported its end long after it would have ended
	// (EmergencyUnconfirmed).
	Unconfirmed int `json:"unconfirmed,omitempty"`
	// Fetching (emergency reports) counts the nodes that have the alert
	// but not yet its audio: they are downloading it, sounding the opening
	// chime meanwhile if they keep it, and play the message once enough of
	// it has arrived.
	Fetching int `json:"fetching,omitempty"`
	// AwaitingEnrolment (an emergency's summary only) counts the nodes of
	// its areas that waited for their enrolment code when it was sent
	// and have not redeemed it and had the alert since: clusters not put
	// up yet, not targeted, neither offline nor failed.
	AwaitingEnrolment int `json:"awaiting_enrolment,omitempty"`
	// Silenced (emergency reports) counts the nodes with SilencedBy: they
	// report the alert sounding, played or cut off, but a fault kept their
	// pole silent; counted in their states too.
	Silenced int `json:"silenced,omitempty"`
}

// Add counts one node.
func (s *EmergencySummary) Add(n EmergencyNode) {
	s.Targeted++
	switch DeliveryState(n.State) {
	case DeliveryReceived:
		s.Reached++
	case DeliveryStarted:
		s.Reached++
		s.Sounding++
	case DeliverySuspended:
		s.Reached++
		s.Suspended++
	case DeliveryCompleted:
		s.Reached++
		s.Completed++
	case DeliveryFailed, DeliveryMissed, DeliveryPreempted:
		if n.Reason != ReasonNotReached {
			s.Reached++
		}
		s.Failed++
	case DeliveryPending:
		s.Pending++
	}
	switch n.State {
	case EmergencyCancelledState:
		s.Cancelled++
		if n.ReceivedMS != nil {
			s.Reached++
		}
	case EmergencyOffline:
		s.Offline++
	case EmergencyUnconfirmed:
		s.Reached++
		s.Unconfirmed++
	}
	if n.SilencedBy != nil {
		s.Silenced++
	}
}

// UnconfirmedAfter is when a node that began an alert and has not
// reported its end counts as EmergencyUnconfirmed rather than sounding:
// no play of it starts after its expiry, so every play has ended by then
// and its planned length, and the node has had SilenceBound to say so.
func UnconfirmedAfter(e *Emergency) time.Time {
	return e.Expires.Add(time.Duration(e.PlannedMS)*time.Millisecond + SilenceBound)
}

// EmergencyReport is an emergency with the state of every targeted node.
type EmergencyReport struct {
	*Emergency
	Summary EmergencySummary `json:"summary"`
	// ByArea is the same count for the nodes of each area (the node's own,
	// a commune): which communes of a district's or the province's alert
	// have not heard it.
	ByArea map[string]EmergencySummary `json:"by_area"`
	Timing EmergencyTiming             `json:"timing"`
	// AreaNames names the areas of the nodes (GET /emergency/{id} only):
	// an officer who sees the emergency may not see its other communes in
	// GET /areas, and the board names them.
	AreaNames map[string]string `json:"area_names,omitempty"`
	// Resume (GET /emergency/{id} only) is the token its stream takes as
	// since= to begin from this report rather than with every node.
	Resume string          `json:"resume,omitempty"`
	Nodes  []EmergencyNode `json:"nodes"`
	// Generated is when the report was made.
	Generated time.Time `json:"generated"`
}

// EmergencyStore keeps emergencies.
type EmergencyStore interface {
	// CreateEmergency assigns e.ID and stores it.
	CreateEmergency(ctx context.Context, e *Emergency) error
	// UpdateEmergency changes emergency id with fn in one transaction and
	// returns the result; fn's error aborts it.
	UpdateEmergency(ctx context.Context, id string, fn func(e *Emergency) error) (*Emergency, error)
	// FindEmergencyByID returns the emergency or ENotFound.
	FindEmergencyByID(ctx context.Context, id string) (*Emergency, error)
	// FindEmergencies returns emergencies newest first, at most limit (0:
	// all).
	FindEmergencies(ctx context.Context, limit int) ([]*Emergency, error)
}

// EmergencyService sends emergencies and follows them node by node.
type EmergencyService interface {
	// SendEmergency checks req, stores the emergency and publishes one
	// signed alert per targeted area. Areas inside another target are
	// folded into it. Only the emergency itself is returned; its Areas say
	// what was published.
	SendEmergency(ctx context.Context, req EmergencyRequest) (*Emergency, error)
	// CancelEmergency stops emergency id on every node, by user by.
	CancelEmergency(ctx context.Context, id, by string) (*Emergency, error)
	// EmergencyReport returns emergency id with every node's state.
	EmergencyReport(ctx context.Context, id string) (*EmergencyReport, error)
	// FindEmergencies returns emergencies newest first.
	FindEmergencies(ctx context.Context, limit int) ([]*Emergency, error)
	// WatchEmergency signals (coalesced) whenever a node reports about
	// emergency id; stop ends the watch.
	WatchEmergency(id string) (changed <-chan struct{}, stop func())
}

// AlertMessenger publishes emergency commands. Implementations sign them.
type AlertMessenger interface {
	// SendAreaCommand publishes cmd on the area's cmd topic, valid for ttl.
	SendAreaCommand(ctx context.Context, area string, cmd protocol.Command, ttl time.Duration) error
	// SendNodeCommand publishes cmd on the node's cmd topic, valid for ttl.
	SendNodeCommand(ctx context.Context, node string, cmd protocol.Command, ttl time.Duration) error
}

// LiveMessenger publishes the messages of live calls (docs/live.md).
// Implementations sign them; audio frames may go at QoS 0.
type LiveMessenger interface {
	// SendLive publishes l on the area's live topic.
	SendLive(ctx context.Context, area string, l protocol.Live) error
}

// LiveNodeMessenger sends a live call's start or end again to one node
// that missed it (docs/live.md). Implementations sign them.
type LiveNodeMessenger interface {
	// SendNodeLive publishes l on the node's cmd topic.
	SendNodeLive(ctx context.Context, node string, l protocol.Live) error
}
