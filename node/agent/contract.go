package agent

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

// Output plays node-format PCM (signed 16-bit little-endian, mono,
// nodeaudio.SampleRate) on a sound device. node/audio has the
// implementations: oto (the real device) and none (paced silence).
type Output interface {
	// Play plays pcm until EOF or until ctx is cancelled, and returns once
	// the sound has been played out (or stopped). It returns ctx.Err() when
	// cancelled and a wrapped error when the device fails.
	Play(ctx context.Context, pcm io.Reader) error
	// Close releases the device.
	Close() error
}

// CheckedOutput is an Output that can tell, without playing, that its
// device failed for good: Err returns an error wrapping
// audio.ErrDeviceLost then, nil while the device works. The agent looks
// at it every StatePoll and restarts (Config.Restart) if it failed while
// nothing played. Outputs may implement it; none must.
type CheckedOutput interface {
	Output
	Err() error
}

// MissingOutput is an Output standing in for a sound device the node does
// not have (audio.Missing): Missing returns why. The agent then begins no
// play: what is due is suspended with reason audio-device and waits, until
// its deadline, for the agent to restart with the device (node main checks
// for it); its state says the device is missing (State.NoSoundDevice).
// Outputs may implement it; a nil Missing means the device is there.
type MissingOutput interface {
	Output
	Missing() error
}

// Board is the speaker box hardware the agent drives: the amplifier relay
// and the sensors. firmware-sim simulates it; board.None is for machines
// without one.
type Board interface {
	// SetAmplifier switches the amplifier relay; the agent switches it on
	// before playing and off after.
	SetAmplifier(on bool) error
	// Snapshot reads the hardware state for the node's state message.
	Snapshot() protocol.Board
}

// BoardWatcher is a Board that says when its snapshot changes (a fault,
// mains lost, the door opened), so the agent publishes its state at once
// rather than at the next poll. Boards may implement it; none must.
type BoardWatcher interface {
	Board
	// Changed signals (a buffered channel, coalesced) after a change.
	Changed() <-chan struct{}
}

// Config is everything an agent needs. Credentials, DataDir, Store, Output
// and Board are required; the rest have defaults. The agent does not close
// Store or Output: whoever opened them does, after Run returns.
type Config struct {
	Credentials *protocol.Credentials
	// DataDir holds the content cache (DataDir/content).
	DataDir string
	Store   Store
	Output  Output
	Board   Board
	// Clock is the system clock (default clock.Real); the agent corrects it
	// by the offset it measures against the controller. The content
	// cache's waits (spread, backoff, stall) run on it uncorrected.
	Clock      clock.Clock
	Logger     *slog.Logger
	HTTPClient *http.Client
	// Version is the agent software version reported in state.
	Version string

	// LateGraceMS is how late an occurrence may still start when the
	// desired state does not say (0: DefaultLateGrace, 10 minutes).
	LateGraceMS int64
	// AmplifierWarmup is how long before a play is due the agent switches
	// the amplifier on and opens the content, so that a real amplifier has
	// powered up before the first word and the start only has to begin the
	// audio (0: DefaultAmplifierWarmup, 500 ms).
	AmplifierWarmup time.Duration
	// AlertPrepare is how long before its start an emergency alert is
	// prepared at the latest: one that arrives within it is prepared as it
	// arrives (0: DefaultAlertPrepare, 10 s; negative: like any play,
	// AmplifierWarmup before its start).
	AlertPrepare time.Duration
	// ChimeAgainAfter: an emergency that started with its opening chime
	// before its message could play (Decide, ChimeFirst) plays the chime
	// again before the message if the message came this long or more after
	// the chime ended, so the words follow a call to attention (0:
	// DefaultChimeAgainAfter, 5 s).
	ChimeAgainAfter time.Duration
	// InStepWait: such a message that came after the chime's end, of an
	// alert that repeats it, waits in silence up to this long to begin in
	// step with a repeat of the area's clusters that had it in time (their
	// shared start, the chime and each repeat's length tell when), so that
	// neighbouring clusters are not heard as echoes of each other; it
	// plays every repeat from there (0: DefaultInStepWait, 30 s; negative:
	// it plays as soon as it can).
	InStepWait time.Duration
	// TimeSyncInterval is how often the clock offset to the controller is
	// measured besides at every connect (0: 5 minutes).
	TimeSyncInterval time.Duration
	// AckTimeout is how long sent events may wait for an acknowledgement
	// before they are sent again (0: 30 seconds).
	AckTimeout time.Duration
	// StateDebounce gathers state changes into one publish (0: 1 second).
	StateDebounce time.Duration
	// StatePoll is how often the board is read for changes to publish
	// (0: 30 seconds).
	StatePoll time.Duration
	// Heartbeat is how often the state is published even when nothing
	// changed, so the controller can tell a half-open link from a quiet
	// node (0: DefaultHeartbeat).
	Heartbeat time.Duration
	// Reboot, if set, restarts the agent or the board when the controller
	// sends CmdReboot; it is called after the agent reported the command
	// and is expected to end the process (or cancel Run) soon. nil refuses
	// the command with a warning.
	Reboot func()
	// Restart, if set, ends the agent (cancels Run) so that its service
	// manager starts it again, when the output failed for good: its error
	// wraps audio.ErrDeviceLost, and the sound device plays again only in
	// a new process. It is called with that error once the play it cut
	// off is stored as suspended, with reason audio-device, to play again
	// from the beginning after the restart (before its deadline); the
	// report goes out from the outbox then. nil: the play fails, and so
	// does every later one, until the agent is restarted by hand.
	Restart func(cause error)
	// MQTTKeepAlive and MQTTMaxReconnect tune the broker link (0: 30s, 2m).
	MQTTKeepAlive    time.Duration
	MQTTMaxReconnect time.Duration
	// MQTTEchoTimeout is how long a state the broker accepted may go
	// without coming back before the link takes itself for deaf and
	// reconnects (0: 60 s; negative: no check). See node/mqtt.
	MQTTEchoTimeout time.Duration
	// ContentBackoffMin and ContentBackoffMax bound the full-jitter
	// backoff between download attempts (0: 2s, 5m); content needed
	// within ContentBackoffMax waits at most 15 s (node/content's
	// BackoffUrgent).
	ContentBackoffMin time.Duration
	ContentBackoffMax time.Duration
	// ContentStallTimeout ends a download, or a play waiting for content,
	// that receives nothing for this long (0: 60 s; see node/content).
	ContentStallTimeout time.Duration
	// ContentSpread is the longest random wait before the first download
	// of new content and after a reconnect, so a fleet does not fetch in
	// step (0: DefaultContentSpread; negative: none). See node/content.
	ContentSpread time.Duration
	// ContentKeepSpread is the same wait for content the node keeps with
	// no play due (standing content, the emergency chimes): an officer
	// who keeps a warning on a province's clusters must not have 10,000
	// of them download it within half a minute. An alert that needs it
	// shortens the wait. 0: DefaultContentKeepSpread; negative: as
	// ContentSpread.
	ContentKeepSpread time.Duration
	// CacheMaxBytes limits the content cache (0: content.DefaultMaxBytes).
	CacheMaxBytes int64

	// Updates receives the agent releases the controller asks this node
	// to install (CmdUpdate), for the process to fetch, install and try
	// (node/update.Requests); nil refuses them with an update-failed event.
	Updates UpdateRequests
	// NoUpdates is why Updates is nil, the reason the update-failed event
	// gives (a simulated box; a program that cannot find itself), so the
	// rollout that halts on it says what to do. Empty: the agent was not
	// started by its service.
	NoUpdates string
	// ReportDelay, if set, picks the delay of an alert's reports within
	// its report window w (spread.go) instead of uniformly at random;
	// tests use it. Its result is kept within [0, w].
	ReportDelay func(w time.Duration) time.Duration

	// DamagedAtStart is how many of the node's files other than cached
	// content were found damaged on its storage before the agent started:
	// its store, set aside and started anew (store.OpenBoltOrSetAside).
	// Each counts in the state's StorageDamaged like a damaged cached
	// file, so the controller's storage-damaged alarm says the card is
	// failing.
	DamagedAtStart int
	// StoreFault is why the node's store could not be opened on its
	// storage (the card read-only, full, or failing with I/O errors), when
	// Store is one in memory instead (a copy of what the card's store
	// holds, store.MemoryFrom): the agent runs, plays what is cached (see
	// ContentInMemory), and loses what it adds to its state at the next
	// restart. Its state says so
	// (State.StorageFault), for the controller's storage-failed alarm.
	StoreFault error
	// ContentInMemory, if set, is a directory in memory (tmpfs) for the
	// content cache to download to, with StoreFault: the card takes no
	// writes, so what it cached before (DataDir/content) is played from
	// there and what is new is kept in memory until the next restart
	// (content.Config.ReadOnlyDir). CacheMaxBytes bounds only the latter.
	ContentInMemory string
	// StartupEvents are reported once when Run starts: update outcomes
	// from before a restart. Their At is kept; Seq is assigned.
	StartupEvents []protocol.Event
}

// DefaultHeartbeat is how often a node publishes its state when nothing
// changes.
const DefaultHeartbeat = 60 * time.Second

// DefaultContentSpread spreads 2,000 nodes' first requests for new content
// over half a minute: about 70 a second.
const DefaultContentSpread = 30 * time.Second

// DefaultContentKeepSpread spreads the first requests for content kept
// with no play due over ten minutes: 10,000 nodes ask about 17 times a
// second.
const DefaultContentKeepSpread = 10 * time.Minute

// LatencyOutput is an Output that knows how long its audio takes to reach
// the speaker: the sound device's buffer. The agent begins such an output
// that much before the due instant, so that the first sample is heard on
// time, and keeps the amplifier on that much longer after it. Outputs may
// implement it; none must.
type LatencyOutput interface {
	Output
	// Latency is the time from Play taking a sample to the sample being
	// heard.
	Latency() time.Duration
}

// UpdateRequests takes the agent releases the controller asks a node to
// install (node/update.Requests).
type UpdateRequests interface {
	// Ask records a request for u in a command signed at issued and valid
	// until expires, judged at now on the node's corrected clock; it must
	// not block.
	Ask(u protocol.Update, issued, expires, now time.Time)
}
