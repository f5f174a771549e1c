package loaxa

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"loaxa.vn/protocol"
)

// NodeStale is the state of a node that missed its heartbeats but has not
// been silent long enough to count as offline (a weak link, or a half-open
// one the broker has not noticed yet).
const NodeStale = "stale"

// NodeStates lists every node state, for filters and metrics.
var NodeStates = []string{NodeNever, NodeOnline, NodeStale, NodeOffline}

// Fault is a condition of a node that a technician has to look at, open
// since Since. Kind is one of the Alarm kinds of a board condition.
type Fault struct {
	Kind   string    `json:"kind"`
	Since  time.Time `json:"since"`
	Detail string    `json:"detail,omitempty"`
	// Facts are the measurements Detail is made of.
	Facts AlarmFacts `json:"facts,omitzero"`
}

// AlarmFacts are the measurements an alarm or a fault was raised on. Detail
// words them in English for logs and API clients; the console words them
// in its officer's language from these. Only the fields of the alarm's
// kind are set.
type AlarmFacts struct {
	ClockOffsetMS *int64 `json:"clock_offset_ms,omitempty"` // clock-offset
	// UncertaintyBoundMS and UncertainForS are the bound a clock-uncertain
	// node's clock stayed over, and for how long at least.
	UncertaintyBoundMS int64    `json:"uncertainty_bound_ms,omitempty"`
	UncertainForS      int64    `json:"uncertain_for_s,omitempty"`
	DiskFreeBytes      *int64   `json:"disk_free_bytes,omitempty"` // disk-low
	SpeakerOhms        *float64 `json:"speaker_ohms,omitempty"`    // speaker-line-short, when measured
	// RelayCommanded and RelayFeedback (relay-feedback): true is on.
	RelayCommanded *bool    `json:"relay_commanded,omitempty"`
	RelayFeedback  *bool    `json:"relay_feedback,omitempty"`
	BatteryVolts   *float64 `json:"battery_volts,omitempty"` // battery-low
	TemperatureC   *float64 `json:"temperature_c,omitempty"` // overheat
	RSSIDBm        *int     `json:"rssi_dbm,omitempty"`      // weak-signal
	Link           string   `json:"link,omitempty"`          // weak-signal: 4g, wifi…
	// Occurrence and Reason (failed-to-sound): the play that failed and
	// the protocol's failure reason.
	Occurrence  string    `json:"occurrence,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	LastContact time.Time `json:"last_contact,omitzero"` // offline
	// MissingContent and MissingForS (content-missing): how many contents
	// the node lacks, and for how long at least.
	MissingContent int   `json:"missing_content,omitempty"`
	MissingForS    int64 `json:"missing_for_s,omitempty"`
	// DamagedFiles (storage-damaged): how many cached files the board's
	// storage damaged in the last 24 hours.
	DamagedFiles int `json:"damaged_files,omitempty"`
	// DeafTimes (link-deaf): how many times in the last 24 hours the node
	// found the broker no longer delivering to it and reconnected.
	DeafTimes int `json:"deaf_times,omitempty"`
	// DesiredVersion, Attempts and Error (desired-undelivered): the
	// desired state the broker has not accepted, how often it was tried,
	// and the last attempt's error. Error (no-sound-device) is why the
	// node could not open its sound device; (storage-failed) why it could
	// not open its store on its storage.
	DesiredVersion uint64 `json:"desired_version,omitempty"`
	Attempts       int    `json:"attempts,omitempty"`
	Error          string `json:"error,omitempty"`
	// Areas (area-unheard): the areas of its chain the node does not hear.
	Areas []string `json:"areas,omitempty"`
	// Key and Trusted (key-untrusted): the key id the controller signs
	// with, and the ids the node trusts instead.
	Key     string   `json:"key,omitempty"`
	Trusted []string `json:"trusted,omitempty"`
	// Announcement, Title, FromArea, FromAreaName, Part and Content
	// (bulletin-unschedulable): the bulletin a scheduler pass could not
	// place and what of it is wrong (UnplayableError's fields), Error its
	// cause, and Nodes how many nodes it targets.
	Announcement string `json:"announcement,omitempty"`
	Title        string `json:"title,omitempty"`
	FromArea     string `json:"from_area,omitempty"`
	FromAreaName string `json:"from_area_name,omitempty"`
	Part         string `json:"part,omitempty"`
	Content      string `json:"content,omitempty"`
	Nodes        int    `json:"nodes,omitempty"`
}

// Clone returns a copy of f that shares no memory with it.
func (f AlarmFacts) Clone() AlarmFacts {
	c := f
	c.ClockOffsetMS = clonePtr(f.ClockOffsetMS)
	c.DiskFreeBytes = clonePtr(f.DiskFreeBytes)
	c.SpeakerOhms = clonePtr(f.SpeakerOhms)
	c.RelayCommanded, c.RelayFeedback = clonePtr(f.RelayCommanded), clonePtr(f.RelayFeedback)
	c.BatteryVolts, c.TemperatureC, c.RSSIDBm = clonePtr(f.BatteryVolts), clonePtr(f.TemperatureC), clonePtr(f.RSSIDBm)
	c.Areas = slices.Clone(f.Areas)
	c.Trusted = slices.Clone(f.Trusted)
	return c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	return new(*p)
}

// AlarmDetail words the facts of an alarm of kind in English.
func AlarmDetail(kind string, f AlarmFacts) string {
	onOff := func(on *bool) string {
		if on != nil && *on {
			return "on"
		}
		return "off"
	}
	switch kind {
	case AlarmClockOffset:
		if f.ClockOffsetMS != nil {
			return fmt.Sprintf("clock %d ms off", *f.ClockOffsetMS)
		}
	case AlarmClockUncertain:
		return fmt.Sprintf("corrected clock may be more than %d ms off for %v", f.UncertaintyBoundMS, time.Duration(f.UncertainForS)*time.Second)
	case AlarmContentMissing:
		return fmt.Sprintf("%s missing for %v", Count(f.MissingContent, "content", "contents"), time.Duration(f.MissingForS)*time.Second)
	case AlarmDiskLow:
		if f.DiskFreeBytes != nil {
			return fmt.Sprintf("%d MiB free", *f.DiskFreeBytes>>20)
		}
	case AlarmStorageDamaged:
		return Count(f.DamagedFiles, "file", "files") + " damaged on the board's storage in 24 h"
	case AlarmLinkDeaf:
		return fmt.Sprintf("the broker stopped delivering to the node while connected (%d× in 24 h); it reconnected", f.DeafTimes)
	case AlarmSpeakerOpen:
		return "no load on the speaker line"
	case AlarmSpeakerShort:
		if f.SpeakerOhms != nil {
			return fmt.Sprintf("speaker line shorted (%.1f Ω)", *f.SpeakerOhms)
		}
		return "speaker line shorted"
	case AlarmAmplifier:
		return "amplifier reports a fault"
	case AlarmRelay:
		return fmt.Sprintf("relay commanded %s, feedback %s", onOff(f.RelayCommanded), onOff(f.RelayFeedback))
	case AlarmMainsOff:
		return "running on the battery"
	case AlarmBatteryLow:
		if f.BatteryVolts != nil {
			return fmt.Sprintf("battery %.2f V", *f.BatteryVolts)
		}
	case AlarmOverheat:
		if f.TemperatureC != nil {
			return fmt.Sprintf("enclosure %.1f °C", *f.TemperatureC)
		}
	case AlarmDoorOpen:
		return "enclosure door open"
	case AlarmWeakSignal:
		if f.RSSIDBm != nil {
			return fmt.Sprintf("signal %d dBm on %s", *f.RSSIDBm, f.Link)
		}
	case AlarmFailedToSound:
		return fmt.Sprintf("occurrence %s failed: %s", f.Occurrence, f.Reason)
	case AlarmOffline:
		return fmt.Sprintf("no message since %s", f.LastContact.UTC().Format(time.RFC3339))
	case AlarmNoSoundDevice:
		return "no sound device: " + f.Error
	case AlarmStorageFailed:
		return "store in memory: " + f.Error
	case AlarmAreaUnheard:
		return "does not hear the commands and live broadcasts of area " + strings.Join(f.Areas, ", ")
	case AlarmKeyUntrusted:
		return fmt.Sprintf("trusts only signing key %s, not %s, which signs now: it refuses every schedule, command and alert; enrol it again", strings.Join(f.Trusted, ", "), f.Key)
	case AlarmDesiredUndelivered:
		return fmt.Sprintf("desired state %d not accepted by the broker after %s: %s", f.DesiredVersion, Count(f.Attempts, "attempt", "attempts"), f.Error)
	case AlarmBulletinUnschedulable:
		e := f.Unplayable()
		return fmt.Sprintf("%s; it is left out of the schedules of the %s it targets, whose other bulletins still reach them. %s", e.Cause(), Count(f.Nodes, "cluster", "clusters"), e.Remedy())
	}
	return ""
}

// Alarm kinds. The board conditions are derived from the node's state with
// the thresholds of health.Config; docs/fleet-health.md lists them.
const (
	AlarmSpeakerOpen  = "speaker-line-open"  // critical: the line is cut
	AlarmSpeakerShort = "speaker-line-short" // critical
	AlarmAmplifier    = "amplifier-fault"    // critical: the amplifier's fault output
	AlarmRelay        = "relay-feedback"     // critical: the relay did not follow its command
	AlarmMainsOff     = "mains-off"          // warning: running on the battery
	AlarmBatteryLow   = "battery-low"        // critical: about to drop the amplifier
	AlarmOverheat     = "overheat"           // warning
	AlarmDoorOpen     = "door-open"          // warning: tamper switch
	AlarmWeakSignal   = "weak-signal"        // warning
	AlarmDiskLow      = "disk-low"           // warning
	// AlarmStorageDamaged (warning): the node found cached files damaged
	// on its storage (verified when stored, changed since), or its store
	// damaged and started a new one, in the last 24 hours: its SD card is
	// failing. The node fetches each again, so it
	// still plays; the card is what needs changing.
	AlarmStorageDamaged = "storage-damaged"
	// AlarmLinkDeaf (warning): in the last 24 hours the node found the
	// broker no longer delivering to it while connected (its own state's
	// echo did not come back) and reconnected. It hears again, but what
	// was sent to it meanwhile may have been missed, and the cause is the
	// broker's (a bug, an overload, a changed ACL).
	AlarmLinkDeaf = "link-deaf"
	// AlarmContentMissing (warning): the node has reported content it
	// needs (to play, or to keep for emergencies) missing for
	// health.Config.ContentMissingFor.
	AlarmContentMissing = "content-missing"
	AlarmClockOffset    = "clock-offset" // warning: the board's clock is far off
	// AlarmClockUncertain (warning): the node's corrected clock may be off
	// the controller's by more than health.Config.ClockUncertaintyBound,
	// so its synchronised starts may be audibly out of step with its
	// neighbours'.
	AlarmClockUncertain = "clock-uncertain"
	AlarmOffline        = "offline"         // critical: silent longer than the threshold
	AlarmFailedToSound  = "failed-to-sound" // critical: a play failed for a hardware or content reason
	// AlarmNoSoundDevice (critical): the node's agent could not open its
	// sound device when it started (a USB sound card unplugged or dead, a
	// loose connector). It runs on without it, so its link and the other
	// alarms stay up, but the cluster cannot sound; it restarts by itself
	// once the device can be opened.
	AlarmNoSoundDevice = "no-sound-device"
	// AlarmStorageFailed (critical): the node's agent could not open its
	// store on the board's storage when it started (the SD card gone
	// read-only, full, or failing with I/O errors). It runs on a store in
	// memory: connected, playing what the card holds and downloading what
	// is new into memory, but it forgets its state and those downloads at
	// its next restart. The card needs changing.
	AlarmStorageFailed = "storage-failed"
	// AlarmAreaUnheard (critical): the node has not heard the cmd or live
	// topic of some areas of its chain (its subscription refused or
	// failed: a broker ACL not updated after the node moved) for
	// health.Config.AreaUnheardFor. It misses their live broadcasts and
	// has their alerts only from the controller's resends to it alone,
	// late. The node keeps subscribing; the broker's ACL needs fixing.
	AlarmAreaUnheard = "area-unheard"
	// AlarmKeyUntrusted (critical): the node does not trust the key the
	// controller signs with (its state's keys lack it): it was offline
	// through a key rotation that was forced, or its store was damaged
	// and it fell back to its credentials' key. It is online and looks
	// well, but refuses every desired state, command and alert. The
	// retired key is gone, so only a new enrolment (a code, or rotated
	// credentials) brings it back.
	AlarmKeyUntrusted = "key-untrusted"
	// AlarmDesiredUndelivered (warning): the broker has not accepted the
	// node's newest desired state for a while; the scheduler keeps
	// retrying it.
	AlarmDesiredUndelivered = "desired-undelivered"
	// AlarmBulletinUnschedulable (critical): an active bulletin cannot be
	// scheduled (UnplayableError: its audio or a chime missing from the
	// content library, or a rule this version refuses), so the clusters
	// it targets do not get it. One per bulletin, not per node (Node is
	// "", Area the sender's, Facts.Announcement the bulletin): a province
	// bulletin would open one per cluster of the province. The scheduler
	// opens it when a pass meets the bulletin and ends it after a pass
	// that no longer does (cancelled, content restored).
	AlarmBulletinUnschedulable = "bulletin-unschedulable"
)

// AlarmKinds lists every alarm kind (TestAlarmKindsListsEveryKind keeps
// it in step with the constants above).
var AlarmKinds = []string{
	AlarmSpeakerOpen, AlarmSpeakerShort, AlarmAmplifier, AlarmRelay, AlarmMainsOff, AlarmBatteryLow,
	AlarmOverheat, AlarmDoorOpen, AlarmWeakSignal, AlarmDiskLow, AlarmStorageDamaged, AlarmLinkDeaf,
	AlarmContentMissing, AlarmClockOffset, AlarmClockUncertain, AlarmOffline, AlarmFailedToSound,
	AlarmNoSoundDevice, AlarmStorageFailed, AlarmAreaUnheard, AlarmKeyUntrusted, AlarmDesiredUndelivered, AlarmBulletinUnschedulable,
}

// SilencingFaults are the alarm kinds with which a cluster cannot sound
// at all, whatever it reports playing: no sound device, the speaker line
// cut or shorted, the amplifier's fault output on. Others (a relay that
// disagrees, a low battery, a weak signal) may still let it sound. The
// console's board keeps the same list (SILENCING). AlarmKeyUntrusted is
// not one: such a node refuses the alert and never plays it, so no play
// of it is made into a fault; the console names it apart (DEAF).
var SilencingFaults = []string{AlarmNoSoundDevice, AlarmSpeakerOpen, AlarmSpeakerShort, AlarmAmplifier}

// Alarm severities.
const (
	SeverityCritical = "critical"
	SeverityWarning  = "warning"
)

// AlarmSeverity returns the severity of an alarm kind.
func AlarmSeverity(kind string) string {
	switch kind {
	case AlarmSpeakerOpen, AlarmSpeakerShort, AlarmAmplifier, AlarmRelay, AlarmBatteryLow, AlarmOffline, AlarmFailedToSound, AlarmNoSoundDevice, AlarmStorageFailed, AlarmAreaUnheard, AlarmKeyUntrusted, AlarmBulletinUnschedulable:
		return SeverityCritical
	}
	return SeverityWarning
}

// Alarm is a condition that needs a person: opened when it starts, ended
// when it clears (by itself or because the fault was fixed). Acknowledging
// records who has seen it; it stays open until the condition clears.
type Alarm struct {
	ID       string    `json:"id"`
	Kind     string    `json:"kind"`
	Severity string    `json:"severity"`
	Node     string    `json:"node"`
	Area     string    `json:"area"`
	Detail   string    `json:"detail,omitempty"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end,omitzero"`
	AckBy    string    `json:"ack_by,omitempty"`
	AckAt    time.Time `json:"ack_at,omitzero"`
	// Facts are the measurements Detail is made of.
	Facts AlarmFacts `json:"facts,omitzero"`
}

// Open reports whether the alarm's condition still holds.
func (a *Alarm) Open() bool { return a.End.IsZero() }

// AlarmFilter selects alarms. Zero fields do not filter.
type AlarmFilter struct {
	Within string // area subtree
	Node   string
	Kind   string
	// Kinds selects the alarms of any of these kinds (and of Kind, if
	// set): the emergency board reads those that keep a cluster silent.
	Kinds []string
	// Open: "open" only open alarms, "closed" only ended ones.
	Open string
	// From and To bound Start: From ≤ Start < To.
	From, To time.Time
	Limit    int
}

// AlarmService stores alarms.
type AlarmService interface {
	// CreateAlarm stores a new alarm, assigning its ID.
	CreateAlarm(ctx context.Context, a *Alarm) error
	// CreateAlarms stores new alarms in one write, assigning their IDs:
	// all of them, or none if one cannot be.
	CreateAlarms(ctx context.Context, as []*Alarm) error
	// EndAlarm sets the alarm's End; an ended alarm is left alone.
	EndAlarm(ctx context.Context, id string, end time.Time) (*Alarm, error)
	// AckAlarm records who acknowledged the alarm and when, unless it
	// was acknowledged already (the first is kept, and the alarm is
	// returned as it is); ENotFound if there is none.
	AckAlarm(ctx context.Context, id, by string, at time.Time) (*Alarm, error)
	// UpdateAlarmFacts sets an open alarm's Detail and Facts, for what
	// it counts that changed while it stays open (the clusters a
	// bulletin-unschedulable alarm's bulletin misses); an ended alarm is
	// left alone.
	UpdateAlarmFacts(ctx context.Context, id, detail string, facts AlarmFacts) (*Alarm, error)
	// MoveAlarm files an open alarm under area, its node's new one (the
	// node moved, PATCH /nodes/{id}), so that the new area's technicians
	// see it; an ended alarm stays where it happened.
	MoveAlarm(ctx context.Context, id, area string) (*Alarm, error)
	// FindAlarmByID returns the alarm or ENotFound.
	FindAlarmByID(ctx context.Context, id string) (*Alarm, error)
	// FindAlarms returns alarms newest first, at most Limit (the store
	// may bound it lower): a listing, not a count.
	FindAlarms(ctx context.Context, f AlarmFilter) ([]*Alarm, error)
	// FindAlarmsOpenDuring returns every alarm of one of kinds (any kind
	// if none) on a node within area's subtree (every area if "") that
	// was open at some time in [from, to), oldest first, however many
	// there are: what a report over that range reads plays against.
	FindAlarmsOpenDuring(ctx context.Context, area string, kinds []string, from, to time.Time) ([]*Alarm, error)
	// FindOpenAlarms returns every open alarm, oldest first, however many
	// there are: what the health model takes back at start.
	FindOpenAlarms(ctx context.Context) ([]*Alarm, error)
}

// AreaHealth sums up the nodes of an area's subtree.
type AreaHealth struct {
	Area string `json:"area"`
	// Nodes counts every node; the states count by NodeStatus.State.
	Nodes   int `json:"nodes"`
	Online  int `json:"online"`
	Stale   int `json:"stale"`
	Offline int `json:"offline"`
	// Never counts the enrolled nodes that never connected.
	Never int `json:"never"`
	// AwaitingEnrolment counts the nodes waiting for their enrolment
	// code: clusters not put up yet, no fault, not in Never.
	AwaitingEnrolment int `json:"awaiting_enrolment,omitempty"`
	// Faulty counts nodes with at least one open fault; Healthy online
	// nodes with none.
	Faulty  int `json:"faulty"`
	Healthy int `json:"healthy"`
	// Alarms counts open alarms by severity: those of the subtree's
	// nodes, and the bulletin-unschedulable alarms of the bulletins sent
	// from the subtree (not of those sent from above to it).
	Critical int `json:"critical_alarms"`
	Warning  int `json:"warning_alarms"`
	// Score is 100 × Healthy / (Nodes − AwaitingEnrolment), rounded down
	// (100 for none): the share of the clusters put up that would sound
	// now.
	Score int `json:"score"`
}

// NodeSettings are what a technician sets remotely on a node; the
// scheduler puts them into the node's desired state. Nil fields use the
// controller's defaults.
type NodeSettings struct {
	// Volume is the default level 0–15 for non-emergency plays.
	Volume *int `json:"volume,omitempty"`
	// Muted stops non-emergency plays; emergencies are never muted.
	Muted bool `json:"muted,omitempty"`
	// AmplifierPolicy is protocol.AmpAuto or protocol.AmpAlwaysOn.
	AmplifierPolicy string `json:"amplifier_policy,omitempty"`
}

// SelfTest is one run of a self-test on a set of nodes, and its report.
type SelfTest struct {
	ID   string `json:"id"`
	Kind string `json:"kind"` // protocol.TestSilent or protocol.TestAudible
	// Area is what was asked for ("" for a list of nodes); Nodes every
	// node tested.
	Area        string    `json:"area,omitempty"`
	Nodes       []string  `json:"nodes"`
	RequestedBy string    `json:"requested_by"` // a username, or "schedule"
	Started     time.Time `json:"started"`
	// Deadline is when nodes that have not answered count as no-answer.
	Deadline time.Time `json:"deadline"`
	// Results holds one result per node that answered.
	Results map[string]*protocol.TestResult `json:"results"`
}

// Test report statuses of one node.
const (
	TestPass     = "pass"
	TestFail     = "fail"
	TestNoAnswer = "no-answer" // past the deadline without a result
	TestPending  = "pending"   // before the deadline without a result
)

// SelfTestService stores self-test runs.
type SelfTestService interface {
	// CreateSelfTest stores a new run, assigning its ID.
	CreateSelfTest(ctx context.Context, t *SelfTest) error
	// RecordTestResult adds node's result to run id; a result for a node
	// the run does not test, or an unknown run, is ENotFound.
	RecordTestResult(ctx context.Context, id, node string, r *protocol.TestResult) error
	// FindSelfTestByID returns the run or ENotFound.
	FindSelfTestByID(ctx context.Context, id string) (*SelfTest, error)
	// FindSelfTests returns the latest runs, newest first.
	FindSelfTests(ctx context.Context, limit int) ([]*SelfTest, error)
}

// HealthService is the live health model of the fleet (controller/health).
type HealthService interface {
	// AreaHealth sums up the nodes of area's subtree ("" for all).
	AreaHealth(ctx context.Context, area string) (*AreaHealth, error)
	// AckAlarm acknowledges an alarm as user by; one acknowledged
	// already keeps its first acknowledgement.
	AckAlarm(ctx context.Context, id, by string) (*Alarm, error)
	// SubscribeAlarms returns alarm changes (opened, ended, acknowledged)
	// as they happen until cancel is called: those whose area in accepts,
	// or of every area if in is nil. in is called for every change while
	// the health model is held, so it must be quick and never block. A
	// slow reader loses changes rather than holding the controller up:
	// once it has lost one, the channel closes after the changes it holds,
	// and the reader must read the alarms again (and subscribe again to
	// follow them).
	SubscribeAlarms(in func(area string) bool) (changes <-chan *Alarm, cancel func())
	// StartSelfTest sends a self-test to nodes and returns the run; its
	// report fills in as results come.
	StartSelfTest(ctx context.Context, kind, area string, nodes []string, by string) (*SelfTest, error)
	// Status reports the monitor's own health for GET /api/v1/health.
	Status() MonitorStatus
}

// MonitorAwaitingEnrolment is the key under which MonitorStatus.Nodes
// counts the nodes waiting for their enrolment code (no EnrolledAt):
// poles not put up yet, not counted under NodeNever.
const MonitorAwaitingEnrolment = "awaiting_enrolment"

// MonitorStatus is the health model's view of itself.
type MonitorStatus struct {
	// LastSweep is when timeouts were last checked; a sweep lagging far
	// behind its interval means the controller is overloaded.
	LastSweep time.Time `json:"last_sweep,omitzero"`
	// Nodes counts the nodes by state, and those waiting for their
	// enrolment code under MonitorAwaitingEnrolment.
	Nodes      map[string]int `json:"nodes"`
	OpenAlarms int            `json:"open_alarms"`
}

// SelfTestRow is one node's line of a self-test report.
type SelfTestRow struct {
	Node     string               `json:"node"`
	Status   string               `json:"status"` // TestPass, TestFail, TestNoAnswer, TestPending
	Problems []string             `json:"problems,omitempty"`
	Line     protocol.SpeakerLine `json:"speaker_line,omitempty"`
	Ohms     *float64             `json:"speaker_ohms,omitempty"`
}

// SelfTestReport is a self-test run with a line per node and the counts.
type SelfTestReport struct {
	*SelfTest
	Complete bool          `json:"complete"` // every node answered, or the deadline passed
	Pass     int           `json:"pass"`
	Fail     int           `json:"fail"`
	NoAnswer int           `json:"no_answer"`
	Pending  int           `json:"pending"`
	Rows     []SelfTestRow `json:"report"`
}

// Report is the run's report at now: failures first, then no answer,
// pending and passes, each by node id.
func (t *SelfTest) Report(now time.Time) *SelfTestReport {
	r := &SelfTestReport{SelfTest: t}
	late := !now.Before(t.Deadline)
	for _, n := range t.Nodes {
		row := SelfTestRow{Node: n}
		switch res := t.Results[n]; {
		case res == nil && late:
			row.Status = TestNoAnswer
			r.NoAnswer++
		case res == nil:
			row.Status = TestPending
			r.Pending++
		default:
			row.Problems, row.Line, row.Ohms = res.Problems, res.Line, res.Ohms
			if res.Pass {
				row.Status = TestPass
				r.Pass++
			} else {
				row.Status = TestFail
				r.Fail++
			}
		}
		r.Rows = append(r.Rows, row)
	}
	order := map[string]int{TestFail: 0, TestNoAnswer: 1, TestPending: 2, TestPass: 3}
	slices.SortStableFunc(r.Rows, func(a, b SelfTestRow) int { return order[a.Status] - order[b.Status] })
	r.Complete = r.Pending == 0
	return r
}
