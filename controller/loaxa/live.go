package loaxa

import (
	"context"
	"slices"
	"strings"
	"time"

	"loaxa.vn/protocol"
)

// LiveCallIDPrefix starts every live call id ("live-…"). Nodes report a
// call's play under the call id itself, so a live call is its own
// announcement and its only occurrence in the deliveries.
const LiveCallIDPrefix = "live-"

// IsLiveCallID reports whether id names a live call.
func IsLiveCallID(id string) bool { return strings.HasPrefix(id, LiveCallIDPrefix) }

// Why a live call ended (LiveCall.EndReason).
const (
	LiveEndSpeakerStopped = "speaker stopped"     // the client sent its end or closed normally
	LiveEndDisconnected   = "client disconnected" // the WebSocket went without a close
	LiveEndCut            = "cut"                 // an officer cut it (LiveCall.CutBy)
	LiveEndShutdown       = "controller shutdown" // the controller stopped during the call
	LiveEndRestarted      = "controller restarted"
	LiveEndLongest        = "longest call reached" // protocol.MaxLiveDuration
	LiveEndBroker         = "broker unavailable"   // the start, or a second of frames, could not be published
	LiveEndBadAudio       = "bad audio"            // the client sent what is not 16-bit PCM
	LiveEndNotStarted     = "not started"          // the call's records could not be stored
	LiveEndSignedOut      = "signed out"           // the officer's session ended (signed out, revoked, expired) or no longer allows the call
)

// LiveCall (cuộc gọi phát trực tiếp) is the record of one live broadcast:
// who spoke to which areas, when, how it ended and what was sent. Its
// per-node fate is in the deliveries of announcement ID.
type LiveCall struct {
	ID        string            `json:"id"`
	CreatedBy string            `json:"created_by"`
	Areas     []string          `json:"areas"`
	Priority  protocol.Priority `json:"priority"`
	// Emergency marks an emergency live call (priority emergency).
	Emergency bool   `json:"emergency"`
	Title     string `json:"title,omitempty"`
	// Drill marks an exercise (diễn tập): every message to the nodes,
	// their events, the deliveries, the log lines and the audit entries
	// say so, and the title starts with DrillMark.
	Drill bool `json:"drill"`
	// Volume, 1–15, is the level nodes play the call at whatever their
	// own volume (e.g. low for a drill); 0 means the node's own.
	Volume int `json:"volume,omitempty"`
	// Nodes is how many nodes the areas held when the call began: the
	// enrolled ones, those it was for.
	Nodes int `json:"nodes"`
	// AwaitingEnrolment is how many more waited for their enrolment code
	// (clusters not put up yet): not in the call, but one that redeems its
	// code while the call is on air joins it.
	AwaitingEnrolment int       `json:"awaiting_enrolment,omitempty"`
	Started           time.Time `json:"started"`
	// Ended is zero while the call is on air.
	Ended     time.Time `json:"ended,omitzero"`
	EndReason string    `json:"end_reason,omitempty"`
	// EndDetail says more about an end that went wrong.
	EndDetail string `json:"end_detail,omitempty"`
	CutBy     string `json:"cut_by,omitempty"`
	// FramesSent counts the frames published to the area that got most;
	// FramesDropped those not published to the area that missed most
	// (each area's frames go out on their own); Bytes the PCM the client
	// sent.
	FramesSent    uint64 `json:"frames_sent"`
	FramesDropped uint64 `json:"frames_dropped,omitempty"`
	Bytes         uint64 `json:"bytes"`
}

// DrillMark starts the title of every drill call, in the language the
// officers and the nodes' status read.
const DrillMark = "[DIỄN TẬP] "

// Active reports whether the call is on air.
func (c *LiveCall) Active() bool { return c.Ended.IsZero() }

// LiveCallFilter selects live calls. Zero fields do not filter.
type LiveCallFilter struct {
	Active bool // only calls on air
	// Since keeps the calls started at or after it; zero keeps all. The
	// store reads no older record.
	Since time.Time
	Limit int // 0: all
}

// LiveCallStore keeps live call records.
type LiveCallStore interface {
	// CreateLiveCall stores c, whose ID is set; EConflict if it exists.
	CreateLiveCall(ctx context.Context, c *LiveCall) error
	// UpdateLiveCall changes call id with fn in one transaction and
	// returns the result; fn's error aborts it.
	UpdateLiveCall(ctx context.Context, id string, fn func(c *LiveCall) error) (*LiveCall, error)
	// FindLiveCallByID returns the call or ENotFound.
	FindLiveCallByID(ctx context.Context, id string) (*LiveCall, error)
	// FindLiveCalls returns calls newest first (by start). The calls on
	// air are found without reading the others.
	FindLiveCalls(ctx context.Context, f LiveCallFilter) ([]*LiveCall, error)
}

// LiveNode is one node's part in a live call: its delivery.
type LiveNode struct {
	Node string `json:"node"`
	Area string `json:"area"`
	// State is the delivery state, or "offline" for a pending node that
	// is offline.
	State        string `json:"state"`
	Reason       string `json:"reason,omitempty"`
	LateMS       int64  `json:"late_ms,omitempty"`
	PlayedMS     int64  `json:"played_ms,omitempty"`
	FramesPlayed int64  `json:"frames_played"`
	FramesLost   int64  `json:"frames_lost"`
	FramesLate   int64  `json:"frames_late"`
	// HeldBy is the alert (an emergency's id, or a live call's) on air on
	// the node that held the call back when it came: the node waits for it
	// to end (state received), began the call after it (LateMS says how
	// late) or missed the call.
	HeldBy string `json:"held_by,omitempty"`
	Online bool   `json:"online"`
	// Drill repeats the call's mark, as the delivery stores it.
	Drill bool `json:"drill,omitempty"`
}

// LiveCallSummary counts the nodes of a call: Reached reported it
// (received or further), Sounding play it now, Suspended were cut off and
// are silent until they play it again, Completed played it to its end (or
// cut), Failed ended otherwise (failed, preempted, missed), Offline pending
// and offline, Pending pending and online. FramesLost sums the frames nodes
// played as silence. Held counts the nodes that wait, silent, for an alert
// on air to end before they play the call; HeldBy says which alerts held
// nodes back, and what became of those nodes.
type LiveCallSummary struct {
	Targeted   int        `json:"targeted"`
	Reached    int        `json:"reached"`
	Sounding   int        `json:"sounding"`
	Suspended  int        `json:"suspended"`
	Completed  int        `json:"completed"`
	Failed     int        `json:"failed"`
	Offline    int        `json:"offline"`
	Pending    int        `json:"pending"`
	FramesLost int64      `json:"frames_lost"`
	Held       int        `json:"held,omitempty"`
	HeldBy     []LiveHold `json:"held_by,omitempty"`
}

// LiveHold is an alert on air on some of a call's nodes when the call
// came, which held the call back there: Waiting nodes wait for it to end
// (received), Joined began the call after it, Missed never did (the alert
// outlasted the call's start window). Title and Drill are the alert's (an
// emergency's, or the other live call's), so that officers know it by
// what it says, not by its id; none if it is not found.
type LiveHold struct {
	Alert   string `json:"alert"`
	Title   string `json:"title,omitempty"`
	Drill   bool   `json:"drill,omitempty"`
	Waiting int    `json:"waiting"`
	Joined  int    `json:"joined,omitempty"`
	Missed  int    `json:"missed,omitempty"`
}

// Add counts one node.
func (s *LiveCallSummary) Add(n LiveNode) {
	s.Targeted++
	s.FramesLost += n.FramesLost
	if n.HeldBy != "" {
		i, found := slices.BinarySearchFunc(s.HeldBy, n.HeldBy, func(h LiveHold, alert string) int { return strings.Compare(h.Alert, alert) })
		if !found {
			s.HeldBy = slices.Insert(s.HeldBy, i, LiveHold{Alert: n.HeldBy})
		}
		switch h := &s.HeldBy[i]; DeliveryState(n.State) {
		case DeliveryReceived:
			h.Waiting++
			s.Held++
		case DeliveryMissed:
			h.Missed++
		default:
			h.Joined++
		}
	}
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
	case DeliveryFailed, DeliveryPreempted, DeliveryMissed:
		s.Reached++
		s.Failed++
	case DeliveryPending:
		s.Pending++
	}
	if n.State == EmergencyOffline {
		s.Offline++
	}
}

// LiveCallReport is a call with every targeted node's delivery.
type LiveCallReport struct {
	*LiveCall
	Summary   LiveCallSummary `json:"summary"`
	Nodes     []LiveNode      `json:"nodes"`
	Generated time.Time       `json:"generated"`
}

// LiveCallEnd is how a call ended, for LiveCallService.EndCall.
type LiveCallEnd struct {
	Reason        string
	Detail        string
	FramesSent    uint64
	FramesDropped uint64
	Bytes         uint64
}

// LiveCallService keeps the records of live calls and lets an officer cut
// one. The HTTP layer runs the call itself (its WebSocket and frames).
type LiveCallService interface {
	// BeginCall stores c (ID, CreatedBy, Areas, Priority, Title set) as on
	// air, with a pending delivery for every node of its areas. The
	// returned channel is closed when an officer cuts the call: the caller
	// then ends it and calls EndCall with LiveEndCut.
	BeginCall(ctx context.Context, c *LiveCall) (cut <-chan struct{}, err error)
	// EndCall records the end of call id and returns the record.
	EndCall(ctx context.Context, id string, end LiveCallEnd) (*LiveCall, error)
	// CutCall asks the call's runner to end call id now, on behalf of
	// user by, and returns the record once it ended (or once ctx ends).
	// EConflict if the call is over.
	CutCall(ctx context.Context, id, by string) (*LiveCall, error)
	// LiveCallReport returns call id with every node's delivery.
	LiveCallReport(ctx context.Context, id string) (*LiveCallReport, error)
	// LiveCallSummaries returns the summary of each of calls ids (as
	// LiveCallReport has it), by id, without the nodes: for a list. A
	// console asks every 3 s: a call on air is answered without reading
	// its deliveries again unless an event of the call was stored since.
	LiveCallSummaries(ctx context.Context, ids []string) (map[string]LiveCallSummary, error)
	// LiveCallHolds returns the HeldBy of call id's summary: which alerts
	// hold its nodes back, and what became of those nodes. A call on air
	// asks every second; it is answered from memory unless a node of the
	// call reported a hold, or a node held reported anything, since.
	LiveCallHolds(ctx context.Context, id string) ([]LiveHold, error)
	// LiveCallPreempted returns how many nodes of call id, on air, reported
	// it preempted: an emergency alert (or another higher level) cut it
	// off there, and it is not resumed; and how many nodes the call is for
	// (those of its areas when it began, and those that joined since), so
	// that a speaker cut off on every one is told nobody hears the call. A
	// call on air asks every second; it is answered from memory.
	LiveCallPreempted(ctx context.Context, id string) (preempted, nodes int, err error)
	// FindLiveCallByID returns the call or ENotFound.
	FindLiveCallByID(ctx context.Context, id string) (*LiveCall, error)
	// FindLiveCalls returns calls newest first (by start). The calls on
	// air are found without reading the others.
	FindLiveCalls(ctx context.Context, f LiveCallFilter) ([]*LiveCall, error)
}
