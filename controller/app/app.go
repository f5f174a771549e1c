// Package app wires the controller together: the store, the audio library,
// the broker (embedded or external), the MQTT client, the scheduler and the
// HTTP API. controller/main.go parses flags into a Config and runs an App;
// tests start one on :0 ports with a temp data dir.
package app

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/bolt"
	capfeed "loaxa.vn/controller/cap"
	"loaxa.vn/controller/emergency"
	"loaxa.vn/controller/health"
	lhttp "loaxa.vn/controller/http"
	"loaxa.vn/controller/live"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/media"
	"loaxa.vn/controller/mqtt"
	"loaxa.vn/controller/release"
	"loaxa.vn/controller/schedule"
	"loaxa.vn/controller/tts"
	"loaxa.vn/controller/upstream"
	"loaxa.vn/controller/web"
	"loaxa.vn/internal/clock"
	"loaxa.vn/internal/gcpause"
	"loaxa.vn/protocol"
)

// The emergency service stores an alert's plan once the embedded broker
// has written the alert out (emergency.FanoutAwaiter).
var _ emergency.FanoutAwaiter = (*mqtt.Client)(nil)

// App is a running controller.
type App struct {
	Config Config
	Logger *slog.Logger
	// Out receives the one-time bootstrap admin password notice.
	Out io.Writer
	// Clock drives the scheduler (tests may fake it).
	Clock clock.Clock
	// EUID is the user the controller runs as, who must own the files of
	// its data directory (the "files" health check); nil is os.Geteuid.
	// Tests give another: run as root, the controller checks no owner.
	EUID func() int
	// Version is the controller's build version, recorded in backups.
	Version string
	// Starting, if set, hears how a long part of Open (a schema upgrade of
	// the store, chunk lists of old content) goes on, in a line for a
	// technician; main tells systemd the start is not hung.
	Starting func(status string)

	DB        *bolt.DB
	Media     *media.Library
	Broker    *mqtt.Broker // nil with an external broker
	MQTT      *mqtt.Client
	Scheduler *schedule.Scheduler
	Emergency *emergency.Service
	// LiveCalls keeps live call records and cuts calls.
	LiveCalls *live.Service
	HTTP      *lhttp.Server
	Signer    *protocol.Signer

	Areas         *bolt.AreaService
	Nodes         *bolt.NodeService
	Contents      *bolt.ContentService
	Announcements *bolt.AnnouncementService
	Deliveries    *bolt.DeliveryService
	Events        *bolt.EventService
	Users         *bolt.UserService
	Desired       *bolt.DesiredService
	Audit         *bolt.AuditService
	Keys          *bolt.KeyService
	Sessions      *bolt.SessionService
	Holidays      *bolt.HolidayService
	Standing      *bolt.StandingService
	Proposals     *bolt.ProposalService
	Releases      *bolt.ReleaseService
	Upstream      *bolt.UpstreamService
	// Rollouts drives agent rollouts.
	Rollouts    *release.Runner
	Emergencies *bolt.EmergencyService
	Alarms      *bolt.AlarmService
	// Health is the fleet health model: node timeouts, alarms, self-tests.
	Health *health.Monitor
	// CapFeeds polls the configured CAP feeds; nil without any.
	CapFeeds *capfeed.Poller

	tls    *serverTLS
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// retention purges old history; nil when Config.RetainDays is 0.
	retention *retention
	// owner checks that the data directory's files are the controller's.
	owner *dataOwner
}

// New returns an App for cfg; Open starts it.
func New(cfg Config, logger *slog.Logger) *App {
	if logger == nil {
		logger = slog.Default()
	}
	return &App{Config: cfg, Logger: logger, Out: os.Stdout, Clock: clock.Real{}, Version: "dev"}
}

// Open starts every part. Listeners are opened synchronously, so a busy
// port fails here. On error, whatever was started is closed again.
func (a *App) Open() (err error) {
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	cfg := a.Config
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	a.checkDataOwner()
	defer func() { err = a.explainOpen(err) }()

	a.DB = bolt.NewDB(filepath.Join(cfg.DataDir, "loaxa.db"))
	a.DB.Now = a.Clock.Now
	a.DB.Logger = a.Logger
	a.DB.StatusInterval = cfg.StatusFlush
	// No status flush while an alert fans out (bolt.DB.StatusHold).
	a.DB.StatusHold = gcpause.Held
	a.DB.Upgrading = func(u bolt.Upgrade) { a.starting(u.String()) }
	if err := a.DB.Open(); err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return fmt.Errorf("open store: the store in %s is in use: a controller is running on it (stop it, or give this one another --data): %w", cfg.DataDir, err)
		}
		return fmt.Errorf("open store: %w", err)
	}
	a.Areas = bolt.NewAreaService(a.DB)
	a.Nodes = bolt.NewNodeService(a.DB)
	a.Contents = bolt.NewContentService(a.DB)
	a.Announcements = bolt.NewAnnouncementService(a.DB)
	a.Deliveries = bolt.NewDeliveryService(a.DB)
	a.Events = bolt.NewEventService(a.DB)
	a.Users = bolt.NewUserService(a.DB)
	a.Desired = bolt.NewDesiredService(a.DB)
	a.Audit = bolt.NewAuditService(a.DB)
	a.Keys = bolt.NewKeyService(a.DB)
	a.Sessions = bolt.NewSessionService(a.DB)
	a.Holidays = bolt.NewHolidayService(a.DB)
	a.Standing = bolt.NewStandingService(a.DB)
	a.Proposals = bolt.NewProposalService(a.DB)
	a.Releases = bolt.NewReleaseService(a.DB)
	a.Emergencies = bolt.NewEmergencyService(a.DB)
	a.Alarms = bolt.NewAlarmService(a.DB)

	ctx := context.Background()
	admin, err := a.adminToCreate(ctx)
	if err != nil {
		return err
	}

	key, err := a.Keys.CurrentKey()
	if err != nil {
		return fmt.Errorf("signing key: %w", err)
	}
	floor, err := a.DB.SeqFloor()
	if err != nil {
		return fmt.Errorf("signing sequence: %w", err)
	}
	a.Signer = protocol.NewSigner("controller", key, floor, a.Clock.Now)
	if err := a.Signer.Reserve(seqBlock, a.DB.SaveSeqFloor); err != nil {
		return fmt.Errorf("signing sequence: %w", err)
	}

	a.Media = media.NewLibrary(cfg.DataDir)
	a.Media.MaxUploadBytes = cfg.MaxUploadBytes
	a.Media.Logger = a.Logger
	if err := a.Media.Open(); err != nil {
		return fmt.Errorf("open audio library: %w", err)
	}
	if err := a.chunkOldContent(ctx); err != nil {
		return err
	}

	tlsCfg, warning, err := loadTLS(cfg, a.Clock.Now, a.Logger)
	if err != nil {
		return err
	}
	if warning != "" {
		a.Logger.Warn("tls: " + warning)
	}
	if tlsCfg != nil && tlsCfg.enrolCA != "" {
		a.Logger.Info("tls: the certificate does not verify against the system's roots; enrolment answers carry the certificate boards pin (ca_pem) and their command reads it with --ca " + lhttp.EnrolCAFile)
	}
	a.tls = tlsCfg
	topics := protocol.NewTopics(cfg.TopicPrefix)
	var disconnect func(string)
	a.MQTT = mqtt.NewClient()
	a.MQTT.Topics = topics
	a.MQTT.Signer = a.Signer
	a.MQTT.NodeService = a.Nodes
	a.MQTT.EventService = a.Events
	a.MQTT.Now = a.Clock.Now
	a.MQTT.Logger = a.Logger
	if cfg.BrokerURL == "" {
		a.Broker = mqtt.NewBroker()
		a.Broker.Addr = cfg.MQTTAddr
		a.Broker.Topics = topics
		a.Broker.NodeService = a.Nodes
		a.Broker.AreaService = a.Areas
		a.Broker.Logger = a.Logger
		a.Broker.MaxConnecting = cfg.MQTTMaxConnecting
		if tlsCfg != nil {
			a.Broker.TLSConfig = tlsCfg.server
		}
		if err := a.Broker.Open(); err != nil {
			return err
		}
		// The embedded broker starts empty: nobody is connected, whatever
		// the store remembers from before the restart.
		if err := a.markAllOffline(ctx); err != nil {
			return err
		}
		// In-process: node messages and the controller's publishes
		// are routed by the broker without a connection in between.
		a.MQTT.Embedded = a.Broker
		disconnect = a.Broker.Disconnect
	} else {
		a.MQTT.BrokerURL = cfg.BrokerURL
		if tlsCfg != nil {
			a.MQTT.TLSConfig = tlsCfg.broker
		}
		// The publishing account the exported Mosquitto files hold; files
		// exported before it existed refuse it, and the client then
		// publishes on its one connection.
		if user, _, err := brokerAccount(cfg.BrokerURL); err == nil {
			a.MQTT.PublishUsername = user + mqtt.PublishUsernameSuffix
		}
	}
	a.Emergency = emergency.NewService()
	a.Emergency.Store = a.Emergencies
	a.Emergency.Areas = a.Areas
	a.Emergency.Nodes = a.Nodes
	a.Emergency.Contents = a.Contents
	a.Emergency.Media = a.Media
	a.Emergency.Deliveries = a.Deliveries
	a.Emergency.Alarms = a.Alarms
	a.Emergency.Messenger = a.MQTT // a FanoutAwaiter (below)
	a.Emergency.Clock = a.Clock
	a.Emergency.Logger = a.Logger
	if cfg.Probing != (emergency.Probing{}) {
		a.Emergency.Probing = cfg.Probing
	}
	if err := a.Emergency.Open(ctx); err != nil {
		return fmt.Errorf("emergency: %w", err)
	}
	a.LiveCalls = live.NewService()
	a.LiveCalls.Store = bolt.NewLiveCallService(a.DB)
	a.LiveCalls.Nodes, a.LiveCalls.Deliveries, a.LiveCalls.Audit = a.Nodes, a.Deliveries, a.Audit
	a.LiveCalls.Clock, a.LiveCalls.Logger, a.LiveCalls.Messenger, a.LiveCalls.Areas = a.Clock, a.Logger, a.MQTT, a.MQTT
	a.LiveCalls.Emergencies = a.Emergencies
	a.LiveCalls.Tree = a.Areas
	// Calls a previous run left on air are closed before any new one, and
	// before the nodes come online: those that missed the end of a call
	// ended lately get it then.
	if err := a.LiveCalls.Open(ctx); err != nil {
		return err
	}
	// Set before the client opens: its workers read it.
	a.MQTT.OnOnline = a.LiveCalls.NodeOnline
	a.MQTT.OnEvents = func(node, epoch string, events []protocol.Event) {
		a.Emergency.Events(node, epoch, events)
		a.LiveCalls.Events(node, events)
	}
	a.MQTT.OnSalvaged = func(node string, events []protocol.Event) {
		a.Emergency.Salvaged(node, events)
		a.LiveCalls.Events(node, events)
	}
	a.MQTT.OnProbes = a.Emergency.ProbeReceipts
	a.MQTT.OnEpoch = a.Emergency.Epoch

	a.Health = health.NewMonitor()
	a.Health.Config = cfg.Health
	a.Health.Clock = a.Clock
	a.Health.Nodes = a.Nodes
	a.Health.Alarms = a.Alarms
	a.Health.Areas = a.Areas
	a.Health.Tests = a.Alarms
	a.Health.Messenger = a.MQTT
	a.Health.Logger = a.Logger
	a.Health.SetSigningKey(protocol.KeyID(key.Public().(ed25519.PublicKey)))
	if err := a.Health.Open(ctx); err != nil {
		return err
	}
	a.MQTT.Observer = a.Health
	if err := a.MQTT.Open(); err != nil {
		return err
	}

	a.Scheduler = schedule.NewScheduler()
	a.Scheduler.AreaService = a.Areas
	a.Scheduler.NodeService = a.Nodes
	a.Scheduler.AnnouncementService = a.Announcements
	a.Scheduler.ContentService = a.Contents
	a.Scheduler.DeliveryService = a.Deliveries
	a.Scheduler.DesiredService = a.Desired
	a.Scheduler.Messenger = a.MQTT
	a.Scheduler.KeyService = a.Keys
	// A new or activated key changes what every desired state says to
	// trust, and an activated one what signs it.
	a.Keys.Changed = func(current ed25519.PrivateKey) {
		a.Signer.SetKey(current)
		a.Health.SetSigningKey(protocol.KeyID(current.Public().(ed25519.PublicKey)))
		a.Scheduler.Changed()
	}
	a.Scheduler.SessionService = a.Sessions
	a.Scheduler.HolidayService = a.Holidays
	a.Scheduler.ProposalService = a.Proposals
	a.Scheduler.StandingService = a.Standing
	a.Scheduler.AlwaysContent = a.Emergency.ChimeIDs
	a.Scheduler.Clock = a.Clock
	a.Scheduler.Horizon = cfg.Horizon
	if cfg.DesiredBehindAfter > 0 {
		a.Scheduler.BehindAfter = cfg.DesiredBehindAfter
	}
	if cfg.ScheduleInterval > 0 {
		a.Scheduler.Interval = cfg.ScheduleInterval
	}
	a.Scheduler.Logger = a.Logger
	a.Scheduler.Alarms = a.Health

	a.HTTP = lhttp.NewServer()
	a.HTTP.Addr = cfg.HTTPAddr
	a.HTTP.PublicURL = cfg.PublicURL
	a.HTTP.BrokerURL = a.publicBroker()
	a.HTTP.TopicPrefix = topics.Prefix
	a.HTTP.KeyService = a.Keys
	a.HTTP.TimeSigner = a.Signer
	a.HTTP.MaxUploadBytes = cfg.MaxUploadBytes
	a.HTTP.PasswordCost = cfg.PasswordCost
	a.HTTP.Now = a.Clock.Now
	a.HTTP.Logger = a.Logger
	a.HTTP.AreaService = a.Areas
	a.HTTP.NodeService = a.Nodes
	a.HTTP.ContentService = a.Contents
	a.HTTP.MediaService = a.Media
	speech := &tts.Espeak{TempDir: a.Media.TempDir(), Logger: a.Logger}
	if err := speech.Check(); err != nil {
		// Said at start, not first to an officer typing an alert.
		a.Logger.Warn("text-to-speech: espeak-ng is not installed, or not visible to the controller: typed emergency alerts and typed notices are refused (503), and CAP alerts without a kept recording are held, until it is (apt-get install espeak-ng); recordings play as ever", "err", err)
	}
	a.HTTP.SpeechEngine = speech
	a.HTTP.AnnouncementService = a.Announcements
	a.HTTP.DeliveryService = a.Deliveries
	a.HTTP.EventService = a.Events
	a.HTTP.UserService = a.Users
	a.HTTP.DesiredService = a.Desired
	a.HTTP.Scheduler = changes{a.Scheduler, a.Health}
	a.HTTP.AuditService = a.Audit
	a.HTTP.Disconnect = disconnect
	a.HTTP.NodeMoved = a.nodeMoved
	if tlsCfg != nil {
		a.HTTP.TLSConfig = tlsCfg.server
		a.HTTP.ControllerCA = tlsCfg.pin
		a.HTTP.EnrolCA = tlsCfg.enrolCA
	}
	if cfg.BrokerURL != "" {
		a.HTTP.BrokerFiles = func(ctx context.Context) (map[string]string, []string, error) {
			f, err := mosquittoFiles(ctx, cfg, a.Nodes, a.Areas)
			if err != nil {
				return nil, nil, err
			}
			return map[string]string{MosquittoPasswdFile: f.Passwd, MosquittoACLFile: f.ACL, MosquittoConfFile: f.Conf}, f.Missing, nil
		}
	}
	a.HTTP.SessionService = a.Sessions
	a.HTTP.HolidayService = a.Holidays
	a.HTTP.ProposalService = a.Proposals
	a.HTTP.StandingService = a.Standing
	a.HTTP.AlwaysContent = a.Emergency.ChimeIDs
	a.HTTP.ProgrammeService = a.Scheduler
	a.HTTP.Backup = a.writeBackup
	a.Rollouts = release.NewRunner()
	a.Rollouts.Releases = a.Releases
	a.Rollouts.Nodes = a.Nodes
	a.Rollouts.Events = a.Events
	a.Rollouts.Messenger = a.MQTT
	a.Rollouts.Audit = a.Audit
	a.Rollouts.Now = a.Clock.Now
	a.Rollouts.Logger = a.Logger
	if cfg.RolloutNodeTimeout > 0 {
		a.Rollouts.NodeTimeout = cfg.RolloutNodeTimeout
	}
	if cfg.RolloutInterval > 0 {
		a.Rollouts.Interval = cfg.RolloutInterval
	}
	a.HTTP.ReleaseService = a.Releases
	a.HTTP.ReleaseArchives = &release.Archives{Dir: filepath.Join(cfg.DataDir, "releases")}
	a.HTTP.Rollouts = a.Rollouts
	a.Upstream = bolt.NewUpstreamService(a.DB)
	link := &upstreamLink{source: &upstream.Source{Areas: a.Areas, Nodes: a.Nodes, Deliveries: a.Deliveries, Announcements: a.Announcements, System: cfg.SystemID}}
	if cfg.UpstreamURL != "" {
		link.pusher = &upstream.Pusher{URL: cfg.UpstreamURL, Key: cfg.UpstreamKey, Every: cfg.UpstreamEvery, Source: link.source,
			Outbox: a.Upstream, Now: a.Clock.Now, Logger: a.Logger.With("part", "upstream")}
	}
	a.HTTP.Upstream = link
	a.HTTP.UpstreamSystems = a.Upstream
	a.HTTP.EmergencyService = a.Emergency
	a.HTTP.CapStore = bolt.NewCapService(a.DB)
	ui, err := web.Handler(web.Options{Refresh: cfg.ConsoleRefresh})
	if err != nil {
		return err
	}
	a.HTTP.UI = ui
	a.HTTP.HealthService = a.Health
	a.HTTP.AlarmService = a.Alarms
	a.HTTP.SelfTestService = a.Alarms
	a.HTTP.Messenger = a.MQTT
	a.HTTP.Live = a.MQTT
	a.HTTP.LiveCalls = a.LiveCalls
	a.HTTP.Checks = a.healthChecks()
	if len(cfg.CapFeeds) > 0 {
		a.CapFeeds = &capfeed.Poller{URLs: cfg.CapFeeds, Interval: cfg.CapPoll, Logger: a.Logger, AlertHosts: cfg.CapAlertHosts,
			Handle: func(ctx context.Context, raw []byte, feed string) error {
				_, err := a.HTTP.ReceiveCapFeed(ctx, raw, feed)
				return err
			}}
		a.HTTP.CapFeeds = a.CapFeeds
	}
	if cfg.RetainDays > 0 {
		a.retention = newRetention(a.DB, cfg.RetainDays, a.Clock, a.Logger)
	}
	a.HTTP.Metrics = a.metrics()
	if err := a.HTTP.Open(); err != nil {
		return err
	}
	// The first admin is made once everything listens: a start that
	// failed before (the MQTT port taken) must not leave an admin whose
	// one-time password was printed above the error.
	if err := a.createAdmin(ctx, admin); err != nil {
		return err
	}

	runCtx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.wg.Add(3)
	if link.pusher != nil {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			_ = link.pusher.Run(runCtx)
		}()
	}
	go func() {
		defer a.wg.Done()
		_ = a.Scheduler.Run(runCtx)
	}()
	go func() {
		defer a.wg.Done()
		_ = a.Rollouts.Run(runCtx)
	}()
	go func() {
		defer a.wg.Done()
		_ = a.Health.Run(runCtx)
	}()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		_ = a.Emergency.Run(runCtx)
	}()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		// The nodes that stayed connected to the broker through a crash
		// get the end of the calls it left on air.
		if a.MQTT.WaitConnected(runCtx) == nil {
			a.LiveCalls.EndLeftOpen(runCtx)
		}
	}()
	if a.CapFeeds != nil {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			_ = a.CapFeeds.Run(runCtx)
		}()
	}
	if a.retention != nil {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.retention.Run(runCtx)
		}()
	}
	a.Logger.Info("controller started", a.listeners()...)
	return nil
}

// listeners returns the start-up log's attributes: every address the
// controller is bound to, with the scheme that says whether it is TLS
// (http or https; the embedded broker's tcp or ssl), the broker its
// client uses and the data directory.
func (a *App) listeners() []any {
	scheme := "http://"
	if a.tls != nil {
		scheme = "https://"
	}
	attrs := []any{"http", scheme + a.HTTP.ListenAddr()}
	if a.Broker != nil {
		scheme = "tcp://"
		if a.tls != nil {
			scheme = "ssl://"
		}
		attrs = append(attrs, "mqtt", scheme+a.Broker.ListenAddr())
	}
	return append(attrs, "broker", a.MQTT.Broker(), "data", a.Config.DataDir)
}

// changes tells several parts that areas, nodes or announcements changed:
// the scheduler recompiles, the health model reloads its node list.
type changes []loaxa.Scheduler

func (c changes) Changed() {
	for _, s := range c {
		s.Changed()
	}
}

// metrics registers every part's metrics and returns the /metrics handler.
func (a *App) metrics() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(a.HTTP.Collectors()...)
	reg.MustRegister(a.MQTT.Collectors()...)
	if a.Broker != nil {
		reg.MustRegister(a.Broker.Collectors()...)
	}
	reg.MustRegister(a.Health.Collectors()...)
	reg.MustRegister(a.Scheduler.Collectors()...)
	if a.CapFeeds != nil {
		reg.MustRegister(a.CapFeeds.Collectors()...)
	}
	if a.retention != nil {
		reg.MustRegister(a.retention.Collectors()...)
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "loaxa_store_bytes", Help: "Size of the controller's store file.",
	}, func() float64 {
		n, err := a.DB.Size()
		if err != nil {
			return -1
		}
		return float64(n)
	}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "loaxa_store_volume_free_bytes", Help: "Bytes free on the volume of the controller's data directory (-1 if not measured).",
	}, func() float64 {
		free, ok := volumeFree(a.Config.DataDir)
		if !ok {
			return -1
		}
		return float64(free)
	}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "loaxa_store_node_status_unflushed", Help: "Nodes whose status changed in memory and is not written to the store yet.",
	}, func() float64 { return float64(a.DB.UnflushedStatuses()) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "loaxa_store_node_status_flush_failures_total", Help: "Writes of node statuses to the store that failed (each is retried at the next interval).",
	}, func() float64 { return float64(a.DB.StatusFlushFailures()) }))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(a.Logger.Handler(), slog.LevelWarn)})
}

// healthChecks are what GET /api/v1/health reports on: the broker link,
// the store, the free space on its volume, the owner of the data
// directory's files, the scheduler's and the health sweep's lag.
func (a *App) healthChecks() []lhttp.HealthCheck {
	lag := func(last time.Time, every time.Duration, what string) (string, error) {
		if last.IsZero() {
			return "not run yet", nil
		}
		d := a.Clock.Now().Sub(last)
		detail := fmt.Sprintf("last run %s ago", d.Round(time.Millisecond))
		if d > 3*every+time.Minute {
			return detail, fmt.Errorf("%s has not run for %s (every %s)", what, d.Round(time.Second), every)
		}
		return detail, nil
	}
	return []lhttp.HealthCheck{
		{Name: "broker", Check: func(ctx context.Context) (string, error) {
			if !a.MQTT.Connected() {
				return "", fmt.Errorf("not connected to the broker at %s", a.MQTT.Broker())
			}
			return "connected", nil
		}},
		{Name: "store", Check: func(ctx context.Context) (string, error) {
			n, err := a.DB.Size()
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%d bytes", n), nil
		}},
		{Name: "disk", Check: func(ctx context.Context) (string, error) {
			free, ok := volumeFree(a.Config.DataDir)
			if !ok {
				return "free space not measured on this system", nil
			}
			detail := fmt.Sprintf("%d MiB free on the store's volume", free>>20)
			if free < a.Config.StoreMinFree {
				return detail, fmt.Errorf("only %d MiB free on the store's volume, under %d MiB: free space now; when it is full the controller can neither store reports nor send alerts (an alert is recorded before it goes out)",
					free>>20, a.Config.StoreMinFree>>20)
			}
			return detail, nil
		}},
		{Name: "files", Check: func(ctx context.Context) (string, error) {
			// Walked again only while something was found, at most once
			// every ownersRecheck, so that a chown clears it without a
			// restart, a clean directory costs nothing, and asking in a
			// loop does not walk the disk in a loop.
			found, err := a.owner.current(a.Clock.Now())
			if err != nil {
				return "", errOwnersUnchecked
			}
			if len(found) > 0 {
				return "", errors.New(a.owner.summary(found))
			}
			return a.owner.detail(), nil
		}},
		{Name: "scheduler", Check: func(ctx context.Context) (string, error) {
			detail, err := lag(a.Scheduler.LastRun(), a.Scheduler.Interval, "the scheduler")
			// Desired states the broker has not accepted are retried; they
			// are a warning per node (alarm desired-undelivered), not a
			// failure of the controller.
			if n, since := a.Scheduler.Undelivered(); n > 0 {
				detail += fmt.Sprintf("; %d desired states not accepted by the broker yet (oldest since %s), retrying",
					n, since.UTC().Format(time.RFC3339))
			}
			return detail, err
		}},
		{Name: "health", Check: func(ctx context.Context) (string, error) {
			return lag(a.Health.Status().LastSweep, a.Config.Health.Sweep, "the health sweep")
		}},
	}
}

// publicBroker returns the broker URL for node credentials: the configured
// one, the external broker without its credentials, or "" to let the HTTP
// layer derive tcp://<request host>:<embedded broker port>.
func (a *App) publicBroker() string {
	if a.Config.PublicBroker != "" {
		return a.Config.PublicBroker
	}
	if a.Config.BrokerURL != "" {
		u, err := url.Parse(a.Config.BrokerURL)
		if err == nil {
			u.User = nil
			return u.String()
		}
		return ""
	}
	_, port, err := net.SplitHostPort(a.Broker.ListenAddr())
	if err != nil {
		return ""
	}
	scheme := "tcp://"
	if a.tls != nil {
		scheme = "ssl://"
	}
	if a.Config.PublicURL != "" {
		if u, err := url.Parse(a.Config.PublicURL); err == nil && u.Hostname() != "" {
			return scheme + net.JoinHostPort(u.Hostname(), port)
		}
	}
	return scheme + "{host}:" + port
}

// chunkOldContent records the chunk root of content stored by a build
// that did not make chunk lists, so that nodes may play it as it
// downloads (docs/content.md). Content whose audio is missing keeps none:
// its downloads fail anyway.
func (a *App) chunkOldContent(ctx context.Context) error {
	cs, err := a.Contents.FindContents(ctx, loaxa.ContentFilter{})
	if err != nil {
		return fmt.Errorf("chunk lists: %w", err)
	}
	done := 0
	for i, c := range cs {
		if c.Chunks != "" {
			continue
		}
		a.starting(fmt.Sprintf("chunk lists of content stored before: %d of %d contents", i, len(cs)))
		list, err := a.Media.ChunkList(ctx, c.ID)
		if loaxa.ErrorCode(err) == loaxa.ENotFound {
			a.Logger.Warn("content has no audio in the library; no chunk list", "content", c.ID, "title", c.Title)
			continue
		} else if err != nil {
			return fmt.Errorf("chunk lists: %w", err)
		}
		if err := a.Contents.SetContentChunks(ctx, c.ID, protocol.ChunkRoot(list)); err != nil {
			return fmt.Errorf("chunk lists: %w", err)
		}
		done++
	}
	if done > 0 {
		a.Logger.Info("made chunk lists of content stored before", "content", done)
	}
	return nil
}

// starting passes the progress of a long part of Open to Starting.
func (a *App) starting(status string) {
	if a.Starting != nil {
		a.Starting(status)
	}
}

// nodeMoved carries a node's move to another area (PATCH /nodes/{id})
// to what keeps its area apart from the store: the embedded broker's
// grant of its connection (its new area's topics instead of the old
// one's), the alerts on air in its new area, and the live calls on air
// in its old and new areas (the old one's ends on it, the new one's it
// joins). The desired state (its new area chain, bulletins and sessions)
// and the health monitor follow from the API's Changed. An external
// broker's ACL is a file the officer exports again (the API's answer says
// so).
func (a *App) nodeMoved(ctx context.Context, node, from, to string) {
	if a.Broker != nil {
		if err := a.Broker.Regrant(ctx, node); err != nil {
			a.Logger.Error("broker: a moved node keeps its old area's topics until it reconnects", "node", node, "from", from, "to", to, "err", err)
		}
	}
	if err := a.Emergency.NodeMoved(ctx, node, to); err != nil {
		a.Logger.Error("emergency: a moved node is not sent its new area's alert on air", "node", node, "from", from, "to", to, "err", err)
	}
	if err := a.LiveCalls.NodeMoved(ctx, node, from, to); err != nil {
		a.Logger.Error("live calls: a moved node is not sent its new area's calls on air, or its old area's end", "node", node, "from", from, "to", to, "err", err)
	}
}

func (a *App) markAllOffline(ctx context.Context) error {
	nodes, err := a.Nodes.FindNodes(ctx, loaxa.NodeFilter{State: loaxa.NodeOnline})
	if err != nil {
		return fmt.Errorf("reset node states: %w", err)
	}
	now := a.Clock.Now()
	for _, n := range nodes {
		err := a.Nodes.UpdateNodeStatus(ctx, n.ID, func(s *loaxa.NodeStatus) {
			s.State, s.Since, s.Playing = loaxa.NodeOffline, now, nil
		})
		if err != nil {
			return fmt.Errorf("reset node states: %w", err)
		}
	}
	return nil
}

// firstAdmin is the user admin a store without users gets.
type firstAdmin struct {
	password  string
	generated bool // not LOAXA_ADMIN_PASSWORD's: printed once
}

// adminToCreate returns the admin to create when the store has no users
// (nil if it has), with LOAXA_ADMIN_PASSWORD, checked as the API checks a
// user's password, or a generated one.
func (a *App) adminToCreate(ctx context.Context) (*firstAdmin, error) {
	users, err := a.Users.FindUsers(ctx)
	if err != nil {
		return nil, fmt.Errorf("bootstrap admin: %w", err)
	}
	if len(users) > 0 {
		return nil, nil
	}
	if p := a.Config.AdminPassword; p != "" {
		if err := loaxa.CheckPassword("LOAXA_ADMIN_PASSWORD", p); err != nil {
			// Read in the journal, not through the API: the rule in
			// words and the next step, not the coded error's Go form.
			return nil, fmt.Errorf("%s Set another (%d characters to %d bytes), or unset it to have one generated and printed once, and start the controller again",
				loaxa.ErrorMessage(err), loaxa.MinPasswordLen, loaxa.MaxPasswordBytes)
		}
		return &firstAdmin{password: p}, nil
	}
	return &firstAdmin{password: loaxa.NewSecret()[:20], generated: true}, nil
}

// createAdmin creates admin, if any, and prints a generated password once.
func (a *App) createAdmin(ctx context.Context, admin *firstAdmin) error {
	if admin == nil {
		return nil
	}
	hash, err := loaxa.HashPassword(admin.password, a.Config.PasswordCost)
	if err != nil {
		return fmt.Errorf("bootstrap admin: %w", err)
	}
	if err := a.Users.CreateUser(ctx, &loaxa.User{Username: "admin", Role: loaxa.RoleAdmin, PasswordHash: hash}); err != nil {
		return fmt.Errorf("bootstrap admin: %w", err)
	}
	if admin.generated {
		fmt.Fprintf(a.Out, "\nCreated user \"admin\" with password: %s\nIt is shown only this once; set LOAXA_ADMIN_PASSWORD to choose it instead.\n\n", admin.password)
	} else {
		a.Logger.Info("created user admin with the password from LOAXA_ADMIN_PASSWORD")
	}
	return nil
}

// seqBlock is how many message sequence numbers the signer reserves in the
// store at a time (protocol.Signer.Reserve): one synced write every 65,536
// signed messages, and as many numbers skipped at most at each restart, in
// a sequence that starts from the clock in microseconds.
const seqBlock = 1 << 16

// Close stops everything in the reverse order of Open and closes the store
// last, so in-flight requests and messages finish writing.
func (a *App) Close() error {
	var errs []error
	if a.HTTP != nil {
		errs = append(errs, a.HTTP.Close())
	}
	if a.cancel != nil {
		a.cancel()
	}
	a.wg.Wait()
	if a.LiveCalls != nil {
		a.LiveCalls.Close() // its sends to nodes back online
	}
	if a.MQTT != nil {
		errs = append(errs, a.MQTT.Close())
	}
	if a.Broker != nil {
		errs = append(errs, a.Broker.Close())
	}
	if a.DB != nil {
		errs = append(errs, a.DB.Close())
	}
	return errors.Join(errs...)
}

// WaitReady blocks until the MQTT client is connected, or ctx ends.
func (a *App) WaitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return a.MQTT.WaitConnected(ctx)
}
