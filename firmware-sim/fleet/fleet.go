// Package fleet enrols simulated speaker boxes with a controller and runs a
// real node agent for each, in one process: the agents are the production
// node/agent code with a silent, real-time-paced audio output
// (audio.NewNone, as --audio none) behind a simulated sound card, and a
// simulated board (firmware-sim/board) whose faults tests inject through
// Fleet.Sims. Each box starts its agent again when the agent asks to be
// restarted, as systemd does the node program.
//
// Enrolment goes through the controller's public API (POST /api/v1/nodes
// with a bearer token). The controller shows each node's credentials once;
// with a DataDir the fleet saves them in DataDir/<id>/credentials.json and
// reuses them on the next run instead of enrolling again, and keeps each
// node's store in DataDir/<id>/node.db. Without a DataDir the stores live in
// memory and the content caches in a temporary directory removed on Close,
// so a re-run needs a new Prefix.
//
// File descriptors: every agent holds one MQTT connection, and with a
// DataDir one bbolt file; content downloads share one HTTP transport capped
// at MaxDownloads connections. A process here may open at most 20,000 files,
// so a fleet of thousands of nodes should use memory stores, and a fleet of
// more than about 19,000 must be split across processes. Start checks the
// limit before it enrols anything.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"loaxa.vn/firmware-sim/board"
	"loaxa.vn/internal/clock"
	"loaxa.vn/node/agent"
	"loaxa.vn/node/audio"
	"loaxa.vn/node/store"
	"loaxa.vn/protocol"
)

// Defaults.
const (
	DefaultPrefix       = "sim"
	DefaultEnrolWorkers = 8
	// MaxDownloads caps the content download connections of the whole
	// fleet, so thousands of nodes fetching a new bulletin at once do not
	// exhaust the file descriptors.
	MaxDownloads = 256
	// Version is the agent version simulated nodes report.
	Version = "firmware-sim"
)

// Where simulated boxes stand. Each area has its own place (areaPlace),
// so that a CAP polygon or circle drawn around one commune's clusters
// names that commune only; before, every fleet stood on one grid whatever
// its area, and a circle around one commune's boxes alerted its neighbour
// too. The controller keeps no position for an area (loaxa.Area has none),
// so the place is spread from the area's code: a numeric code (the
// official ones) modulo the places, so sibling communes, whose codes
// follow each other, stand side by side, and no two codes less than 1,024
// apart stand on one place (a province's communes mostly are: Hải Phòng's
// lay within about 650 before the 2025 merger); another code by its FNV-1a
// hash. Codes further apart, or a hashed one, may share a place. Places
// form a grid of 32 rows and 32 columns 0.04° (about 4.4 km, a commune's
// width) apart, centred on Hải Phòng (it reaches into the
// neighbouring provinces and the sea: the places are for telling areas
// apart, not a map). The grid was 12 × 16, over Hải Phòng's mainland
// only: codes 192 apart (11527 and 11719 for one) shared a place.
// An area's boxes stand from its place in rows of 10, 0.002° (about 220 m)
// apart: up to 100 of them (10 rows) keep 2 km from the places around it;
// a larger fleet runs on towards and into the places north of it.
const (
	baseLat, baseLon = 20.24, 106.06
	placeStep        = 0.04
	placeRows        = 32
	placeColumns     = 32
	boxStep          = 0.002
	boxColumns       = 10
)

// Place is a position: where a fleet's first box stands (Config.Place).
type Place struct {
	Lat, Lon float64
}

// areaPlace is where the boxes of area start: the same in every run and
// every process, so fleets started apart for one area stand together.
func areaPlace(area string) (lat, lon float64) {
	const places = placeRows * placeColumns
	var k uint64
	if n, err := strconv.ParseUint(area, 10, 64); err == nil {
		k = n % places
	} else {
		h := fnv.New32a()
		h.Write([]byte(area))
		k = uint64(h.Sum32()) % places
	}
	return baseLat + float64(k/placeColumns)*placeStep, baseLon + float64(k%placeColumns)*placeStep
}

// start is where the fleet's first box stands: Place, or the area's place.
func (c Config) start() Place {
	if c.Place != nil {
		return *c.Place
	}
	lat, lon := areaPlace(c.Area)
	return Place{lat, lon}
}

// boxPosition is where the i-th box (from 0) of a fleet starting at p
// stands, to the micro-degree (about 10 cm): the console and the logs
// show 20.64, not 20.639999999999997.
func boxPosition(p Place, i int) (lat, lon float64) {
	return roundMicro(p.Lat + float64(i/boxColumns)*boxStep), roundMicro(p.Lon + float64(i%boxColumns)*boxStep)
}

func roundMicro(x float64) float64 { return math.Round(x*1e6) / 1e6 }

// Config describes a fleet. Controller, Nodes and Area are required; Token
// is required unless DataDir holds saved credentials for every node.
type Config struct {
	// Controller is the controller's HTTP base URL, e.g. http://127.0.0.1:8080.
	Controller string
	// Token is a bearer token of a user allowed to enrol nodes in Area.
	Token string
	// Nodes is how many boxes to run.
	Nodes int
	// Area is the area id every node is enrolled in.
	Area string
	// Place, if set, is where the first box stands instead of the place
	// that follows from Area (see areaPlace): the boxes stand from it in
	// rows of 10 northwards, 0.002° apart. For two areas whose codes
	// share a place, or to stand a fleet where a real alert's area lies.
	// Boxes enrolled in an earlier run (DataDir) keep where they stood.
	Place *Place
	// Prefix starts every node id: <prefix>-0001, <prefix>-0002, … (default "sim").
	Prefix string
	// DataDir keeps each node's credentials and bbolt store in
	// DataDir/<id>/; empty keeps stores in memory.
	DataDir string
	// Logger receives the fleet's own logs; AgentLogger the agents' (default
	// Logger). Both default to discarding.
	Logger      *slog.Logger
	AgentLogger *slog.Logger
	// Clock drives the agents, the boards and the silent outputs (default
	// clock.Real).
	Clock clock.Clock
	// HTTPClient is used for enrolment and by the agents (default: one
	// client with a transport capped at MaxDownloads connections per host).
	HTTPClient *http.Client
	// ControllerCA, if set, is the PEM certificate the default client
	// trusts in the controller while it enrols the nodes (instead of the
	// system's roots), as node --enrol --ca does: the controller's
	// --tls-ca, or the last certificate of its --tls-cert. The agents then
	// trust what their credentials pin.
	ControllerCA string
	// Board is the physics of every simulated box (zero: board.DefaultConfig).
	Board board.Config
	// Tune, if set, adjusts each agent's configuration before it is
	// created (tests shorten intervals with it).
	Tune func(*agent.Config)
	// EnrolWorkers is how many enrolments run at once (default 8).
	EnrolWorkers int
	// SoundLog, if set, gets one line per play of an occurrence an agent
	// began: "<node> <occurrence> <Unix ns> <offset ns>", the real time
	// its output took the first sample and where in the occurrence's
	// stream that sample lies (see soundlog.go). Written from one goroutine;
	// Close flushes it.
	SoundLog io.Writer
	// AlertPrepare is every agent's agent.Config.AlertPrepare (0: its
	// default; negative: alerts are prepared like any play).
	AlertPrepare time.Duration
	// SoundRecheck is how often a box whose agent runs without its sound
	// card checks whether the card is back (0: one second), as the node
	// program does every --sound-recheck.
	SoundRecheck time.Duration
}

// Sim is one simulated box: its board, its agent and what they run on.
// Like the node program under systemd, the box starts its agent again when
// the agent asks to be restarted: the controller told it to reboot
// (protocol.CmdReboot), its sound card was pulled out mid-play
// (board.FaultSoundCardOut), or it ran without one and the card is back.
// It restarts too when its SD card goes read-only or is sound again
// (board.FaultCardReadOnly, through Fleet.Control): with the card
// read-only its agent runs as the node program's does, on a store in
// memory, reading the content cached on the card and downloading into a
// directory of its own (the simulator cannot make the card's directory
// read-only: the agent only reads it, but for the use marks of what it
// plays and deleting a file found damaged).
type Sim struct {
	ID          string
	Credentials *protocol.Credentials
	Board       *board.Board
	Output      *audio.None
	Store       agent.Store
	// Dir is the agent's data directory (its content cache in Dir/content).
	Dir string

	mu       sync.Mutex
	agent    *agent.Agent            // the agent running now
	noCard   bool                    // it runs without the sound card
	roCard   bool                    // it runs with the SD card read-only
	memDir   string                  // its downloads while the card is read-only
	stopRun  context.CancelCauseFunc // ends its Run, to start it again
	restarts int

	done chan struct{} // closed when the agent's Run returned
	err  error         // what Run returned; read after done
}

// Agent returns the box's agent: a new one after each restart.
func (s *Sim) Agent() *agent.Agent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.agent
}

// Restarts returns how many times the box started its agent again.
func (s *Sim) Restarts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts
}

// Done is closed when the agent has stopped.
func (s *Sim) Done() <-chan struct{} { return s.done }

// Err returns why the agent stopped, once Done is closed; nil before, and
// nil after a clean stop.
func (s *Sim) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Fleet is a running fleet. Create it with Start; stop it with Close.
type Fleet struct {
	cfg  Config
	log  *slog.Logger
	sims []*Sim

	enrolled, reused int
	tempDir          string // content caches without a DataDir
	sounds           *soundLog
	transport        *http.Transport

	cancel    context.CancelFunc
	closeOnce sync.Once
	closeErr  error
}

// Run enrols and runs the fleet until ctx is cancelled, then stops it.
func Run(ctx context.Context, cfg Config) error {
	f, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	<-ctx.Done()
	return f.Close()
}

// Start enrols the nodes (or loads their saved credentials) and starts an
// agent for each. The agents run until ctx is cancelled or Close is called;
// Close must be called in either case to release the stores.
func Start(ctx context.Context, cfg Config) (*Fleet, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	f := &Fleet{cfg: cfg, log: cfg.Logger}
	if cfg.HTTPClient == nil {
		f.transport = http.DefaultTransport.(*http.Transport).Clone()
		f.transport.MaxConnsPerHost = MaxDownloads
		f.transport.MaxIdleConnsPerHost = 64
		if cfg.ControllerCA != "" {
			// Checked in withDefaults.
			f.transport.TLSClientConfig, _ = (&protocol.Credentials{ControllerCA: cfg.ControllerCA}).TLSConfig()
		}
		f.cfg.HTTPClient = &http.Client{Transport: f.transport}
	}
	if err := checkFileLimit(cfg); err != nil {
		return nil, err
	}
	if cfg.SoundLog != nil {
		f.sounds = newSoundLog(cfg.SoundLog)
	}
	creds, err := f.enrolAll(ctx)
	if err != nil {
		f.release()
		return nil, err
	}
	if err := f.build(creds); err != nil {
		f.release()
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	f.cancel = cancel
	for _, s := range f.sims {
		go func() {
			defer close(s.done)
			s.err = f.runSim(runCtx, s)
			if s.err != nil {
				f.log.Error("fleet: agent stopped", "node", s.ID, "err", s.err)
			}
		}()
	}
	// Where its boxes begin, to draw a CAP circle or polygon around them
	// (boxes enrolled in an earlier run keep the position they had).
	lat, lon := boxPosition(cfg.start(), 0)
	f.log.Info("fleet: running", "nodes", len(f.sims), "enrolled", f.enrolled, "reused", f.reused, "area", cfg.Area,
		"lat", lat, "lon", lon)
	return f, nil
}

func (c Config) withDefaults() (Config, error) {
	var errs []error
	u, err := url.Parse(c.Controller)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("controller %q: want the controller's base URL, e.g. http://127.0.0.1:8080", c.Controller))
	}
	c.Controller = strings.TrimRight(c.Controller, "/")
	if c.Nodes < 1 {
		errs = append(errs, fmt.Errorf("nodes %d: want at least 1", c.Nodes))
	}
	if err := protocol.CheckID(c.Area); err != nil {
		errs = append(errs, fmt.Errorf("area: %w", err))
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if err := protocol.CheckID(nodeID(c.Prefix, max(c.Nodes, 1))); err != nil {
		errs = append(errs, fmt.Errorf("prefix %q does not make valid node ids: %w", c.Prefix, err))
	}
	if p := c.Place; p != nil {
		// The last box stands furthest north and east.
		lat, lon := boxPosition(*p, max(c.Nodes, 1)-1)
		if math.IsNaN(p.Lat) || math.IsNaN(p.Lon) || p.Lat < -90 || lat > 90 || p.Lon < -180 || lon > 180 {
			errs = append(errs, fmt.Errorf("place %v,%v: want a latitude from -90 to 90 and a longitude from -180 to 180, for the last box too (%.3f,%.3f)", p.Lat, p.Lon, lat, lon))
		}
	}
	if c.Board == (board.Config{}) {
		c.Board = board.DefaultConfig()
	} else if err := c.Board.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.ControllerCA != "" {
		if c.HTTPClient != nil {
			errs = append(errs, errors.New("controller CA: give it or an HTTP client of your own, not both"))
		} else if _, err := (&protocol.Credentials{ControllerCA: c.ControllerCA}).TLSConfig(); err != nil {
			errs = append(errs, fmt.Errorf("controller CA: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("fleet: %w", err)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.AgentLogger == nil {
		c.AgentLogger = c.Logger
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.EnrolWorkers < 1 {
		c.EnrolWorkers = DefaultEnrolWorkers
	}
	return c, nil
}

// nodeID is the id of the i-th node (from 1). The width does not depend on
// the fleet's size, so a node keeps its id when the fleet grows.
func nodeID(prefix string, i int) string { return fmt.Sprintf("%s-%04d", prefix, i) }

// enrolAll returns the credentials of every node, enrolling those without
// saved ones.
func (f *Fleet) enrolAll(ctx context.Context) ([]*protocol.Credentials, error) {
	cfg := f.cfg
	e := &enroller{controller: cfg.Controller, token: cfg.Token, client: cfg.HTTPClient}
	creds := make([]*protocol.Credentials, cfg.Nodes)
	var enrolled, reused atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cfg.EnrolWorkers)
	for i := range creds {
		g.Go(func() error {
			id := nodeID(cfg.Prefix, i+1)
			if cfg.DataDir != "" {
				c, err := loadCredentials(filepath.Join(cfg.DataDir, id))
				if err != nil {
					return fmt.Errorf("fleet: saved credentials of %s: %w", id, err)
				}
				if c != nil {
					creds[i] = c
					reused.Add(1)
					return nil
				}
			}
			lat, lon := boxPosition(cfg.start(), i)
			c, err := e.enrol(gctx, enrolRequest{
				ID:   id,
				Name: fmt.Sprintf("Simulated box %d (%s)", i+1, cfg.Prefix),
				Area: cfg.Area,
				Lat:  lat,
				Lon:  lon,
			})
			if err != nil {
				return fmt.Errorf("fleet: %w", err)
			}
			if cfg.DataDir != "" {
				if err := saveCredentials(filepath.Join(cfg.DataDir, id), c); err != nil {
					return fmt.Errorf("fleet: node %s is enrolled but its credentials could not be kept: %w", id, err)
				}
			}
			creds[i] = c
			if n := enrolled.Add(1); n%500 == 0 {
				f.log.Info("fleet: enrolling", "done", n, "of", cfg.Nodes)
			}
			return nil
		})
	}
	err := g.Wait()
	f.enrolled, f.reused = int(enrolled.Load()), int(reused.Load())
	if err != nil {
		if f.enrolled > 0 && cfg.DataDir == "" {
			lost := fmt.Sprintf("%d nodes were enrolled before this; without --data their credentials are lost", f.enrolled)
			if f.enrolled == 1 {
				lost = "1 node was enrolled before this; without --data its credentials are lost"
			}
			err = fmt.Errorf("%w (%s, so use a new --prefix next time)", err, lost)
		}
		return nil, err
	}
	return creds, nil
}

// build makes each node's board, store, output and agent.
func (f *Fleet) build(creds []*protocol.Credentials) error {
	cfg := f.cfg
	if cfg.DataDir == "" {
		dir, err := os.MkdirTemp("", "loaxa-fleet-*")
		if err != nil {
			return fmt.Errorf("fleet: content cache directory: %w", err)
		}
		f.tempDir = dir
	}
	for _, c := range creds {
		s := &Sim{ID: c.Node, Credentials: c, Output: audio.NewNone(cfg.Clock), done: make(chan struct{})}
		var err error
		if s.Board, err = board.New(cfg.Clock, cfg.Board); err != nil {
			return fmt.Errorf("fleet: node %s: %w", c.Node, err)
		}
		dir := filepath.Join(f.tempDir, c.Node)
		if cfg.DataDir != "" {
			dir = filepath.Join(cfg.DataDir, c.Node)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return fmt.Errorf("fleet: node %s: %w", c.Node, err)
			}
			b, err := store.OpenBolt(filepath.Join(dir, "node.db"))
			if err != nil {
				return fmt.Errorf("fleet: node %s: %w", c.Node, err)
			}
			s.Store = b
		} else {
			s.Store = store.NewMemory()
		}
		s.Dir = dir
		// Registered before the agent exists, so release closes the store
		// whatever fails next.
		f.sims = append(f.sims, s)
		if err := f.newAgent(s); err != nil {
			return err
		}
	}
	return nil
}

// errNoCard is why a box without its sound card cannot open it.
var errNoCard = errors.New("simulated sound card pulled out")

// errCardBack ends the Run of an agent without its sound card once the
// card is back.
var errCardBack = errors.New("the sound card is back")

// errCardReadOnly is why a box whose SD card went read-only runs on a
// store in memory (agent.Config.StoreFault).
var errCardReadOnly = errors.New("open node store: simulated SD card read-only")

// errReboot ends the Run of an agent the controller told to reboot
// (protocol.CmdReboot): the box starts it again, as the service manager
// does the node program that exits for it.
var errReboot = errors.New("reboot requested by the controller")

// errCardChanged ends the Run of an agent whose SD card went read-only or
// was mended: the box starts it again on what it has now.
var errCardChanged = errors.New("the SD card went read-only or was mended")

// noUpdates is why a simulated box refuses an agent release: the fleet
// runs agents in its own process, with nothing to install, and a rollout
// that halts on one of its canaries says so instead of "not started by its
// service", which sent technicians looking for a systemd unit.
const noUpdates = "a simulated box (firmware-sim) does not install agent releases; try a rollout on real boards (docs/deploy.md)"

// newAgent makes the box's agent, with its sound card or without it as the
// board has it now.
func (f *Fleet) newAgent(s *Sim) error {
	cfg := f.cfg
	ac := agent.Config{
		Credentials:  s.Credentials,
		DataDir:      s.Dir,
		Store:        s.Store,
		Output:       cardOutput{None: s.Output, board: s.Board},
		Board:        s.Board,
		Clock:        cfg.Clock,
		Logger:       cfg.AgentLogger,
		HTTPClient:   cfg.HTTPClient,
		Version:      Version,
		AlertPrepare: cfg.AlertPrepare,
		Restart:      s.stopAgent,
		Reboot:       func() { s.stopAgent(errReboot) },
		NoUpdates:    noUpdates,
	}
	noCard := !s.Board.SoundCard()
	switch {
	case noCard:
		ac.Output = audio.Missing{Err: errNoCard}
	case f.sounds != nil:
		ac.Output = &soundOutput{Output: ac.Output, node: s.ID, log: f.sounds}
	}
	s.removeMemDir()
	roCard := s.Board.CardReadOnly()
	if roCard {
		mem, err := os.MkdirTemp(f.tempDir, "memory-"+s.ID+"-*")
		if err != nil {
			return fmt.Errorf("fleet: node %s: downloads in memory: %w", s.ID, err)
		}
		s.memDir = mem
		// The node program copies what the card's store holds into
		// memory (store.MemoryFrom); here the store stays open in this
		// process, so it is copied through its interface.
		copied, err := store.MemoryOf(s.Store, cfg.Clock.Now())
		if err != nil {
			f.log.Error("fleet: the store of a box whose card went read-only could not be copied; its store in memory starts empty", "node", s.ID, "err", err)
			copied = store.NewMemory()
		}
		ac.Store, ac.StoreFault, ac.ContentInMemory = copied, errCardReadOnly, mem
	}
	if cfg.Tune != nil {
		cfg.Tune(&ac)
	}
	a, err := agent.New(ac)
	if err != nil {
		return fmt.Errorf("fleet: node %s: %w", s.ID, err)
	}
	s.mu.Lock()
	s.agent, s.noCard, s.roCard = a, noCard, roCard
	s.mu.Unlock()
	return nil
}

// stopAgent ends the run of the box's agent with cause, for runSim to
// start it again if cause is among its restart causes.
func (s *Sim) stopAgent(cause error) {
	s.mu.Lock()
	stop := s.stopRun
	s.mu.Unlock()
	if stop != nil {
		stop(cause)
	}
}

// removeMemDir removes the directory of the downloads made while the card
// was read-only, if any: they were in memory, and a restart loses them.
func (s *Sim) removeMemDir() {
	if s.memDir != "" {
		os.RemoveAll(s.memDir)
		s.memDir = ""
	}
}

// cardChanged starts the box's agent again if its SD card went read-only
// or was mended since the agent started (board.FaultCardReadOnly).
func (s *Sim) cardChanged() {
	s.mu.Lock()
	stop, changed := s.stopRun, s.roCard != s.Board.CardReadOnly()
	s.mu.Unlock()
	if changed && stop != nil {
		stop(errCardChanged)
	}
}

// runSim runs the box's agent until ctx ends, starting it again, as
// systemd does the node program, when it stops to be restarted (its sound
// card lost, or the controller asked it to reboot), when it ran without its
// sound card and the card is back, or when its SD card changed.
func (f *Fleet) runSim(ctx context.Context, s *Sim) error {
	for {
		rctx, stop := context.WithCancelCause(ctx)
		s.mu.Lock()
		a, noCard := s.agent, s.noCard
		s.stopRun = stop
		// A card that changed after newAgent read it was reported to
		// cardChanged before this run could be stopped: start again at
		// once, or the box runs on the wrong store for good.
		if s.roCard != s.Board.CardReadOnly() {
			stop(errCardChanged)
		}
		s.mu.Unlock()
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			if noCard {
				f.watchCard(rctx, s, stop)
			}
		}()
		err := a.Run(rctx)
		cause := context.Cause(rctx)
		stop(nil)
		<-watched
		if ctx.Err() != nil || !errors.Is(cause, audio.ErrDeviceLost) && !errors.Is(cause, errCardBack) && !errors.Is(cause, errCardChanged) && !errors.Is(cause, errReboot) {
			return err
		}
		f.log.Warn("fleet: starting the agent again", "node", s.ID, "cause", cause)
		if err := f.newAgent(s); err != nil {
			return err
		}
		s.mu.Lock()
		s.restarts++
		s.mu.Unlock()
	}
}

// watchCard ends the run with errCardBack once the board has its sound
// card again.
func (f *Fleet) watchCard(ctx context.Context, s *Sim, stop context.CancelCauseFunc) {
	every := f.cfg.SoundRecheck
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if s.Board.SoundCard() {
				stop(errCardBack)
				return
			}
		}
	}
}

// cardOutput is a box's sound card: None's real-time pacing while the
// board has the card. A play finds the card gone as it reads, and fails
// as oto does once ALSA has lost its device (audio.ErrDeviceLost).
type cardOutput struct {
	*audio.None
	board *board.Board
}

// errCardOut is what a play's reads return once the card is out.
var errCardOut = errors.New("sound card pulled out")

// Err says the card is out, as the oto output says its device failed.
func (o cardOutput) Err() error {
	if !o.board.SoundCard() {
		return fmt.Errorf("%w: %w", audio.ErrDeviceLost, errCardOut)
	}
	return nil
}

func (o cardOutput) Play(ctx context.Context, pcm io.Reader) error {
	if err := o.Err(); err != nil {
		return err
	}
	err := o.None.Play(ctx, &cardReader{r: pcm, board: o.board})
	if errors.Is(err, errCardOut) {
		return fmt.Errorf("%w: %w", audio.ErrDeviceLost, err)
	}
	return err
}

// cardReader fails once the board's sound card is out.
type cardReader struct {
	r     io.Reader
	board *board.Board
}

func (c *cardReader) Read(p []byte) (int, error) {
	if !c.board.SoundCard() {
		return 0, errCardOut
	}
	return c.r.Read(p)
}

// Sims returns the simulated boxes in id order. The slice is the fleet's;
// do not modify it.
func (f *Fleet) Sims() []*Sim { return f.sims }

// Sim returns the box with the given id, or nil.
func (f *Fleet) Sim(id string) *Sim {
	for _, s := range f.sims {
		if s.ID == id {
			return s
		}
	}
	return nil
}

// Enrolled returns how many nodes this run enrolled with the controller.
func (f *Fleet) Enrolled() int { return f.enrolled }

// Reused returns how many nodes run on credentials saved by an earlier run.
func (f *Fleet) Reused() int { return f.reused }

// Running returns how many agents are still running.
func (f *Fleet) Running() int {
	n := 0
	for _, s := range f.sims {
		select {
		case <-s.done:
		default:
			n++
		}
	}
	return n
}

// Close stops every agent, waits for them, and closes the stores. It
// returns the errors the agents stopped with. It is safe to call twice.
func (f *Fleet) Close() error {
	f.closeOnce.Do(func() {
		if f.cancel != nil {
			f.cancel()
		}
		var errs []error
		for _, s := range f.sims {
			<-s.done
			if s.err != nil {
				errs = append(errs, fmt.Errorf("node %s: %w", s.ID, s.err))
			}
		}
		errs = append(errs, f.release())
		f.closeErr = errors.Join(errs...)
	})
	return f.closeErr
}

// release closes the stores and removes the temporary content caches; the
// agents must have stopped.
func (f *Fleet) release() error {
	var errs []error
	for _, s := range f.sims {
		if b, ok := s.Store.(*store.Bolt); ok {
			if err := b.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close store of %s: %w", s.ID, err))
			}
		}
		s.removeMemDir()
	}
	if f.tempDir != "" {
		if err := os.RemoveAll(f.tempDir); err != nil {
			errs = append(errs, fmt.Errorf("remove content caches: %w", err))
		}
	}
	if f.transport != nil {
		f.transport.CloseIdleConnections()
	}
	if f.sounds != nil {
		errs = append(errs, f.sounds.close())
		f.sounds = nil
	}
	return errors.Join(errs...)
}

// WaitConnected waits until every agent is connected to the broker, ctx
// ends, or timeout passes, and returns how many are connected.
func (f *Fleet) WaitConnected(ctx context.Context, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	for {
		n := 0
		for _, s := range f.sims {
			if s.Agent().Connected() {
				n++
			}
		}
		if n == len(f.sims) || time.Now().After(deadline) {
			return n
		}
		select {
		case <-ctx.Done():
			return n
		case <-ticker.C:
		}
	}
}
