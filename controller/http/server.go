// Package http is the controller's public JSON API under /api/v1, built on
// the domain services of package loaxa. docs/api.md describes every route.
//
// Every route is declared once in the route table (Server.Routes) with the
// loaxa.Action it needs; one wrapper authenticates the caller and checks
// that action with loaxa.Authorize before the handler runs, so the table is
// the whole access policy apart from per-area checks, which handlers make
// with the same loaxa.Authorize once they know the area.
package http

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"loaxa.vn/controller/cap"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// Defaults for Server settings.
const (
	// DefaultMaxUploadBytes is the largest audio upload accepted.
	DefaultMaxUploadBytes = 200 << 20
	// ShutdownTimeout is how long Close waits for requests in flight.
	ShutdownTimeout = 10 * time.Second
	// TokenLifetime is how long a bearer token from POST /api/v1/auth/token lasts.
	TokenLifetime = 12 * time.Hour
)

// Server serves the public HTTP API. Set the fields, then call Open.
type Server struct {
	// Addr is the listen address, e.g. ":8080" or "127.0.0.1:0".
	Addr string
	// PublicURL is the controller base URL written into credentials
	// documents; "" derives it from the request (scheme and Host).
	PublicURL string
	// BrokerURL is the broker URL written into credentials documents. ""
	// means tcp://<controller host>:1883; a "{host}" in it is replaced by
	// the controller host, so the embedded broker's port can be given
	// without knowing the name nodes reach the controller by.
	BrokerURL string
	// TopicPrefix is written into credentials documents; "" is
	// protocol.DefaultPrefix.
	TopicPrefix string
	// ControllerKeys are the signing keys nodes trust, when there is no
	// KeyService (which then says).
	ControllerKeys []protocol.PublicKey
	// KeyService keeps the controller's signing keys and rotates them.
	KeyService loaxa.KeyService
	// TimeSigner signs the answers to GET /api/v1/time that carry a
	// node's nonce (protocol.TimeProof), with the key nodes trust; nil:
	// the answers are unsigned.
	TimeSigner *protocol.Signer
	// ControllerCA is the PEM certificate(s) nodes pin to verify the
	// controller over TLS, written into credentials documents.
	ControllerCA string
	// EnrolCA is the PEM a board must trust to reach the controller while
	// it enrols, when the controller's certificate does not verify against
	// the system's roots (a province's own CA, a self-signed certificate):
	// enrolment answers then carry it and print their command with
	// --ca EnrolCAFile. "" when the system's roots suffice, or without TLS.
	EnrolCA string
	// TLSConfig, when set, makes Open serve HTTPS.
	TLSConfig *tls.Config
	// EnrolmentTTL is how long enrolment codes last (0:
	// DefaultEnrolmentTTL).
	EnrolmentTTL time.Duration
	// Disconnect cuts a node's broker connection at once, after its
	// credentials were rotated or revoked; nil with an external broker.
	Disconnect func(node string)
	// NodeMoved tells the parts that keep a node's area of a move (PATCH
	// /nodes/{id} with another area), after it is stored: the embedded
	// broker grants the node its new area's topics instead of the old
	// one's, and an emergency on air in the new area is sent to it. nil:
	// nobody to tell (tests of the API alone).
	NodeMoved func(ctx context.Context, node, from, to string)
	// BrokerFiles makes an external broker's password and ACL files (file
	// name → content) and lists nodes left out; nil with the embedded one.
	BrokerFiles func(ctx context.Context) (files map[string]string, missing []string, err error)
	// Upstream exports to the province's information-source system;
	// UpstreamSystems are the systems that send bulletins in. nil turns
	// the routes off.
	Upstream        Upstream
	UpstreamSystems loaxa.UpstreamSystemService
	// ReleaseService, ReleaseArchives and Rollouts host agent releases
	// and roll them out; nil turns the routes off.
	ReleaseService  loaxa.ReleaseService
	ReleaseArchives ReleaseArchives
	Rollouts        RolloutRunner
	// Backup streams a backup archive of the store and content (GET
	// /api/v1/backup); nil answers that backups are off.
	Backup backupFunc
	// MaxUploadBytes limits audio uploads.
	MaxUploadBytes int64
	// PasswordCost is the bcrypt cost of the passwords the server sets,
	// and of the decoy a sign-in as an unknown user is checked against
	// (0: bcrypt.DefaultCost). Tests lower it: under the race detector one
	// bcrypt at the default cost takes about a second of CPU.
	PasswordCost int
	// LoginLimits bound failed sign-ins and enrolments; zero is
	// DefaultLoginLimits.
	LoginLimits LoginLimits
	// Now tells the time (tests fake it).
	Now    func() time.Time
	Logger *slog.Logger

	AreaService         loaxa.AreaService
	NodeService         loaxa.NodeService
	ContentService      loaxa.ContentService
	MediaService        loaxa.MediaService
	AnnouncementService loaxa.AnnouncementService
	DeliveryService     loaxa.DeliveryService
	EventService        loaxa.EventService
	UserService         loaxa.UserService
	DesiredService      loaxa.DesiredService
	// Scheduler is told after every change that affects schedules.
	Scheduler loaxa.Scheduler
	// SpeechEngine reads text out for POST /api/v1/content/tts; nil
	// answers that route 503.
	SpeechEngine loaxa.SpeechEngine
	// SessionService, HolidayService, ProposalService and ProgrammeService
	// serve sessions, the holiday calendar, proposals from above, the
	// programme and conflict checks; nil answers those routes with
	// unavailable.
	SessionService   loaxa.SessionService
	HolidayService   loaxa.HolidayService
	ProposalService  loaxa.ProposalService
	ProgrammeService loaxa.ProgrammeService
	// StandingService keeps the content nodes keep at all times (nil:
	// the standing routes answer 503).
	StandingService loaxa.StandingService
	// AlwaysContent, if set, names the content every node keeps (the
	// emergency chimes), for GET /content/standing.
	AlwaysContent func(ctx context.Context) ([]string, error)
	// AuditService records state-changing actions (see Server.audit).
	AuditService loaxa.AuditService
	// EmergencyService sends and follows emergencies; nil answers those
	// routes with unavailable.
	EmergencyService loaxa.EmergencyService
	// CapStore keeps received CAP alerts; nil (or no EmergencyService)
	// answers the CAP routes with unavailable.
	CapStore loaxa.CapStore
	// CapFeeds reports how the polls of the configured CAP feeds went
	// (GET /api/v1/cap/feeds); nil when none are configured.
	CapFeeds interface{ Status() []cap.FeedStatus }
	// UI serves every path outside /api/ (the web console, package
	// controller/web); nil answers them 404 like unknown API routes.
	UI http.Handler
	// HealthService, AlarmService and SelfTestService serve fleet health
	// (alarms, area health, self-tests); nil answers those routes with
	// unavailable. Messenger sends remote commands.
	HealthService   loaxa.HealthService
	AlarmService    loaxa.AlarmService
	SelfTestService loaxa.SelfTestService
	Messenger       loaxa.Messenger
	// Live publishes live calls (GET /api/v1/live); nil answers that
	// route with unavailable.
	Live loaxa.LiveMessenger
	// LiveCalls keeps the records of live calls and cuts them; nil
	// answers the live routes with unavailable.
	LiveCalls loaxa.LiveCallService
	// Checks are the controller's parts GET /api/v1/health reports on.
	Checks []HealthCheck
	// Metrics serves GET /metrics (Prometheus text format); nil answers
	// 404. Collectors has the server's own metrics to register.
	Metrics http.Handler

	routes  []Route
	limits  limiter
	latency *prometheus.HistogramVec
	// decoy is the hash a sign-in as an unknown user is checked against
	// (auth.go), made once.
	decoy decoyHash
	// closing is closed when Close begins, so long-lived streams end.
	closing chan struct{}
	// reports shares the reports the emergency streams rebuild.
	reports reportShare
	// resume remembers the reports clients were given, for streams to
	// begin from.
	resume      resumePoints
	closingOnce sync.Once
	// lives counts live calls on air (hijacked connections, which
	// http.Server.Shutdown does not wait for); liveMu orders their start
	// against closing.
	liveMu sync.Mutex
	lives  sync.WaitGroup
	// liveRuns holds what each call on air here has sent so far, by call
	// id (*liveRun): the list and report show it while the call runs.
	liveRuns sync.Map
	// inbound holds one inbound bulletin id at a time (upstream.go): a
	// resend that arrives while the first is still handled waits for it.
	inbound keyLocks
	// releaseUploads takes one release upload at a time from storing its
	// archive to registering it, so that a refused one removes only an
	// archive no release names (release.go).
	releaseUploads sync.Mutex
	mux            *http.ServeMux
	handler        http.Handler

	mu       sync.Mutex
	listener net.Listener
	server   *http.Server
	served   chan struct{} // closed when Serve returns
}

// NewServer returns a server with defaults and its routes registered.
func NewServer() *Server {
	s := &Server{
		MaxUploadBytes: DefaultMaxUploadBytes,
		Now:            time.Now,
		Logger:         slog.New(slog.DiscardHandler),
		mux:            http.NewServeMux(),
		closing:        make(chan struct{}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "loaxa_http_request_duration_seconds",
			Help:    "API request latency by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"method", "route"}),
	}
	s.routes = s.routeTable()
	for _, rt := range s.routes {
		s.mux.Handle(rt.Method+" "+rt.Path, s.wrap(rt))
	}
	s.handler = s.logRequests(compress(http.HandlerFunc(s.serveMux)))
	return s
}

// Collectors returns the server's own metrics (request latency by route)
// for a Prometheus registry.
func (s *Server) Collectors() []prometheus.Collector { return []prometheus.Collector{s.latency} }

// handleMetrics answers GET /metrics. It is public, like /api/v1/health:
// scrapers rarely carry tokens, and the metrics are counts, not content.
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) error {
	if s.Metrics == nil {
		return loaxa.Errorf(loaxa.ENotFound, "This controller serves no metrics.")
	}
	s.Metrics.ServeHTTP(w, r)
	return nil
}

// Handler returns the API as an http.Handler, for tests and for mounting
// without Open.
func (s *Server) Handler() http.Handler { return s.handler }

// Routes returns the route table: every endpoint and the action it needs.
func (s *Server) Routes() []Route {
	out := make([]Route, len(s.routes))
	copy(out, s.routes)
	return out
}

// Open listens on Addr and serves in the background. The listener is
// opened here, so a busy port fails at once.
func (s *Server) Open() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listener != nil {
		return errors.New("http server: already open")
	}
	if err := s.check(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("http server: listen on %s: %w", s.Addr, err)
	}
	if s.TLSConfig != nil {
		ln = tls.NewListener(ln, s.TLSConfig)
	}
	s.listener = ln
	s.server = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		// No ReadTimeout or WriteTimeout: uploads and audio downloads over a
		// slow 3G link may take many minutes; idle connections still end.
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(s.logger().Handler(), slog.LevelWarn),
	}
	s.served = make(chan struct{})
	go func(srv *http.Server, done chan struct{}) {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger().Error("http server stopped", "err", err)
		}
	}(s.server, s.served)
	s.logger().Info("http server listening", "addr", ln.Addr().String())
	return nil
}

// check reports a server that would fail on its first request: built
// without NewServer, or with a service left unset.
func (s *Server) check() error {
	if s.handler == nil {
		return errors.New("http server: create it with NewServer")
	}
	var missing []string
	for name, set := range map[string]bool{
		"AreaService": s.AreaService != nil, "NodeService": s.NodeService != nil,
		"ContentService": s.ContentService != nil, "MediaService": s.MediaService != nil,
		"AnnouncementService": s.AnnouncementService != nil, "DeliveryService": s.DeliveryService != nil,
		"EventService": s.EventService != nil, "UserService": s.UserService != nil,
		"DesiredService": s.DesiredService != nil, "Scheduler": s.Scheduler != nil,
		"AuditService": s.AuditService != nil, "KeyService": s.KeyService != nil,
	} {
		if !set {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("http server: not set: %s", strings.Join(missing, ", "))
	}
	return nil
}

// Close stops accepting connections and waits up to ShutdownTimeout for
// requests in flight, then cuts the rest.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.liveMu.Lock()
	s.closingOnce.Do(func() { close(s.closing) })
	s.liveMu.Unlock()
	// Live calls end on closing: they send their end and record it.
	defer s.lives.Wait()
	if s.server == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	err := s.server.Shutdown(ctx)
	if err != nil {
		err = errors.Join(fmt.Errorf("http server: shutdown: %w", err), s.server.Close())
	}
	<-s.served
	s.server, s.listener = nil, nil
	return err
}

// ListenAddr returns the address the server is bound to (the port chosen
// for ":0"), or "" before Open.
func (s *Server) ListenAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listener == nil {
		return ""
	}
	return s.listener.Addr().String()
}

// URL returns the base URL the server listens on, with localhost for an
// unspecified address, or "" before Open.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listener == nil {
		return ""
	}
	host, port, err := net.SplitHostPort(s.listener.Addr().String())
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	scheme := "http"
	if s.TLSConfig != nil {
		scheme = "https"
	}
	return (&url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port)}).String()
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func (s *Server) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

// changed tells the scheduler, if there is one, to recompile.
func (s *Server) changed() {
	if s.Scheduler != nil {
		s.Scheduler.Changed()
	}
}

// serveMux dispatches to the route table and answers unknown paths and
// methods in the API's JSON error shape instead of ServeMux's plain text.
// Paths that no route has (none of /api/) go to the web console when
// there is one; routes outside /api/ (GET /metrics) stay routes.
func (s *Server) serveMux(w http.ResponseWriter, r *http.Request) {
	_, pattern := s.mux.Handler(r)
	if pattern == "" && s.UI != nil && r.URL.Path != "/api" && !strings.HasPrefix(r.URL.Path, "/api/") {
		s.UI.ServeHTTP(w, r)
		return
	}
	if pattern == "" {
		w = &fallbackWriter{ResponseWriter: w, s: s, r: r}
	}
	s.mux.ServeHTTP(w, r)
}

// fallbackWriter turns ServeMux's own 404 and 405 answers into JSON errors;
// anything else (a redirect to the clean path) passes through.
type fallbackWriter struct {
	http.ResponseWriter
	s           *Server
	r           *http.Request
	intercepted bool
}

func (f *fallbackWriter) WriteHeader(code int) {
	switch code {
	case http.StatusNotFound:
		f.intercepted = true
		f.s.writeError(f.ResponseWriter, f.r, loaxa.Errorf(loaxa.ENotFound,
			"There is no API route %s; see docs/api.md for the routes.", f.r.URL.Path))
	case http.StatusMethodNotAllowed:
		f.intercepted = true
		f.s.writeJSON(f.ResponseWriter, f.r, code, errorResponse{Error: errorBody{
			Code:    "method_not_allowed",
			Message: fmt.Sprintf("%s does not accept %s; use %s.", f.r.URL.Path, f.r.Method, f.Header().Get("Allow")),
		}})
	default:
		f.ResponseWriter.WriteHeader(code)
	}
}

func (f *fallbackWriter) Write(b []byte) (int, error) {
	if f.intercepted {
		return len(b), nil
	}
	return f.ResponseWriter.Write(b)
}

// logRequests logs every request at Debug and turns a panic into a 500.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.logger().Error("http: panic serving request", "method", r.Method, "path", r.URL.Path,
					"panic", v, "stack", string(debug.Stack()))
				if rec.status == 0 {
					s.writeError(rec, r, fmt.Errorf("panic: %v", v))
				}
			}
			s.logger().Debug("http request", "method", r.Method, "path", r.URL.Path,
				"status", rec.code(), "duration", time.Since(start))
		}()
		next.ServeHTTP(rec, r)
	})
}

// statusRecorder remembers the status written, for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// ReadFrom keeps the connection's sendfile path for audio downloads.
func (r *statusRecorder) ReadFrom(src io.Reader) (int64, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(writerOnly{r.ResponseWriter}, src)
}

// writerOnly hides every method but Write, so io.Copy cannot loop back
// into ReadFrom.
type writerOnly struct{ io.Writer }

// Unwrap lets http.ResponseController reach the connection.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// FlushError passes a flush on to the connection.
func (r *statusRecorder) FlushError() error {
	return http.NewResponseController(r.ResponseWriter).Flush()
}

// Flush is FlushError for the writers that look for an http.Flusher under
// them, as the compressor (compress.go) does when a stream flushes; a
// failed flush shows in the stream's next write.
func (r *statusRecorder) Flush() { _ = r.FlushError() }

func (r *statusRecorder) code() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}
