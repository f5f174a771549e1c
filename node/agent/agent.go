// Package agent is the node agent: it keeps the desired state the controller
// signed, plays each occurrence at its start on the controller-corrected
// clock, and reports what it did through a durable outbox.
//
// The agent is a core with adapters around it (contract.go): Output plays
// audio, Board drives the relay and sensors, Store keeps state across
// restarts. The broker link (node/mqtt) and the content cache
// (node/content) are built from the credentials. What to do at any moment
// is decided by the pure executor (Decide); the agent's loop only gathers
// the situation, carries the decision out, and writes its events.
//
// Starting on time: the executor looks ahead, and the agent prepares the
// next play AmplifierWarmup before it is due (amplifier on, content open
// and its first half second read) in a goroutine that begins the audio at
// the due instant on the corrected clock, less the output's latency, on
// its own if the main loop is busy. Events are written to the store after
// the audio began, never before, so no fsync delays a start.
//
// Goroutines: the main loop (messages, decisions, plays), one goroutine per
// prepared or playing occurrence, the event sender, the state publisher,
// the clock synchroniser and the content fetcher. Run starts them and stops
// them all before it returns.
package agent

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"loaxa.vn/internal/clock"
	"loaxa.vn/node/audio"
	"loaxa.vn/node/content"
	"loaxa.vn/node/mqtt"
	"loaxa.vn/protocol"
	"loaxa.vn/protocol/nodeaudio"
)

// controllerAudience is the "to" of the node's own (unsigned) messages.
const controllerAudience = "controller"

// progressRetention is how long the marks of occurrences that left the
// desired state are kept, so that one put back within that time is not
// played twice.
const progressRetention = 48 * time.Hour

// DefaultAmplifierWarmup is how long before a play the amplifier is
// switched on unless Config says otherwise: long enough for a typical
// public-address amplifier to power up before the first word.
const DefaultAmplifierWarmup = 500 * time.Millisecond

// DefaultAlertPrepare: an emergency alert that starts within this is prepared
// (amplifier on, audio open and its start decoded) as soon as it arrives,
// not AmplifierWarmup before its start, so that the nodes of an area do
// not all do that work at the same instant just before the start they
// share. Alerts start a lead of at most a few seconds after they were
// issued.
const DefaultAlertPrepare = 10 * time.Second

// DefaultChimeAgainAfter is Config.ChimeAgainAfter's default: a message
// that follows its chime within a few seconds still follows it; after a
// longer silence the listeners are called again.
const DefaultChimeAgainAfter = 5 * time.Second

// DefaultInStepWait is Config.InStepWait's default: a message that came
// after its chime's end waits up to this long in silence to begin with a
// repeat of the clusters that had it in time, rather than as their echo
// for the rest of the alert. It covers a whole repeat of a typed warning
// (20–30 s): the cluster's listeners have heard the chime, and hear every
// repeat, up to one repeat later.
const DefaultInStepWait = 30 * time.Second

// amplifierTail is how long the amplifier stays on after the output
// drained, on top of the output's latency (the sound still in the device),
// so that switching it off does not clip the last word.
const amplifierTail = 200 * time.Millisecond

// Agent runs one node.
type Agent struct {
	cfg      Config
	tls      *tls.Config // to the broker; httpTLS to the HTTP API
	cred     *protocol.Credentials
	log      *slog.Logger
	clock    *clock.Offset
	topics   protocol.Topics
	verifier *protocol.Verifier
	store    Store
	cache    *content.Cache
	epoch    string

	// httpTLS reaches the controller's HTTP API; it and tls verify its
	// certificate on the agent's clock, and earlyCertLogged is set once a
	// certificate not valid yet on it was taken (tlsclock.go).
	httpTLS         *tls.Config
	earlyCertLogged atomic.Bool

	// Signals between goroutines; each holds at most one pending signal.
	outboxWake  chan struct{} // the outbox grew or shrank
	reconnected chan struct{} // to the sender: start again from the acknowledged end
	salvageWake chan struct{} // to the salvaged events' sender: connected, or an ack of theirs
	syncNow     chan struct{} // to the clock synchroniser
	clockMoved  chan struct{} // to the main loop: the offset changed
	// clockEstimate is the offset measurement in use (timesync.go): the
	// synchroniser compares new ones with it, the state reports its
	// uncertainty. nil before the first.
	clockEstimate atomic.Pointer[offsetEstimate]
	cueBegan      chan struct{} // to the main loop: a prepared play began on its own
	// sounding is the play whose output runs (takeOutput), set and
	// cleared by the plays' goroutines.
	outputMu      sync.Mutex
	sounding      *play
	messagePlaced chan struct{}      // to the main loop: a late message's place in its play is known (play.placed)
	dirty         chan struct{}      // to the state publisher
	outboxMoved   chan struct{}      // to the state publisher: the outbox count changed (outboxStateMin)
	alive         chan chan struct{} // to the main loop: answer to prove it runs (Alive)
	inLoop        chan func()        // to the main loop: run this there (Idle, Report)

	// latency is the output's (LatencyOutput), lead the amplifier warm-up.
	latency time.Duration
	// noSound is why the agent has no sound device (MissingOutput), nil
	// when it has one.
	noSound error
	lead    time.Duration

	link *mqtt.Link // set once by Run (under mu, for Connected)

	// Owned by the main loop.
	desired  *protocol.DesiredState
	progress map[string]Progress
	guard    *protocol.ReplayGuard
	play     *play         // on air
	cue      *play         // prepared, not on air yet
	stashed  *mqtt.Message // a desired state refused for time; retried when the clock moves
	// heldAcks are acknowledgements that looked expired on the clock not
	// measured yet, judged once it is (message.go).
	heldAcks []mqtt.Message
	// heldAcked is the highest sequence of this epoch a held
	// acknowledgement covers: the sender's, until it is judged (holdAck).
	heldAcked atomic.Uint64
	// gap is the highest protocol.Command.Gap of this epoch's
	// acknowledgements not yet seen by the sender: the controller took a
	// batch past a gap, and the sender goes back to it (outbox.go).
	gap atomic.Uint64
	// alerts are the emergency alerts the node holds besides the desired
	// state (alert.go); cancelled remembers cancelled alert ids until
	// they expire, so a late copy cannot start one.
	alerts []protocol.Alert
	// arrived are the alerts accepted since the last step: when each came
	// and whether its content could play then (alert.go).
	arrived map[string]arrival
	// lives are the jitter buffers of the live calls among alerts (live.go);
	// liveBefore, the frames each counted before a restart (alertstore.go).
	lives      map[string]*jitter
	liveBefore map[string]LiveFrames
	cancelled  map[string]time.Time
	// endsHeard are the calls whose end came while the node did not hold
	// them, and when: a start sent again that crossed the end is not
	// taken for a call on air (live.go).
	endsHeard map[string]time.Time
	// alertsDirty: alerts or cancelled changed since they were stored
	// (alertstore.go).
	alertsDirty bool
	// restored are the alerts held again at start-up, judged unexpired
	// on the board's own clock at restoredAt, when the correction was
	// restoredOffset; the first clock correction judges them again at that
	// instant (alertstore.go).
	restored       map[string]bool
	restoredAt     time.Time
	restoredOffset time.Duration
	// aside are the stored alerts that looked expired at start-up only on
	// the board's clock, not yet measured: kept, not played, until the
	// first measurement judges them (alertstore.go).
	aside []asideAlert
	// ampOn is whether the amplifier is switched on; ampDriven, whether
	// the relay may have been told to switch on without confirming it (a
	// failed feedback check leaves the line driven), so that it is told
	// off again too; lastSound is when the last play's sound ended
	// (corrected clock).
	ampOn, ampDriven bool
	lastSound        time.Time
	// emergencyEnded is when the last emergency play ended, on the
	// executor's clock (Situation.EmergencyUntil).
	emergencyEnded time.Time
	// test is the audible self-test on air, if any.
	test *selfTest
	// Events and marks noted but not yet written (flush).
	pendingEvents []protocol.Event
	pendingMarks  []Progress

	mu     sync.Mutex
	status status
	// holds are the delays of the alerts' reports (spread.go), by
	// occurrence id; written by the main loop, read by the sender and the
	// state publisher.
	holds map[string]reportHold
	// rand picks report delays; main loop only.
	rand *rand.Rand

	// floorDue: to the main loop, store the clock floor (clockfloor.go).
	floorDue chan struct{}
	// proven is the latest time the controller's clock is known to have
	// reached (clockfloor.go); the synchroniser and the main loop set it.
	provenMu sync.Mutex
	proven   provenTime
	// floorStored is the clock floor last stored; floored, the floor the
	// board's clock was moved up to at start-up (zero if it was not).
	// Main loop only.
	floorStored, floored time.Time

	started time.Time // base clock, for the uptime
	metrics *metrics
}

// status is the part of the node's State that changes; guarded by Agent.mu.
type status struct {
	desiredVersion uint64
	playing        *protocol.Playing
	cache          cacheView // what noteCache saw last
	rejected       uint64
	outbox         int
	// publishedOutbox is the outbox count of the last state built to be
	// published (outboxStateMin).
	publishedOutbox int
	config          protocol.NodeConfig // the settings applied
	// probes are the receipts of the controller's latest probes, newest
	// last (probe.go).
	probes []protocol.ProbeReceipt
	// storeErr is why the last write to the store failed (flush), nil
	// once one succeeds.
	storeErr error
}

// outboxStateMin is the outbox count from which a change of the count
// alone publishes a state. Below it the count rides on the next state
// (a change, or the heartbeat): in normal work a node's outbox holds the
// few events of a play until the controller acknowledges them a second or
// two later, and a state for each such step would double a node's messages
// (on 4G) and the controller's ingest. A backlog (a node back from hours
// offline, or one whose events are not taken) is reported as it grows and
// drains, and once more when it falls below the mark.
const outboxStateMin = 10

// New checks cfg and prepares an agent; Run starts it.
func New(cfg Config) (*Agent, error) {
	var errs []error
	if cfg.Credentials == nil {
		errs = append(errs, errors.New("credentials are required"))
	} else if err := cfg.Credentials.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("credentials: %w", err))
	}
	if cfg.Store == nil {
		errs = append(errs, errors.New("store is required"))
	}
	if cfg.Output == nil {
		errs = append(errs, errors.New("audio output is required"))
	}
	if cfg.Board == nil {
		errs = append(errs, errors.New("board is required"))
	}
	if cfg.DataDir == "" {
		errs = append(errs, errors.New("data directory is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("node agent: %w", err)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	tlsConfig, err := cfg.Credentials.TLSConfig()
	if err != nil {
		return nil, fmt.Errorf("node agent: %w", err)
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	if cfg.TimeSyncInterval <= 0 {
		cfg.TimeSyncInterval = 5 * time.Minute
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 30 * time.Second
	}
	if cfg.StateDebounce <= 0 {
		cfg.StateDebounce = time.Second
	}
	if cfg.StatePoll <= 0 {
		cfg.StatePoll = 30 * time.Second
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.ContentSpread == 0 {
		cfg.ContentSpread = DefaultContentSpread
	}
	switch {
	case cfg.ContentKeepSpread == 0:
		cfg.ContentKeepSpread = DefaultContentKeepSpread
	case cfg.ContentKeepSpread < 0:
		cfg.ContentKeepSpread = max(cfg.ContentSpread, 0)
	}
	if cfg.AmplifierWarmup <= 0 {
		cfg.AmplifierWarmup = DefaultAmplifierWarmup
	}
	switch {
	case cfg.AlertPrepare == 0:
		cfg.AlertPrepare = DefaultAlertPrepare
	case cfg.AlertPrepare < 0:
		cfg.AlertPrepare = 0
	}
	if cfg.InStepWait == 0 {
		cfg.InStepWait = DefaultInStepWait
	}
	if cfg.ChimeAgainAfter <= 0 {
		cfg.ChimeAgainAfter = DefaultChimeAgainAfter
	}
	cred := cfg.Credentials
	keys, err := cred.PublicKeys()
	if err != nil {
		return nil, fmt.Errorf("node agent: %w", err)
	}
	log := cfg.Logger.With("node", cred.Node)
	a := &Agent{
		cfg:           cfg,
		cred:          cred,
		log:           log,
		clock:         clock.NewOffset(cfg.Clock),
		topics:        protocol.NewTopics(cred.Prefix()),
		store:         cfg.Store,
		epoch:         cfg.Store.Epoch(),
		outboxWake:    make(chan struct{}, 1),
		reconnected:   make(chan struct{}, 1),
		salvageWake:   make(chan struct{}, 1),
		syncNow:       make(chan struct{}, 1),
		clockMoved:    make(chan struct{}, 1),
		floorDue:      make(chan struct{}, 1),
		cueBegan:      make(chan struct{}, 1),
		messagePlaced: make(chan struct{}, 1),
		alive:         make(chan chan struct{}),
		inLoop:        make(chan func()),
		dirty:         make(chan struct{}, 1),
		outboxMoved:   make(chan struct{}, 1),
		lead:          cfg.AmplifierWarmup,
		started:       cfg.Clock.Now(),
		metrics:       newMetrics(),
		rand:          newRand(),
	}
	if o, ok := cfg.Output.(LatencyOutput); ok {
		a.latency = max(o.Latency(), 0)
	}
	if o, ok := cfg.Output.(MissingOutput); ok {
		a.noSound = o.Missing()
	}
	a.verifier = protocol.NewVerifier(keys, a.clock.Now, 0)
	// The controller is verified against the pinned CA of the credentials,
	// if they have one, on the agent's clock (tlsclock.go). Two configs:
	// the HTTP transport writes into its own (HTTP/2 protocols) while the
	// broker link reads the other.
	a.tls = a.controllerTLS(tlsConfig, cred.Broker)
	a.httpTLS = a.controllerTLS(tlsConfig, cred.Controller)
	if a.cfg.HTTPClient == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = a.httpTLS.Clone()
		a.cfg.HTTPClient = &http.Client{Transport: tr}
	}
	// The cache's waits (spread, backoff, stall) run on the agent's base
	// clock: the clock the corrected one runs on, which a correction does
	// not move, so a retry due in 10 s is not put off by an hour when the
	// board's clock turns out an hour fast. wantContent gives it the needs
	// on that clock, again whenever the offset changes.
	cacheDir, cardDir := filepath.Join(cfg.DataDir, "content"), ""
	if cfg.ContentInMemory != "" {
		cacheDir, cardDir = cfg.ContentInMemory, cacheDir
	}
	a.cache, err = content.Open(content.Config{
		Dir:          cacheDir,
		ReadOnlyDir:  cardDir,
		BaseURL:      cred.Controller,
		Username:     cred.Username,
		Secret:       cred.Secret,
		Client:       a.cfg.HTTPClient,
		Clock:        cfg.Clock,
		Logger:       log,
		BackoffMin:   cfg.ContentBackoffMin,
		BackoffMax:   cfg.ContentBackoffMax,
		StallTimeout: cfg.ContentStallTimeout,
		MaxBytes:     cfg.CacheMaxBytes,
		Spread:       cfg.ContentSpread,
		KeepSpread:   cfg.ContentKeepSpread,
	})
	if err != nil {
		return nil, fmt.Errorf("node agent: %w", err)
	}
	for range cfg.DamagedAtStart {
		a.cache.NoteDamaged()
	}
	return a, nil
}

// ControllerTLS returns the TLS settings for the controller's HTTP API that
// the agent's own client uses: its certificate verified on the agent's
// clock (tlsclock.go), for other clients of the node (the updater).
func (a *Agent) ControllerTLS() *tls.Config { return a.httpTLS.Clone() }

// Clock returns the controller-corrected clock the agent schedules on.
func (a *Agent) Clock() *clock.Offset { return a.clock }

// Epoch returns the outbox epoch.
func (a *Agent) Epoch() string { return a.epoch }

// Connected reports whether the broker link is up.
func (a *Agent) Connected() bool {
	a.mu.Lock()
	link := a.link
	a.mu.Unlock()
	return link != nil && link.Connected()
}

// BrokerReached reports whether the broker link's last attempt to connect
// reached the broker and was not refused by it (mqtt.Link.Reaches): not
// Connected then, the fault is not the network's.
func (a *Agent) BrokerReached() bool {
	a.mu.Lock()
	link := a.link
	a.mu.Unlock()
	return link != nil && link.Reaches()
}

// LinkChecks reports whether the broker link checks that it still hears:
// it has heard its own state come back (node/mqtt).
func (a *Agent) LinkChecks() bool {
	a.mu.Lock()
	link := a.link
	a.mu.Unlock()
	return link != nil && link.Checks()
}

// linkDeaf is how many times in the last 24 hours the link reconnected
// because the broker no longer delivered to it. Called with a.mu held.
func (a *Agent) linkDeaf() int {
	if a.link == nil {
		return 0
	}
	return a.link.DeafSince(time.Now().Add(-24 * time.Hour))
}

// areasUnheard is the areas of the chain the link does not hear yet.
// Called with a.mu held.
func (a *Agent) areasUnheard() []string {
	if a.link == nil {
		return nil
	}
	return a.link.AreasUnheard()
}

// Status returns the state the agent reports now.
func (a *Agent) Status() protocol.State {
	board := a.cfg.Board.Snapshot()
	cacheBytes, cacheLimit, _ := a.cache.Usage()
	a.mu.Lock()
	defer a.mu.Unlock()
	vol := a.status.config.Volume
	st := protocol.State{
		Status:          protocol.StatusOnline,
		At:              a.clock.Now().UTC(),
		Agent:           a.cfg.Version,
		DesiredVersion:  a.status.desiredVersion,
		ClockOffsetMS:   a.clock.Get().Milliseconds(),
		ContentMissing:  slices.Clone(a.status.cache.missing),
		CacheBytes:      cacheBytes,
		CacheLimit:      cacheLimit,
		Board:           &board,
		Rejected:        a.status.rejected,
		Outbox:          a.status.outbox,
		Keys:            a.verifier.KeyIDs(),
		Epoch:           a.epoch,
		HeartbeatMS:     a.cfg.Heartbeat.Milliseconds(),
		UptimeS:         int64(a.cfg.Clock.Now().Sub(a.started) / time.Second),
		DiskFreeBytes:   diskFree(a.cfg.DataDir),
		StorageDamaged:  a.cache.Damaged(),
		LinkDeaf:        a.linkDeaf(),
		AreasUnheard:    a.areasUnheard(),
		Muted:           a.status.config.Muted,
		AmplifierPolicy: a.status.config.AmplifierPolicy,
	}
	if e := a.clockEstimate.Load(); e != nil {
		st.ClockUncertaintyUS = max(e.uncertainty(a.clock.Base.Now()).Microseconds(), 1)
	}
	if a.status.desiredVersion > 0 {
		st.Volume = &vol // before a desired state there is no setting
	}
	if st.AmplifierPolicy == "" {
		st.AmplifierPolicy = protocol.AmpAuto
	}
	if p := a.status.playing; p != nil {
		cp := *p
		st.Playing = &cp
	}
	st.ProbeReceipts = a.probeReceipts()
	if a.noSound != nil {
		st.NoSoundDevice = a.noSound.Error()
	}
	if a.cfg.StoreFault != nil {
		st.StorageFault = a.cfg.StoreFault.Error()
	} else if err := a.status.storeErr; err != nil {
		st.StorageFault = "writing to the node store: " + err.Error()
	}
	return st
}

// Alive returns nil when the main loop answers before ctx ends: the
// node's systemd watchdog is fed only while it does, so a stuck agent is
// restarted.
func (a *Agent) Alive(ctx context.Context) error {
	reply := make(chan struct{})
	select {
	case a.alive <- reply:
	case <-ctx.Done():
		return fmt.Errorf("agent main loop does not answer: %w", ctx.Err())
	}
	select {
	case <-reply:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("agent main loop does not answer: %w", ctx.Err())
	}
}

// Run runs the agent until ctx is cancelled. It returns after stopping
// what plays (reported as interrupted), every goroutine it started and the
// broker link, with everything it did written to the store. The store,
// output and board stay open: they belong to the caller.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.load(); err != nil {
		return err
	}
	link, err := mqtt.Open(mqtt.Config{
		Broker:               a.cred.Broker,
		Node:                 a.cred.Node,
		Username:             a.cred.Username,
		Secret:               a.cred.Secret,
		TLS:                  a.tls,
		Topics:               a.topics,
		Areas:                a.areas(),
		Will:                 a.encodeState(protocol.State{Status: protocol.StatusOffline, At: a.clock.Now().UTC()}),
		Online:               func() []byte { return a.encodeState(a.publishStatus()) },
		KeepAlive:            a.cfg.MQTTKeepAlive,
		MaxReconnectInterval: a.cfg.MQTTMaxReconnect,
		EchoTimeout:          a.cfg.MQTTEchoTimeout,
		Logger:               a.log,
	})
	if err != nil {
		return fmt.Errorf("node agent: %w", err)
	}
	a.mu.Lock()
	a.link = link
	a.mu.Unlock()
	if len(a.cfg.StartupEvents) > 0 {
		a.note(a.cfg.StartupEvents)
		a.flush()
	}
	a.log.Info("agent: started", "version", a.cfg.Version, "epoch", a.epoch, "desired_version", a.status.desiredVersion)

	loopCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, fn := range []func(context.Context){
		func(ctx context.Context) { a.cache.Run(ctx) },
		a.sendEvents,
		a.sendSalvaged,
		a.publishStates,
		a.syncClock,
		a.watchOutput,
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(loopCtx)
		}()
	}
	a.loop(ctx)
	stop()
	wg.Wait()

	// A clean disconnect does not fire the Last Will: say goodbye ourselves.
	if link.Open() {
		st := a.Status()
		st.Status = protocol.StatusOffline
		pctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := link.Publish(pctx, a.topics.Node(a.cred.Node, protocol.ChanState), true, a.encodeState(st)); err != nil {
			a.log.Warn("agent: could not publish offline state", "err", err)
		}
		cancel()
	}
	link.Close()
	a.log.Info("agent: stopped")
	return nil
}

// load reads the durable state.
// forgetAt is the time by which replay entries that have expired are
// forgotten: the corrected clock, once this run has measured it. Before
// that, none is: a board whose clock runs fast (an RTC set wrong) would
// forget entries still valid by the controller's clock, and take a
// captured copy again after a restart.
func (a *Agent) forgetAt() time.Time {
	if a.clockEstimate.Load() == nil {
		return time.Time{}
	}
	return a.clock.Now()
}

func (a *Agent) load() error {
	d, err := a.store.Desired()
	if err != nil {
		return fmt.Errorf("node agent: %w", err)
	}
	a.desired = d
	if a.progress, err = a.store.Progress(); err != nil {
		return fmt.Errorf("node agent: %w", err)
	}
	// Before anything is judged on the clock: the held alerts and the
	// messages.
	a.loadFloor()
	entries, err := a.store.ReplayEntries(a.forgetAt())
	if err != nil {
		return fmt.Errorf("node agent: %w", err)
	}
	a.guard = protocol.NewReplayGuard(entries)
	learnt, err := a.store.Keys()
	if err != nil {
		return fmt.Errorf("node agent: %w", err)
	}
	if learnt != nil {
		// Keys announced by the controller since the credentials were
		// written replace theirs.
		keys, err := parseKeys(learnt)
		if err != nil {
			return fmt.Errorf("node agent: stored controller keys: %w", err)
		}
		a.verifier.SetKeys(keys)
	}
	out, err := a.store.Outbox()
	if err != nil {
		return fmt.Errorf("node agent: %w", err)
	}
	a.mu.Lock()
	a.status.outbox = out.Len()
	if d != nil {
		a.status.desiredVersion = d.Version
		a.status.config = d.Config
	}
	a.mu.Unlock()
	if err := a.loadAlerts(a.clock.Now()); err != nil {
		return err
	}
	a.wantContent()
	return nil
}

// areas is the area chain to subscribe to: the desired state's, else the
// credentials'.
func (a *Agent) areas() []string {
	if a.desired != nil && len(a.desired.Areas) > 0 {
		return a.desired.Areas
	}
	if len(a.cred.Areas) > 0 {
		return a.cred.Areas
	}
	return []string{a.cred.Area}
}

// lateGrace is the desired state's grace, else the configured one.
func (a *Agent) lateGrace() time.Duration {
	if a.desired != nil && a.desired.Config.LateGraceMS > 0 {
		return time.Duration(a.desired.Config.LateGraceMS) * time.Millisecond
	}
	if a.cfg.LateGraceMS > 0 {
		return time.Duration(a.cfg.LateGraceMS) * time.Millisecond
	}
	return DefaultLateGrace
}

// loop is the main loop: it owns the desired state, the progress marks and
// the play, so none of them needs a lock.
func (a *Agent) loop(ctx context.Context) {
	timer := a.clock.NewTimer(time.Hour)
	defer timer.Stop()
	var wakeC <-chan time.Time
	for {
		if ctx.Err() != nil {
			// Ended while the loop was busy (Config.Restart): begin nothing
			// more.
			a.shutdown()
			return
		}
		wake := a.step()
		if c := a.cue; c != nil && c.state.Load() == cueFree && !wake.Before(c.instant().Add(a.latency)) {
			// The cue begins itself at its instant and wakes the loop then
			// (cueBegan); the loop waking too would only compete with it
			// for the processor at the very moment that matters.
			wake = time.Time{}
		}
		if wake.IsZero() {
			wakeC = nil
		} else {
			timer.Stop()
			// Wake is on the executor's clock, a latency ahead.
			timer.Reset(max(wake.Sub(a.clock.Now().Add(a.latency)), 0))
			wakeC = timer.C()
		}
		select {
		case <-ctx.Done():
			a.shutdown()
			return
		case <-a.link.Waiting():
			if m, ok := a.link.Next(); ok {
				a.handle(m, false)
			}
		case <-a.link.Connects():
			a.metrics.connects.Inc()
			a.cache.Reconnected()
			signal(a.reconnected)
			signal(a.salvageWake)
			signal(a.syncNow)
			signal(a.outboxWake)
		case r := <-a.playDone():
			a.finishPlay(r)
		case r := <-a.testDone():
			a.finishTest(r)
		case <-a.cueBegan:
			// Woken by a play's goroutine, the loop is first in line on
			// its processor (Go runs a goroutine woken so next). The
			// notes of the start can wait behind whatever else is due
			// now: in a process of many agents (the simulator's
			// fleets), the other plays due at this instant, which would
			// otherwise each wait behind the bookkeeping of those that
			// began before them. On a board, alone on its processor,
			// this yields to nothing.
			runtime.Gosched()
		case <-a.messagePlaced:
		case reply := <-a.alive:
			close(reply)
		case f := <-a.inLoop:
			f()
		case <-wakeC:
		case <-a.cache.Changed():
			if a.noteCache() {
				signal(a.dirty)
			}
		case <-a.floorDue:
			a.saveFloor(0)
		case <-a.clockMoved:
			// The cache's needs are on the base clock, the offset behind
			// the schedule's (wantContent): with the old offset, a board
			// found an hour behind would wait to fetch the audio of a
			// bulletin due soon as if it were an hour further off.
			a.wantContent()
			a.recheckRestored()
			if a.cue != nil && a.cue.openErr == nil {
				signal(a.cue.nudge) // its wait was computed on the old offset
			}
			if m := a.stashed; m != nil {
				a.stashed = nil
				a.handle(*m, true)
			}
			held := a.heldAcks
			a.heldAcks = nil
			for _, m := range held {
				a.handle(m, false) // on the measured clock: taken, or refused as any
			}
		}
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// step asks the executor what to do, does it, and returns when to ask again.
// The audio comes first: events are noted as things happen and written in
// one step at the end, after any play began.
func (a *Agent) step() time.Time {
	// Nothing may begin on its own while the agent decides; a cue that has
	// begun already goes on air.
	if c := a.cue; c != nil && c.openErr == nil && !c.hold() {
		a.onAir(c)
	}
	if a.correctsPlay() {
		// A wrong recording replaced while it plays: it stops, suspended
		// (CutOff), and the executor starts the corrected audio from the
		// beginning in its turn, within its deadline.
		a.log.Info("agent: the occurrence on air was corrected; playing the correction from the beginning", "occurrence", a.play.occ.ID)
		a.stopPlay(protocol.ReasonCorrected)
	}
	now := a.clock.Now()
	asideUntil := a.judgeAside(now)
	// The executor works on the time at the speaker: audio given to the
	// output now is heard a latency later.
	s := Situation{
		Now:        now.Add(a.latency),
		Progress:   a.progressSeen(),
		LateGrace:  a.lateGrace(),
		HasContent: a.hasContent,
		Cached:     a.cache.Has,
		ChimeKnown: a.chimeKnown,
		Lead:       a.lead,
		AlertLead:  a.cfg.AlertPrepare,
		NoSound:    a.noSound != nil,
		Muted:      a.settings().Muted,
		LiveFrames: a.liveFrames,
	}
	a.pruneAlerts(now)
	a.pruneLives()
	s.Occurrences = a.occurrences()
	s.EmergencyUntil = a.emergencyEnded
	if a.play != nil {
		s.Playing, s.PlayingEnds = a.play.occ.ID, a.play.ends
		if a.play.occ.Priority == protocol.PriorityEmergency {
			s.EmergencyUntil = s.Now
		}
	}
	d := Decide(s)
	ready := a.contentReady()

	var events []protocol.Event
	var marks []Progress
	for _, o := range d.Received {
		// An alert is received when it came, which on a loaded board may
		// be some milliseconds before this step; its content, fetched
		// meanwhile, is ready now, after it. Both at now, the controller
		// read the node as one that had the audio when the alert came
		// (not fetched), though it had fetched it.
		at, cached := now, true
		if arr, ok := a.arrived[o.ID]; ok {
			at, cached = arr.at, arr.cached
		}
		m := markOf(o, PhaseReceived)
		m.ReceivedAt = at
		e := occurrenceEvent(protocol.EventReceived, m, at)
		if e.HeldBy = a.holding(o); e.HeldBy != "" {
			a.log.Warn("agent: live call held behind what plays; it begins once that is over", "call", o.ID, "drill", o.Drill, "held_by", e.HeldBy)
		}
		events = append(events, e)
		if o.Content != "" && a.cache.Playable(o.Content) {
			m.ContentReady = true
			ready := at
			if !cached {
				ready = now
			}
			events = append(events, occurrenceEvent(protocol.EventContentReady, m, ready))
		}
		marks = append(marks, m)
	}
	clear(a.arrived)
	for _, m := range ready {
		e := occurrenceEvent(protocol.EventContentReady, m, now)
		if p := a.play; p != nil && p.occ.ID == m.Occurrence {
			e.MessageMS = time.Duration(p.messageAt.Load()).Milliseconds()
			if !p.readySeen.IsZero() {
				e.At = p.readySeen.UTC()
			}
		}
		events = append(events, e)
		marks = append(marks, m)
	}
	for _, c := range d.Close {
		e := occurrenceEvent(c.Type, c.Progress, now)
		e.Reason, e.LateMS = c.Reason, c.LateMS
		events = append(events, e)
		m := c.Progress
		m.Phase = PhaseDone
		marks = append(marks, m)
		a.log.Info("agent: occurrence closed", "occurrence", c.Progress.Occurrence, "event", c.Type, "reason", c.Reason, "late_ms", c.LateMS)
	}
	for _, c := range d.Suspend {
		e := occurrenceEvent(c.Type, c.Progress, now)
		e.Reason = c.Reason
		events = append(events, e)
		m := c.Progress
		m.Phase, m.CutBy = PhaseSuspended, c.Reason
		if m.ReceivedAt.IsZero() {
			m.ReceivedAt = now // received in this decision (Situation.NoSound)
		}
		marks = append(marks, m)
		a.log.Info("agent: occurrence suspended", "occurrence", c.Progress.Occurrence, "reason", c.Reason)
	}
	a.note(events, marks...)

	if d.Stop != "" {
		a.stopPlay(d.Stop)
	}
	wake := d.Wake
	if o := d.Start; o != nil {
		a.start(*o, now)
		if a.play == nil && a.progress[o.ID].Phase == PhaseDone {
			// It failed at once (content unplayable, amplifier):
			// no play on air will end and wake the loop, and another
			// play due now would wait until its deadline and be missed.
			wake = s.Now
		}
	}
	a.prepare(d)
	if !asideUntil.IsZero() && (wake.IsZero() || asideUntil.Add(a.latency).Before(wake)) {
		wake = asideUntil.Add(a.latency) // wakes are on the executor's clock, a latency ahead
	}
	a.flush()
	if len(a.pendingEvents) > 0 || len(a.pendingMarks) > 0 {
		// The store did not take them: written again in a while.
		if at := s.Now.Add(storeRetry); wake.IsZero() || at.Before(wake) {
			wake = at
		}
	}
	return a.switchAmplifier(wake)
}

// holding returns the announcement of the play on air that holds live
// call o back (an alert of o's rank or above, which o does not preempt:
// an emergency's id, or a call's), or "": the officer is told which
// clusters wait behind which alert (protocol.Event.HeldBy).
func (a *Agent) holding(o protocol.Occurrence) string {
	if o.Live == "" || a.play == nil || a.play.occ.ID == o.ID || rank(&a.play.occ) < rank(&o) {
		return ""
	}
	return cmp.Or(a.play.occ.Announcement, a.play.occ.ID)
}

// settings returns the node settings of the running desired state.
func (a *Agent) settings() protocol.NodeConfig {
	if a.desired == nil {
		return protocol.NodeConfig{Volume: protocol.MaxVolume}
	}
	return a.desired.Config
}

// gain is the linear gain o plays at: the alert's volume if it gives one,
// else the node's volume, or full for an emergency.
func (a *Agent) gain(o protocol.Occurrence) float64 {
	if o.Volume > 0 {
		// An alert's own level, whatever the node's volume.
		return audio.VolumeGain(o.Volume)
	}
	if o.Priority == protocol.PriorityEmergency {
		return 1
	}
	return audio.VolumeGain(a.settings().Volume)
}

// start puts o on air now, from its cue if it has one.
func (a *Agent) start(o protocol.Occurrence, now time.Time) {
	a.stopTest(now)
	if a.cue != nil && !sameSound(a.cue.occ, o) {
		a.dropCue()
	}
	if a.cue == nil {
		a.cue = a.cueUp(o, now)
	}
	p := a.cue
	fail := func(reason string) {
		a.dropCue()
		mark := a.mark(o, PhaseDone)
		e := occurrenceEvent(protocol.EventFailed, mark, now)
		e.Reason = reason
		a.note([]protocol.Event{e}, mark)
	}
	if p.openErr != nil {
		if damaged := (*content.DamagedError)(nil); errors.As(p.openErr, &damaged) {
			// The node's storage changed the cached file: it is fetched
			// again, and the occurrence waits for it like content not yet
			// on the node (within its late grace; an alert starts with its
			// chime).
			a.log.Error("agent: cached content damaged; fetching it again before the play", "occurrence", o.ID, "err", p.openErr)
			a.dropCue()
			a.cache.Discard(damaged.ID)
			return
		}
		a.log.Error("agent: content unplayable", "occurrence", o.ID, "content", o.Content, "err", p.openErr)
		fail(protocol.ReasonContentMissing)
		return
	}
	if err := a.amplifierOn(); err != nil {
		a.log.Error("agent: amplifier did not switch on", "occurrence", o.ID, "err", err)
		fail(protocol.ReasonAmplifier)
		return
	}
	a.beginNow(p)
}

// prepare keeps the cue in step with d.Prepare: the occurrence due next
// is opened ahead with the amplifier on, and left free to begin at its
// instant if nothing is on air or it preempts what is.
func (a *Agent) prepare(d Decision) {
	next := d.Prepare
	if next == nil || a.cue != nil && !sameSound(a.cue.occ, *next) {
		// Another occurrence, or this one corrected (a wrong recording
		// replaced under its id): what was prepared is not what plays.
		a.dropCue()
	}
	if next == nil {
		return
	}
	a.stopTest(a.clock.Now())
	at := d.PrepareAt.Add(-a.latency)
	if c := a.cue; c != nil && slices.ContainsFunc(c.skipped, a.cache.Has) {
		// A chime arrived after the cue was made without it (an alert
		// whose content is all fetched at once): make it again.
		a.dropCue()
	}
	if a.cue == nil {
		a.cue = a.cueUp(*next, at)
		if err := a.cue.openErr; err != nil {
			a.log.Warn("agent: content of the next play cannot be opened", "occurrence", next.ID, "err", err)
		}
	} else {
		a.cue.setAt(at)
	}
	p := a.cue
	if p.openErr != nil || p.ampFailed {
		return
	}
	if err := a.amplifierOn(); err != nil {
		// Tried again at the start, which fails the play if it still fails.
		a.log.Warn("agent: amplifier did not switch on ahead of a play", "occurrence", next.ID, "err", err)
		p.ampFailed = true
		return
	}
	if a.play == nil || rank(next) > rank(&a.play.occ) {
		p.free()
	}
}

// amplifierOn switches the amplifier on unless it is.
func (a *Agent) amplifierOn() error {
	if a.ampOn {
		return nil
	}
	// A board that could not confirm the switch (its feedback contact
	// disagrees) may still have energised the relay: it is switched off
	// like one that is on, once nothing plays and when the agent stops.
	a.ampDriven = true
	if err := a.cfg.Board.SetAmplifier(true); err != nil {
		return err
	}
	a.ampOn = true
	return nil
}

// switchAmplifier switches the amplifier off once nothing plays or is
// prepared and the last sound has left the speaker; it returns when to
// look again, the earlier of wake and that.
func (a *Agent) switchAmplifier(wake time.Time) time.Time {
	if a.settings().AmplifierPolicy == protocol.AmpAlwaysOn {
		if err := a.amplifierOn(); err != nil {
			a.log.Debug("agent: amplifier kept on by policy did not switch on", "err", err)
		}
		return wake
	}
	if !a.ampDriven || a.play != nil || a.cue != nil || a.test != nil {
		return wake
	}
	off := a.lastSound.Add(amplifierTail)
	if a.clock.Now().Before(off) {
		if h := off.Add(a.latency); wake.IsZero() || h.Before(wake) {
			wake = h // wakes are on the executor's clock, a latency ahead
		}
		return wake
	}
	a.amplifierOff()
	return wake
}

func (a *Agent) amplifierOff() {
	if !a.ampDriven {
		return
	}
	// Whatever the board answers, the amplifier is no longer known to be
	// on: a relay that released later than the board waited (its feedback
	// disagreed) is switched on again for the next play, not taken for on.
	a.ampOn = false
	if err := a.cfg.Board.SetAmplifier(false); err != nil {
		a.log.Error("agent: amplifier did not switch off", "err", err)
		return
	}
	a.ampDriven = false
}

// shutdown stops what plays (interrupted: it resumes after the restart),
// drops the cue, switches the amplifier off and writes what is noted.
func (a *Agent) shutdown() {
	if c := a.cue; c != nil && c.openErr == nil && !c.hold() {
		a.onAir(c)
	}
	a.stopPlay(protocol.ReasonInterrupted)
	a.dropCue()
	a.stopTest(a.clock.Now())
	a.amplifierOff()
	a.flush()
	a.saveFloor(0)
}

// mark is o's progress at phase, keeping when the node first had it.
func (a *Agent) mark(o protocol.Occurrence, phase Phase) Progress {
	m := markOf(o, phase)
	m.ReceivedAt = a.progress[o.ID].ReceivedAt
	m.ContentReady = a.progress[o.ID].ContentReady
	return m
}

// contentReady returns the marks of occurrences received earlier, not
// started (or started with their chime before their content could play),
// whose content can play since: each gets its content-ready event once.
// Occurrences d receives now are handled with their received event.
func (a *Agent) contentReady() []Progress {
	var out []Progress
	for _, o := range a.occurrences() {
		p, ok := a.progress[o.ID]
		if !ok || p.Phase != PhaseReceived && p.Phase != PhaseStarted || p.ContentReady || o.Content == "" || !a.cache.Playable(o.Content) {
			continue
		}
		if pl := a.play; pl != nil && pl.occ.ID == o.ID && pl.awaiting.Load() && !pl.placed.Load() {
			// The play on air is at the message's place, waiting for
			// it: the event waits the moment it takes to place the
			// message (to join a repeat, laterPart.open), so that it
			// says where (Event.MessageMS), and keeps the instant the
			// content could play.
			if pl.readySeen.IsZero() {
				pl.readySeen = a.clock.Now()
			}
			continue
		}
		p.ContentReady = true
		out = append(out, p)
	}
	return out
}

func occurrenceEvent(t protocol.EventType, p Progress, at time.Time) protocol.Event {
	return protocol.Event{Type: t, At: at.UTC(), Occurrence: p.Occurrence, Announcement: p.Announcement, Content: p.Content, Drill: p.Drill}
}

// note takes marks at once, for the executor's next look, and queues
// events and marks for flush.
func (a *Agent) note(events []protocol.Event, marks ...Progress) {
	for _, m := range marks {
		a.progress[m.Occurrence] = m
	}
	a.pendingEvents = append(a.pendingEvents, events...)
	a.endHolds(events)
	a.metrics.count(events)
	a.pendingMarks = append(a.pendingMarks, marks...)
}

// storeRetry is how soon events the store did not take are written again.
const storeRetry = 5 * time.Second

// flush writes the noted events and marks to the store in one step. Those
// the store does not take (a card full or failing for a while) are kept
// and written again with the next ones (step tries within storeRetry, and
// the agent's shutdown once more), so that none is lost and a play that
// ended is not begun again after a restart; meanwhile the state says the
// store fails (storage-failed). The in-memory marks stand, so the agent
// does not act twice on one occurrence.
func (a *Agent) flush() {
	// The alerts first: a mark of an alert is never stored without it.
	a.saveAlerts()
	if len(a.pendingEvents) == 0 && len(a.pendingMarks) == 0 {
		return
	}
	_, err := a.store.Append(a.pendingEvents, a.pendingMarks)
	a.mu.Lock()
	failing := a.status.storeErr != nil
	a.status.storeErr = err
	a.mu.Unlock()
	if err != nil {
		if !failing {
			a.log.Error("agent: events not stored; kept to store again", "events", len(a.pendingEvents), "err", err)
			signal(a.dirty)
		}
		return
	}
	if failing {
		a.log.Info("agent: events stored again", "events", len(a.pendingEvents))
		signal(a.dirty)
	}
	a.pendingEvents, a.pendingMarks = nil, nil
	a.outboxChanged()
}

func (a *Agent) outboxChanged() {
	if out, err := a.store.Outbox(); err == nil {
		a.mu.Lock()
		a.status.outbox = out.Len()
		a.mu.Unlock()
	}
	signal(a.outboxWake)
	signal(a.outboxMoved)
}

// outboxWantsState says whether the outbox count alone is worth a state:
// it differs from the published one and either is outboxStateMin or more.
func (a *Agent) outboxWantsState() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	n, p := a.status.outbox, a.status.publishedOutbox
	return n != p && max(n, p) >= outboxStateMin
}

// publishStatus is Status for a state about to be published: it notes the
// outbox count the broker will hold.
func (a *Agent) publishStatus() protocol.State {
	st := a.Status()
	a.mu.Lock()
	a.status.publishedOutbox = st.Outbox
	a.mu.Unlock()
	return st
}

// chimeKnown reports whether the length of chime id is known (its ref is
// wanted), so that its place can be kept while it is fetched (chimeSlot).
func (a *Agent) chimeKnown(id string) bool {
	ref, ok := a.cache.Ref(id)
	return ok && ref.DurationMS > 0
}

// wantContent tells the cache what the desired state needs, soonest first.
func (a *Agent) wantContent() {
	if a.desired == nil && len(a.alerts) == 0 && len(a.aside) == 0 {
		a.cache.Want(nil)
	} else {
		// The cache times its waits on the base clock (see New); the
		// schedule is on the corrected clock, the offset ahead of it.
		offset := a.clock.Get()
		wants := contentByNeed(a.withAlerts(), a.clock.Now())
		for i := range wants {
			if !wants[i].Need.IsZero() {
				wants[i].Need = wants[i].Need.Add(-offset)
			}
		}
		a.cache.Want(wants)
	}
	if a.noteCache() {
		signal(a.dirty)
	}
}

// cacheView is the cache's part of the node's state.
type cacheView struct {
	missing      []string
	damaged      int
	bytes, limit int64
}

// noteCache takes the cache's part of the state and reports whether it
// changed since the last look. The cache signals Changed on every Want,
// and wantContent runs whenever the clock moves, even by nothing: the
// first measurement of the controller's time at every start (however
// little it moves the clock, alertstore.go) published a state that said
// what the one before had said, once per node, 10,000 at a fleet's start.
func (a *Agent) noteCache() bool {
	v := cacheView{missing: a.cache.Missing(), damaged: a.cache.Damaged()}
	v.bytes, v.limit, _ = a.cache.Usage()
	a.mu.Lock()
	defer a.mu.Unlock()
	old := a.status.cache
	a.status.cache = v
	return !slices.Equal(v.missing, old.missing) || v.damaged != old.damaged || v.bytes != old.bytes || v.limit != old.limit
}

// contentByNeed orders the content refs of d by the first upcoming
// occurrence that plays them (as content or chime), which is their Need;
// content no occurrence needs comes last. Equal needs keep d's order.
func contentByNeed(d *protocol.DesiredState, now time.Time) []content.Wanted {
	first := make(map[string]time.Time, len(d.Content))
	for _, o := range d.Occurrences {
		// The chimes are needed when the content is: a chime fetched
		// last would miss the start and be left out.
		for _, id := range []string{o.OpeningChime, o.Intro, o.Content, o.ClosingChime} {
			if t, ok := first[id]; id != "" && (!ok || o.Start.Before(t)) {
				first[id] = o.Start
			}
		}
	}
	wants := make([]content.Wanted, len(d.Content))
	for i, r := range d.Content {
		wants[i] = content.Wanted{ContentRef: r, Need: first[r.ID]}
	}
	slices.SortStableFunc(wants, func(x, y content.Wanted) int {
		switch {
		case !x.Need.IsZero() && !y.Need.IsZero():
			return x.Need.Compare(y.Need)
		case !x.Need.IsZero():
			return -1
		case !y.Need.IsZero():
			return 1
		}
		return 0
	})
	return wants
}

// applyDesired makes d the running desired state.
func (a *Agent) applyDesired(d *protocol.DesiredState) {
	if err := a.store.SetDesired(d); err != nil {
		// Run it anyway: playing on time matters more than remembering.
		a.log.Error("agent: desired state not stored", "version", d.Version, "err", err)
	}
	a.desired = d
	keep := make(map[string]bool, len(d.Occurrences))
	for _, o := range d.Occurrences {
		keep[o.ID] = true
	}
	before := a.clock.Now().Add(-progressRetention)
	if err := a.store.PruneProgress(keep, before); err != nil {
		a.log.Warn("agent: prune progress", "err", err)
	} else {
		for id, p := range a.progress {
			if !keep[id] && p.Start.Before(before) && p.Phase != PhaseStarted {
				delete(a.progress, id)
			}
		}
	}
	a.link.SetAreas(a.areas())
	a.wantContent()
	a.setVolume()
	a.mu.Lock()
	a.status.desiredVersion = d.Version
	a.status.config = d.Config
	a.mu.Unlock()
	signal(a.dirty)
	a.log.Info("agent: running desired state", "version", d.Version, "occurrences", len(d.Occurrences), "content", len(d.Content))
}

// encodeState wraps st for the state topic.
func (a *Agent) encodeState(st protocol.State) []byte {
	raw, err := protocol.Encode(protocol.TypeState, a.cred.Node, controllerAudience, 0, a.clock.Now(), st)
	if err != nil {
		// A State always fits; this is a programming error worth seeing.
		a.log.Error("agent: encode state", "err", err)
	}
	return raw
}

// watchOutput looks at the sound device every StatePoll while the agent
// can be restarted (Config.Restart) and its output can tell
// (CheckedOutput): a device that failed for good while nothing played (a
// USB sound card that dropped off between bulletins) restarts the agent
// then, so that the cluster says it has no sound device within StatePoll
// rather than when the next alert fails on it. A play on air finds the
// failure itself.
func (a *Agent) watchOutput(ctx context.Context) {
	out, ok := a.cfg.Output.(CheckedOutput)
	if !ok || a.cfg.Restart == nil || a.noSound != nil {
		return
	}
	t := time.NewTicker(a.cfg.StatePoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := out.Err()
		if err == nil {
			continue
		}
		select {
		case a.inLoop <- func() {
			if a.play != nil || ctx.Err() != nil {
				return // the play fails on it, and restarts the agent
			}
			a.flush()
			a.log.Error("agent: the sound device failed while nothing played; restarting the agent to open it again", "err", err)
			a.cfg.Restart(err)
		}:
		case <-ctx.Done():
			return
		}
	}
}

// publishStates publishes the retained state after changes, at most once
// per StateDebounce, and at least once per Heartbeat. The agent's own
// changes are signalled; the board's are signalled by a BoardWatcher or
// found by reading it every StatePoll. A change of the outbox count alone
// counts only from outboxStateMin.
func (a *Agent) publishStates(ctx context.Context) {
	var boardChanged <-chan struct{}
	if w, ok := a.cfg.Board.(BoardWatcher); ok {
		boardChanged = w.Changed()
	}
	poll := time.NewTicker(a.cfg.StatePoll)
	defer poll.Stop()
	rng := newRand() // this goroutine's own: a.rand is the main loop's
	heartbeat := time.NewTimer(heartbeatAfter(a.cfg.Heartbeat, rng))
	defer heartbeat.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	var pending <-chan time.Time
	lastBoard := a.cfg.Board.Snapshot()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.dirty:
		case <-a.outboxMoved:
			if !a.outboxWantsState() {
				continue
			}
		case <-boardChanged:
		case <-a.link.UnheardChanged():
		case <-heartbeat.C:
			heartbeat.Reset(heartbeatAfter(a.cfg.Heartbeat, rng))
		case <-poll.C:
			if b := a.cfg.Board.Snapshot(); reflect.DeepEqual(b, lastBoard) {
				continue
			}
		case <-pending:
			pending = nil
			if !a.link.Connected() {
				lastBoard = a.cfg.Board.Snapshot()
				continue // the link publishes the state itself on connect
			}
			// Built under the link's state order, so a state built on
			// connect a moment earlier cannot land after this one.
			err := a.link.PublishState(ctx, func() []byte {
				st := a.publishStatus()
				lastBoard = *st.Board
				return a.encodeState(st)
			})
			if err != nil {
				a.log.Debug("agent: state not published", "err", err)
				continue
			}
			heartbeat.Reset(heartbeatAfter(a.cfg.Heartbeat, rng)) // a state is a heartbeat
			continue
		}
		if pending == nil {
			// While an alert's reports are spread, so is the state.
			debounce.Reset(a.cfg.StateDebounce + a.stateDelay(a.clock.Now()))
			pending = debounce.C
		}
	}
}

// playDuration is how long n bytes of node audio play.
func playDuration(n int64) time.Duration { return nodeaudio.Duration(n) }
