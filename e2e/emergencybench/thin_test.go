package emergencybench

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/sync/errgroup"

	"loaxa.vn/protocol"
)

// Thin nodes: plain paho clients that answer an alert with exactly the
// messages a node agent publishes for it, and nothing else, so that a
// round's cost at the controller can be measured without the simulated
// fleet's. What an agent publishes was read from a real one
// (TestAgentAlertTraffic prints it: a firmware-sim fleet's agents, after a
// warm-up alert, so with the content cached):
//
//   - at once: one event batch [received, content-ready] (~571 bytes);
//   - at the alert's start: one batch [started] (late_ms if late, ~352);
//   - when the play ends (opening chime, Repeat × content with gaps,
//     closing chime; 3,560 ms for the benchmark's alert): one batch
//     [completed] with played_ms (~372);
//   - its retained state one second after the first of every burst of
//     changes (the agent's StateDebounce): after the receipt (amplifier on;
//     playing, if started by then), after the start if the first had gone
//     before it, and after the end (amplifier off, nothing playing)
//     (~650–850 bytes);
//   - and, as always, its state within 48–60 s of the last one
//     (heartbeat, jittered as the agent's), its retained online state on
//     connect and the offline state as its Last Will.
//
// All QoS 1; states retained, events not; the same protocol.Encode
// envelopes, epochs and gap-free sequences as the agent's outbox. Each node
// connects with its own credentials (client id, username and secret) and
// subscribes to the same topics as node/mqtt.Link. It checks each
// message's signature, audience and validity as the agent does
// (protocol.Verifier), and starts an alert at its start instant, which it
// reports ("start <occurrence> <Unix ns>"): the node's part of
// alert-to-sound that is not the board's own work. A board starts on a
// timer of its own, on a processor of its own; the nodes of one process
// share one timer for each start instant (thinStarts), which takes the
// clock for each node that holds the alert by then, one after the other,
// before any of them does the start's work. A timer per node, as before,
// put 10,000 goroutines' starts in one queue on the machine's two cores:
// the skew then measured that queue (p50 22–32 ms in rounds where every
// node had the alert before the instant, BENCHMARKS.md), not the alert's
// delivery. A node that has the alert only after the instant starts at
// once, as an agent does. With LOAXA_BENCH_THIN_VERIFY=0 it skips the
// signature check (only parses), as if each node had a processor of its
// own for it, as a board has: with 10,000 nodes on this machine's two
// cores the checks (62 µs a node) put alert-to-start p99 at 2.4–2.7 s,
// against 1.65–1.73 s without them (BENCHMARKS.md, "The thin nodes
// corrected"). With LOAXA_BENCH_THIN_VERIFY=shared the nodes of a process
// check and decode each message to their area once (thinShared). What
// the thin node does not do, because it costs only the node: keep a
// store, play audio, fetch content. Like the agent, it sends its
// unacknowledged events again when the acknowledgement is 30 s overdue
// (agent.Config.AckTimeout), from the first one, in one batch.
//
// Like the agent (node/agent/spread.go), a thin node spreads its reports of
// an alert with a report window (protocol.Alert.ReportWindowMS): it picks a
// delay uniformly within the window once per alert and sends each event
// batch of the alert that long after its events' time, or after the
// alert's start for the receipt that came before it (with the later
// events it has by then, in one batch, as the agent does: the receipt
// goes with the start), and each state after a change while it holds the
// alert that long after the debounce.

const (
	envThinCreds = "LOAXA_BENCH_THIN_CREDS" // JSON file: []protocol.Credentials
	envThinFrom  = "LOAXA_BENCH_THIN_FROM"
	envThinCount = "LOAXA_BENCH_THIN_COUNT"
	// envThinVerify "0" skips the signature check of the node's messages.
	envThinVerify = "LOAXA_BENCH_THIN_VERIFY"

	thinStateDebounce = time.Second      // agent.Config.StateDebounce default
	thinHeartbeat     = 60 * time.Second // agent.DefaultHeartbeat
	thinAmpTail       = 200 * time.Millisecond
	thinAckTimeout    = 30 * time.Second // agent.Config.AckTimeout default
)

// thinNodes connects LOAXA_BENCH_THIN_COUNT thin nodes, from
// LOAXA_BENCH_THIN_FROM in the credentials file, prints "ready", then
// "<occurrence> <Unix ns>" for every alert a node receives the first time
// and "start <occurrence> <Unix ns>" when it starts it; it runs until its
// stdin closes.
func thinNodes() int {
	from, err1 := strconv.Atoi(os.Getenv(envThinFrom))
	count, err2 := strconv.Atoi(os.Getenv(envThinCount))
	raw, err3 := os.ReadFile(os.Getenv(envThinCreds))
	var creds []*protocol.Credentials
	if err1 != nil || err2 != nil || err3 != nil || json.Unmarshal(raw, &creds) != nil || from+count > len(creds) {
		fmt.Fprintf(os.Stderr, "thin nodes: want %s, %s and %s (%v %v %v)\n", envThinCreds, envThinFrom, envThinCount, err1, err2, err3)
		return 2
	}
	lines := make(chan string, 4*count)
	starts := &thinStarts{byInstant: map[thinStartKey]*thinStartGroup{}}
	check, err := thinChecks()
	if err != nil {
		fmt.Fprintln(os.Stderr, "thin nodes:", err)
		return 2
	}
	shared := &thinShared{opened: map[string]map[string]*thinOpened{}}
	go func() {
		w := bufio.NewWriter(os.Stdout)
		for l := range lines {
			w.WriteString(l)
			if len(lines) == 0 {
				w.Flush()
			}
		}
	}()
	nodes := make([]*thinNode, count)
	var g errgroup.Group
	g.SetLimit(32)
	for i := range nodes {
		g.Go(func() error {
			n, err := openThinNode(creds[from+i], lines, starts, check, shared)
			nodes[i] = n
			return err
		})
	}
	err = g.Wait()
	defer func() {
		for _, n := range nodes {
			if n != nil {
				n.close()
			}
		}
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	lines <- "ready\n"
	readThinCommands(os.Stdin) // until the benchmark is done
	if r := resent.Load(); r > 0 {
		fmt.Fprintf(os.Stderr, "%d events sent again for want of an acknowledgement\n", r)
	}
	return 0
}

// readThinCommands reads the benchmark's commands to a thin nodes'
// process until its stdin closes: "profile <file>" starts a CPU profile
// of the process, "stop" ends it (LOAXA_BENCH_FANOUT_PROFILE: the nodes'
// side of a round's fan-out).
func readThinCommands(r io.Reader) {
	var prof *os.File
	stop := func() {
		if prof != nil {
			pprof.StopCPUProfile()
			prof.Close()
			prof = nil
		}
	}
	defer stop()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		switch cmd {
		case "profile":
			stop()
			f, err := os.Create(arg)
			if err == nil {
				err = pprof.StartCPUProfile(f)
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "thin nodes: profile %s: %v\n", arg, err)
				continue
			}
			prof = f
		case "stop":
			stop()
		}
	}
}

// thinNode is one node's MQTT client and the little an agent's messages
// need: its outbox sequence, what plays, the amplifier, the desired
// version.
type thinNode struct {
	cred    *protocol.Credentials
	topics  protocol.Topics
	cl      paho.Client
	verify  *protocol.Verifier // nil: LOAXA_BENCH_THIN_VERIFY=0
	shared  *thinShared        // set: LOAXA_BENCH_THIN_VERIFY=shared
	epoch   string
	keys    []string
	booted  time.Time
	lines   chan<- string
	starts  *thinStarts
	desired atomic.Uint64

	mu        sync.Mutex
	seq       uint64
	held      map[string]bool
	playing   *protocol.Playing
	amp       bool
	pending   bool // a state is due after the debounce
	heartbeat *time.Timer
	unacked   []protocol.Event // written, not acknowledged yet
	sent      uint64           // the last sequence sent
	ackTimer  *time.Timer
	closed    bool
	// delay is how long the reports of the alert held wait (its report
	// window), until delayUntil.
	delay      time.Duration
	delayUntil time.Time
	delayFrom  time.Time // a report made before it waits from it (the start)
}

// thinCheck is how the thin nodes check their messages.
type thinCheck int

const (
	thinCheckEach   thinCheck = iota // each node checks every message (the default)
	thinCheckNone                    // LOAXA_BENCH_THIN_VERIFY=0: parsed only
	thinCheckShared                  // LOAXA_BENCH_THIN_VERIFY=shared: once a process for an area's message (thinShared)
)

// thinChecks reads LOAXA_BENCH_THIN_VERIFY.
func thinChecks() (thinCheck, error) {
	switch v := os.Getenv(envThinVerify); v {
	case "", "1":
		return thinCheckEach, nil
	case "0":
		return thinCheckNone, nil
	case "shared":
		return thinCheckShared, nil
	default:
		return 0, fmt.Errorf("%s=%q: want 1 (each node checks each message), 0 (none checks) or shared (once a process for an area's message)", envThinVerify, v)
	}
}

// newThinNode is a thin node not connected yet; check says whether it
// verifies each message's signature, audience and validity as an agent
// does, and whether it shares what it opened of its areas' messages with
// the process's other nodes (shared, for thinCheckShared).
func newThinNode(cred *protocol.Credentials, lines chan<- string, starts *thinStarts, check thinCheck, shared *thinShared) (*thinNode, error) {
	keys, err := cred.PublicKeys()
	if err != nil {
		return nil, fmt.Errorf("thin node %s: %w", cred.Node, err)
	}
	var e [8]byte
	rand.Read(e[:])
	n := &thinNode{cred: cred, topics: protocol.NewTopics(cred.Prefix()), epoch: hex.EncodeToString(e[:]),
		booted: time.Now(), lines: lines, starts: starts, held: map[string]bool{}}
	if check != thinCheckNone {
		n.verify = protocol.NewVerifier(keys, nil, 0)
	}
	if check == thinCheckShared {
		n.shared = shared
	}
	for _, k := range keys {
		n.keys = append(n.keys, protocol.KeyID(k))
	}
	return n, nil
}

func openThinNode(cred *protocol.Credentials, lines chan<- string, starts *thinStarts, check thinCheck, shared *thinShared) (*thinNode, error) {
	n, err := newThinNode(cred, lines, starts, check, shared)
	if err != nil {
		return nil, err
	}
	stateTopic := n.topics.Node(cred.Node, protocol.ChanState)
	will, err := protocol.Encode(protocol.TypeState, cred.Node, "controller", 0, time.Now(), protocol.State{Status: protocol.StatusOffline, At: time.Now().UTC()})
	if err != nil {
		return nil, err
	}
	opts := paho.NewClientOptions().AddBroker(cred.Broker).SetClientID(cred.Node).
		SetUsername(cred.Username).SetPassword(cred.Secret).SetCleanSession(true).
		SetAutoReconnect(false).SetKeepAlive(30*time.Second).SetConnectTimeout(30*time.Second).
		SetOrderMatters(false).SetBinaryWill(stateTopic, will, 1, true)
	n.cl = paho.NewClient(opts)
	if tok := n.cl.Connect(); !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
		return nil, fmt.Errorf("thin node %s: connect: %v", cred.Node, tok.Error())
	}
	filters := map[string]byte{
		n.topics.Node(cred.Node, protocol.ChanDesired): 1,
		n.topics.Node(cred.Node, protocol.ChanCmd):     1,
	}
	areas := cred.Areas
	if len(areas) == 0 {
		areas = []string{cred.Area}
	}
	for _, a := range areas {
		filters[n.topics.Area(a, protocol.ChanCmd)] = 1
		filters[n.topics.Area(a, protocol.ChanLive)] = 1
	}
	if tok := n.cl.SubscribeMultiple(filters, n.receive); !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
		return nil, fmt.Errorf("thin node %s: subscribe: %v", cred.Node, tok.Error())
	}
	n.mu.Lock()
	n.publishStateLocked() // the online state, as the link publishes on connect
	n.mu.Unlock()
	return n, nil
}

func (n *thinNode) close() {
	n.mu.Lock()
	n.closed = true
	if n.heartbeat != nil {
		n.heartbeat.Stop()
	}
	if n.ackTimer != nil {
		n.ackTimer.Stop()
	}
	n.mu.Unlock()
	n.cl.Disconnect(50)
}

// receive runs on paho's goroutine (OrderMatters false: one per message).
func (n *thinNode) receive(_ paho.Client, m paho.Message) {
	at := time.Now()
	t, err := n.topics.Parse(m.Topic())
	if err != nil || len(m.Payload()) == 0 {
		return
	}
	var o *thinOpened
	if n.shared != nil && t.Scope == protocol.ScopeArea {
		o = n.shared.open(m.Payload(), t, n.open)
	} else {
		o = n.open(m.Payload(), t)
	}
	if o.err != nil {
		fmt.Fprintf(os.Stderr, "thin node %s: %s: %v\n", n.cred.Node, m.Topic(), o.err)
		return
	}
	switch t.Channel {
	case protocol.ChanDesired:
		var d protocol.DesiredState
		if o.env.Decode(&d) == nil {
			n.desired.Store(d.Version)
		}
	case protocol.ChanCmd:
		cmd := o.cmd
		if cmd == nil {
			return
		}
		switch {
		case cmd.Name == protocol.CmdAck && cmd.Epoch == n.epoch:
			n.ack(cmd.Seq)
		case cmd.Name == protocol.CmdAlert && cmd.Alert != nil:
			n.alert(cmd.Alert, at)
		}
	}
}

// thinOpened is a message checked (or parsed) and, on a cmd topic, its
// command decoded; err if it was refused.
type thinOpened struct {
	env *protocol.Envelope
	cmd *protocol.Command // nil: not a command, or its body did not decode
	err error
}

// open checks (or, without a verifier, parses) raw as received on t and
// decodes the command of a cmd topic.
func (n *thinNode) open(raw []byte, t protocol.Topic) *thinOpened {
	var o thinOpened
	if n.verify != nil {
		o.env, o.err = n.verify.Open(raw, t.Audience())
	} else {
		o.env, o.err = protocol.Parse(raw)
	}
	if o.err == nil && t.Channel == protocol.ChanCmd {
		var cmd protocol.Command
		if o.env.Decode(&cmd) == nil {
			o.cmd = &cmd
		}
	}
	return &o
}

// thinShared is, with LOAXA_BENCH_THIN_VERIFY=shared, what one process's
// thin nodes have opened of the messages to their areas: each distinct
// message (its audience and every byte) is checked and decoded once, by
// the first node that has it, and the others that receive the same bytes
// on the same audience take that result, as if each node had checked it
// on a processor of its own, as a board does. (Its expiry is judged at
// that first check; alerts expire minutes after.)
type thinShared struct {
	mu     sync.Mutex
	opened map[string]map[string]*thinOpened // audience → message → opened
}

// thinSharedMax bounds the messages kept for an audience; more, and they
// are forgotten and opened again.
const thinSharedMax = 64

func (s *thinShared) open(raw []byte, t protocol.Topic, open func([]byte, protocol.Topic) *thinOpened) *thinOpened {
	s.mu.Lock()
	defer s.mu.Unlock()
	byMsg := s.opened[t.Audience()]
	if o := byMsg[string(raw)]; o != nil {
		return o
	}
	if byMsg == nil || len(byMsg) >= thinSharedMax {
		byMsg = map[string]*thinOpened{}
		s.opened[t.Audience()] = byMsg
	}
	o := open(raw, t)
	byMsg[string(raw)] = o
	return o
}

// alert answers an alert (the area publish or a resend) as an agent does.
func (n *thinNode) alert(al *protocol.Alert, at time.Time) {
	o := al.Occurrence
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.held[o.ID] || n.closed {
		return // a copy
	}
	n.held[o.ID] = true
	n.lines <- fmt.Sprintf("%s %d\n", o.ID, at.UnixNano())
	n.delay, n.delayUntil, n.delayFrom = 0, time.Time{}, time.Time{}
	// As the agent: the window runs from the start (node/agent/spread.go).
	if w := min(al.ReportWindow(), o.Start.Add(al.ReportWindow()).Sub(at)); w > 0 {
		n.delay, n.delayUntil, n.delayFrom = mrand.N(w), o.Expires, o.Start
	}
	n.events(o, protocol.Event{Type: protocol.EventReceived, At: at.UTC()}, protocol.Event{Type: protocol.EventContentReady, At: at.UTC()})
	n.amp = true // prepared on receipt: the amplifier switches on
	n.dirty()
	played := time.Duration(0)
	durations := map[string]int64{}
	for _, c := range al.Content {
		durations[c.ID] = c.DurationMS
	}
	played += time.Duration(durations[o.OpeningChime]+durations[o.ClosingChime]) * time.Millisecond
	rep := max(o.Repeat, 1)
	played += time.Duration(int64(rep)*durations[o.Content]+int64(rep-1)*o.GapMS) * time.Millisecond
	n.starts.add(o, func(at time.Time) { n.start(o, played, at) })
}

// thinStarts is the start timers of one process's thin nodes: one for
// each occurrence and start instant.
type thinStarts struct {
	mu        sync.Mutex
	byInstant map[thinStartKey]*thinStartGroup
}

type thinStartKey struct {
	occurrence string
	instant    time.Time
}

// thinStartGroup is the nodes waiting for one instant; fired once the
// timer has run.
type thinStartGroup struct {
	waiting []func(at time.Time)
	fired   bool
}

// add starts begin at o's start instant, or at once when that has passed
// or its timer has run.
func (s *thinStarts) add(o protocol.Occurrence, begin func(at time.Time)) {
	if time.Until(o.Start) <= 0 {
		go begin(time.Now().UTC())
		return
	}
	k := thinStartKey{o.ID, o.Start}
	s.mu.Lock()
	g := s.byInstant[k]
	if g == nil {
		g = &thinStartGroup{}
		s.byInstant[k] = g
		time.AfterFunc(time.Until(o.Start), func() { s.fire(k) })
	}
	if g.fired {
		s.mu.Unlock()
		go begin(time.Now().UTC())
		return
	}
	g.waiting = append(g.waiting, begin)
	s.mu.Unlock()
}

// fire takes the clock for each node waiting for k, then has each begin.
func (s *thinStarts) fire(k thinStartKey) {
	s.mu.Lock()
	g := s.byInstant[k]
	g.fired = true
	waiting := g.waiting
	g.waiting = nil
	s.mu.Unlock()
	at := make([]time.Time, len(waiting))
	for i := range waiting {
		at[i] = time.Now().UTC() // this node's timer has run: it starts
	}
	for i, begin := range waiting {
		begin(at[i])
	}
	// The group stays, fired: a copy of the alert (a resend) received
	// later is held already, and a node that receives it only now starts
	// at once. The groups of a run are few (one a round).
}

func (n *thinNode) start(o protocol.Occurrence, played time.Duration, at time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	n.lines <- fmt.Sprintf("start %s %d\n", o.ID, at.UnixNano())
	n.events(o, protocol.Event{Type: protocol.EventStarted, At: at, LateMS: at.Sub(o.Start).Milliseconds()})
	n.playing = &protocol.Playing{Occurrence: o.ID, Content: o.Content, Priority: o.Priority, Since: at, Drill: o.Drill}
	n.dirty()
	time.AfterFunc(played, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.closed {
			return
		}
		n.events(o, protocol.Event{Type: protocol.EventCompleted, At: time.Now().UTC(), PlayedMS: played.Milliseconds()})
		n.playing = nil
		n.dirty()
		time.AfterFunc(thinAmpTail, func() {
			n.mu.Lock()
			defer n.mu.Unlock()
			n.amp = false
			n.dirty()
		})
	})
}

// events publishes one batch of events about o: the next sequences of
// the node's outbox. Called with n.mu held.
func (n *thinNode) events(o protocol.Occurrence, evs ...protocol.Event) {
	first := n.seq + 1
	for i := range evs {
		n.seq++
		evs[i].Seq = n.seq
		evs[i].Occurrence, evs[i].Announcement, evs[i].Content, evs[i].Drill = o.ID, o.Announcement, o.Content, o.Drill
		if evs[i].LateMS < 0 {
			evs[i].LateMS = 0
		}
	}
	n.unacked = append(n.unacked, evs...)
	if d := n.delay; d > 0 && time.Now().Before(n.delayUntil) {
		// A report of an alert with a window: sent the node's delay after
		// its time (or the start, if later), with the later events the
		// node has by then, as the agent's sender takes them along; a
		// batch already sent with an earlier one sends nothing.
		if w := time.Until(n.delayFrom); w > 0 {
			d += w
		}
		time.AfterFunc(d, func() {
			n.mu.Lock()
			defer n.mu.Unlock()
			if !n.closed && n.sent < first {
				n.sendPending()
			}
		})
	} else {
		n.sendPending()
	}
	if n.ackTimer == nil {
		n.ackTimer = time.AfterFunc(thinAckTimeout, n.resend)
	} else {
		n.ackTimer.Reset(thinAckTimeout)
	}
}

// sendPending publishes the events written and not sent yet as one batch.
// Called with n.mu held.
func (n *thinNode) sendPending() {
	i := slices.IndexFunc(n.unacked, func(e protocol.Event) bool { return e.Seq > n.sent })
	if i < 0 {
		return
	}
	evs := slices.Clone(n.unacked[i:])
	n.sendEvents(evs[0].Seq, evs)
}

// sendEvents publishes one event batch. Called with n.mu held.
func (n *thinNode) sendEvents(first uint64, evs []protocol.Event) {
	raw, err := protocol.Encode(protocol.TypeEvents, n.cred.Node, "controller", first, time.Now(), protocol.EventBatch{Epoch: n.epoch, Events: evs})
	if err != nil {
		fmt.Fprintf(os.Stderr, "thin node %s: encode events: %v\n", n.cred.Node, err)
		return
	}
	n.cl.Publish(n.topics.Node(n.cred.Node, protocol.ChanEvent), 1, false, raw)
	n.sent = max(n.sent, evs[len(evs)-1].Seq)
}

// ack drops the events the controller acknowledged.
func (n *thinNode) ack(seq uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.unacked = slices.DeleteFunc(n.unacked, func(e protocol.Event) bool { return e.Seq <= seq })
	if len(n.unacked) == 0 && n.ackTimer != nil {
		n.ackTimer.Stop()
	}
}

// resend sends the unacknowledged events again, from the first.
func (n *thinNode) resend() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || len(n.unacked) == 0 {
		return
	}
	resent.Add(uint64(len(n.unacked)))
	n.sendEvents(n.unacked[0].Seq, slices.Clone(n.unacked[:min(len(n.unacked), 100)]))
	n.ackTimer.Reset(thinAckTimeout)
}

// thinHeartbeatAfter is the wait before a node's next heartbeat: uniform
// in (0.8 × thinHeartbeat, thinHeartbeat], as the agent's heartbeatAfter
// (node/agent/spread.go), so the nodes that connected together drift
// apart as the agents do. (A fixed minute had the 10,000 first
// heartbeats arrive together, within the 13 s the nodes took to
// connect.)
func thinHeartbeatAfter() time.Duration {
	return thinHeartbeat - mrand.N(thinHeartbeat/5)
}

// resent counts the events this process sent again.
var resent atomic.Uint64

// dirty publishes the state a debounce after the first change of a burst.
// Called with n.mu held.
func (n *thinNode) dirty() {
	if n.pending {
		return
	}
	n.pending = true
	wait := thinStateDebounce
	if time.Now().Before(n.delayUntil) {
		wait += n.delay
	}
	time.AfterFunc(wait, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.pending = false
		if !n.closed {
			n.publishStateLocked()
		}
	})
}

// publishStateLocked publishes the node's retained state, like a
// firmware-sim agent's, and restarts the heartbeat. Called with n.mu held.
func (n *thinNode) publishStateLocked() {
	now := time.Now()
	mains, fault, door, charging := true, false, false, false
	volts, temp, ohms, rssi := 13.6, 30.1, 50.0, -75
	amp := n.amp
	disk, volume := int64(79274373120), 10
	st := protocol.State{
		Status: protocol.StatusOnline, At: now.UTC(), Agent: "firmware-sim", DesiredVersion: n.desired.Load(),
		CacheBytes: 30900, CacheLimit: 536870912, Outbox: 0, Keys: n.keys, HeartbeatMS: thinHeartbeat.Milliseconds(),
		UptimeS: int64(now.Sub(n.booted) / time.Second), DiskFreeBytes: &disk, Volume: &volume, AmplifierPolicy: protocol.AmpAuto,
		Board: &protocol.Board{Amplifier: amp, AmplifierCommand: &amp, AmplifierFault: &fault, SpeakerLine: protocol.LineOK,
			SpeakerOhms: &ohms, Mains: &mains, BatteryVolts: &volts, Charging: &charging, TemperatureC: &temp, DoorOpen: &door,
			RSSIDBm: &rssi, Link: "4g"},
	}
	if p := n.playing; p != nil {
		cp := *p
		st.Playing = &cp
	}
	raw, err := protocol.Encode(protocol.TypeState, n.cred.Node, "controller", 0, now, st)
	if err != nil {
		fmt.Fprintf(os.Stderr, "thin node %s: encode state: %v\n", n.cred.Node, err)
		return
	}
	n.cl.Publish(n.topics.Node(n.cred.Node, protocol.ChanState), 1, true, raw)
	if n.heartbeat == nil {
		n.heartbeat = time.AfterFunc(thinHeartbeatAfter(), func() {
			n.mu.Lock()
			defer n.mu.Unlock()
			if !n.closed {
				n.publishStateLocked()
			}
		})
	} else {
		n.heartbeat.Reset(thinHeartbeatAfter())
	}
}

// TestThinNodesCheckSignatures: unless told not to, a thin node checks an
// alert's signature before it holds it, as an agent does: one signed by
// another key is refused, one signed by the controller's key is held; so
// does a node sharing what its process opened, for a forged copy that
// arrives after the real one. (The check was lost once, for every run
// between 29bb364 and the fix; the benchmarks said it ran.)
func TestThinNodesCheckSignatures(t *testing.T) {
	for v, want := range map[string]thinCheck{"": thinCheckEach, "1": thinCheckEach, "0": thinCheckNone, "shared": thinCheckShared} {
		t.Setenv(envThinVerify, v)
		if got, err := thinChecks(); err != nil || got != want {
			t.Errorf("%s=%q: %v, %v; want %v", envThinVerify, v, got, err, want)
		}
	}
	t.Setenv(envThinVerify, "yes")
	if _, err := thinChecks(); err == nil {
		t.Errorf("%s=yes: no error", envThinVerify)
	}

	pub, key, _ := ed25519.GenerateKey(nil)
	_, otherKey, _ := ed25519.GenerateKey(nil)
	cred := &protocol.Credentials{Node: "n-1", Area: "12346", Broker: "tcp://127.0.0.1:1", Keys: []protocol.PublicKey{protocol.NewPublicKey(pub)}}
	topics := protocol.NewTopics(cred.Prefix())
	topic := topics.Area("12346", protocol.ChanCmd)
	parsed, err := topics.Parse(topic)
	if err != nil {
		t.Fatal(err)
	}
	seal := func(key ed25519.PrivateKey, id string) []byte {
		raw, err := protocol.NewSigner("controller", key, 0, nil).Seal(protocol.TypeCommand, parsed.Audience(), protocol.Command{Name: protocol.CmdAlert,
			Alert: &protocol.Alert{Occurrence: protocol.Occurrence{ID: id, Start: time.Now().Add(time.Hour), Expires: time.Now().Add(2 * time.Hour), Repeat: 1}}}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	forged, signed := seal(otherKey, "forged"), seal(key, "signed")
	shared := &thinShared{opened: map[string]map[string]*thinOpened{}}
	for _, check := range []thinCheck{thinCheckEach, thinCheckShared} {
		// Two nodes of one process: the first has a forged alert and a
		// signed one; the second the signed one (which the first opened),
		// then a copy of it forged.
		for k, then := range [][]byte{forged, seal(otherKey, "signed")} {
			n, err := newThinNode(cred, make(chan string, 16), &thinStarts{byInstant: map[thinStartKey]*thinStartGroup{}}, check, shared)
			if err != nil {
				t.Fatal(err)
			}
			n.cl = paho.NewClient(paho.NewClientOptions()) // not connected: what it publishes goes nowhere
			if k == 0 {
				n.receive(nil, thinTestMessage{topic, then})
				n.receive(nil, thinTestMessage{topic, signed})
			} else {
				n.receive(nil, thinTestMessage{topic, signed})
				n.mu.Lock()
				n.held = map[string]bool{}
				n.mu.Unlock()
				n.receive(nil, thinTestMessage{topic, then})
			}
			n.mu.Lock()
			if k == 0 && n.held["forged"] {
				t.Errorf("check %d: a thin node held an alert signed by a key it does not trust", check)
			}
			if k == 0 && !n.held["signed"] {
				t.Errorf("check %d: a thin node did not hold an alert signed by the controller's key", check)
			}
			if k == 1 && n.held["signed"] {
				t.Errorf("check %d: a thin node held a forged copy of an alert it had checked", check)
			}
			n.mu.Unlock()
			n.close()
		}
	}
}

// thinTestMessage is a received MQTT message for a thin node's receive.
type thinTestMessage struct {
	topic   string
	payload []byte
}

func (m thinTestMessage) Duplicate() bool   { return false }
func (m thinTestMessage) Qos() byte         { return 1 }
func (m thinTestMessage) Retained() bool    { return false }
func (m thinTestMessage) Topic() string     { return m.topic }
func (m thinTestMessage) MessageID() uint16 { return 1 }
func (m thinTestMessage) Payload() []byte   { return m.payload }
func (m thinTestMessage) Ack()              {}
