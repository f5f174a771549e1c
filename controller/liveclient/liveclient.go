// Package liveclient speaks live to areas through a controller's
// GET /api/v1/live WebSocket (docs/live.md): it sends 16 kHz mono 16-bit
// PCM in real time, a frame every 20 ms by default. It is the Go client of
// `loaxa-controller live` and of the end-to-end tests.
package liveclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"loaxa.vn/protocol"
	"loaxa.vn/protocol/nodeaudio"
)

// Options say where and how to speak.
type Options struct {
	URL      string   // the controller's base URL, e.g. https://loa.example.vn
	Token    string   // a bearer token from POST /api/v1/auth/token
	Areas    []string // target areas
	Priority string   // "priority" (default) or "emergency"
	Title    string
	// Drill opens the call as an exercise (diễn tập): marked as such to
	// the nodes, in their events, the record and the audit log.
	Drill bool
	// Volume, 1–15, plays the call at that level on every node whatever
	// its own volume (e.g. 3 for a quiet drill); 0 leaves each node's.
	Volume   int
	Frame    time.Duration // audio in one message; 0 means 20 ms
	Client   *http.Client  // nil: http.DefaultClient; redirects stay on the controller whatever its CheckRedirect
	OnStatus func(Status)  // called with each status the server sends
	OnSend   func(n int)   // called after each message of n samples is sent
}

// Status is a message of the server: "on_air" at the start, "ended" at
// the end.
type Status struct {
	State    string   `json:"state"`
	Call     string   `json:"call"`
	Areas    []string `json:"areas"`
	Priority string   `json:"priority"`
	Drill    bool     `json:"drill"`
	Volume   int      `json:"volume"`
	Frames   uint64   `json:"frames"`
	Reason   string   `json:"reason"`
	Detail   string   `json:"detail"`
	CutBy    string   `json:"cut_by"` // who cut the call, when Reason is "cut"
	// Started and Ended, in an "ended" status, are the call's recorded
	// times: how long it was on air.
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended"`
	// FailingAreas, in an "on_air" status, are the areas the call does not
	// reach now (Detail says why); it goes on for the others.
	FailingAreas []string `json:"failing_areas"`
	// Held, in an "on_air" status, are the alerts on air on some of the
	// call's clusters when it came, which hold the call back there; each
	// status after a change gives the whole list.
	Held []Hold `json:"held"`
	// Preempted, in an "on_air" status, is how many clusters an emergency
	// alert (or another higher level) cut the call off on: it is not
	// resumed there.
	Preempted int `json:"preempted"`
	// Nodes, in an "on_air" status, is how many clusters the call is for:
	// Preempted as many, no cluster plays it any more.
	Nodes int `json:"nodes"`
}

// Hold is an alert holding a call back on some of its clusters: Waiting
// of them wait for it to end, Joined began the call after it, Missed
// never did (it outlasted the call's 5 s start window).
type Hold struct {
	Alert string `json:"alert"` // the emergency's id (or a live call's)
	// Title and Drill are the alert's, when the controller found it:
	// what officers know it by.
	Title   string `json:"title"`
	Drill   bool   `json:"drill"`
	Waiting int    `json:"waiting"`
	Joined  int    `json:"joined"`
	Missed  int    `json:"missed"`
}

// ErrEnded is what Stream returns when the controller ended the call
// first: an officer cut it, or the controller is shutting down. Ended
// says how.
var ErrEnded = errors.New("live: the controller ended the call")

// Call is an open live call.
type Call struct {
	c      *websocket.Conn
	opt    Options
	status chan Status
	done   chan struct{}

	onAir Status // the server's "on_air" status, set by Dial

	mu    sync.Mutex
	ended *Status // the server's "ended" status, once it came
}

// ID is the call's id (live-…), as the controller named it.
func (c *Call) ID() string { return c.onAir.Call }

// OnAir is the server's "on_air" status: the call, its areas, priority,
// and whether it is a drill at which volume.
func (c *Call) OnAir() Status { return c.onAir }

// Ended returns the server's "ended" status, if the call is over.
func (c *Call) Ended() (Status, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended == nil {
		return Status{}, false
	}
	return *c.ended, true
}

// endedErr wraps ErrEnded with the server's reason.
func (c *Call) endedErr() error {
	st, _ := c.Ended()
	if st.CutBy != "" {
		return fmt.Errorf("%w: %s by %s", ErrEnded, st.Reason, st.CutBy)
	}
	return fmt.Errorf("%w: %s", ErrEnded, cmpOr(st.Reason, "connection closed"))
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Dial opens a call and waits for the server's "on_air".
func Dial(ctx context.Context, opt Options) (*Call, error) {
	if opt.Frame <= 0 {
		opt.Frame = 20 * time.Millisecond
	}
	u, err := url.Parse(strings.TrimRight(opt.URL, "/") + "/api/v1/live")
	if err != nil {
		return nil, fmt.Errorf("live: controller URL %q: %w", opt.URL, err)
	}
	q := url.Values{"areas": {strings.Join(opt.Areas, ",")}}
	if opt.Priority != "" {
		q.Set("priority", opt.Priority)
	}
	if opt.Title != "" {
		q.Set("title", opt.Title)
	}
	if opt.Drill {
		q.Set("drill", "1")
	}
	if opt.Volume != 0 {
		q.Set("volume", strconv.Itoa(opt.Volume))
	}
	u.RawQuery = q.Encode()
	h := http.Header{}
	if opt.Token != "" {
		h.Set("Authorization", "Bearer "+opt.Token)
	}
	c, resp, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{HTTPClient: stayOn(opt.Client, u), HTTPHeader: h})
	if errors.Is(err, protocol.ErrRedirectAway) {
		return nil, fmt.Errorf("live: %s: %w; give the address the controller itself answers at (the call sends its token to no other server)", u.Redacted(), err)
	}
	if err != nil {
		if resp != nil && resp.Body != nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			return nil, fmt.Errorf("live: %s: %s %s", u.Redacted(), resp.Status, strings.TrimSpace(string(b)))
		}
		return nil, fmt.Errorf("live: %s: %w", u.Redacted(), err)
	}
	call := &Call{c: c, opt: opt, status: make(chan Status, 4), done: make(chan struct{})}
	go call.read()
	select {
	case st, ok := <-call.status:
		if !ok || st.State != "on_air" {
			c.CloseNow()
			return nil, fmt.Errorf("live: the controller did not put the call on air (%+v)", st)
		}
		call.onAir = st
		return call, nil
	case <-ctx.Done():
		c.CloseNow()
		return nil, ctx.Err()
	}
}

// stayOn returns a copy of client (nil: http.DefaultClient) that follows
// redirects only on the controller at u: the dialer follows them with
// Go's client, which keeps the Authorization header on a redirect to
// another port of the same host, to a subdomain and from https to http.
// The dialer hands the check http(s) addresses, so u's ws(s) is
// compared as such.
func stayOn(client *http.Client, u *url.URL) *http.Client {
	if client == nil {
		client = http.DefaultClient
	}
	base := *u
	switch base.Scheme {
	case "ws":
		base.Scheme = "http"
	case "wss":
		base.Scheme = "https"
	}
	stay := *client
	stay.CheckRedirect = protocol.StayOnController(base.String())
	return &stay
}

func (c *Call) read() {
	defer close(c.done)
	defer close(c.status)
	for {
		typ, b, err := c.c.Read(context.Background())
		if err != nil {
			return
		}
		var st Status
		if typ != websocket.MessageText || json.Unmarshal(b, &st) != nil {
			continue
		}
		if st.State == "ended" {
			c.mu.Lock()
			c.ended = &st
			c.mu.Unlock()
		}
		if c.opt.OnStatus != nil {
			c.opt.OnStatus(st)
		}
		select {
		case c.status <- st:
		default:
		}
	}
}

// Stream sends the PCM of r (16 kHz mono s16le) paced in real time, until
// r ends or ctx does.
func (c *Call) Stream(ctx context.Context, r io.Reader) error {
	n := int(nodeaudio.Bytes(c.opt.Frame))
	buf := make([]byte, n)
	t := time.NewTicker(c.opt.Frame)
	defer t.Stop()
	for {
		k, err := io.ReadFull(r, buf)
		if k > 0 {
			if werr := c.c.Write(ctx, websocket.MessageBinary, buf[:k&^1]); werr != nil {
				return c.writeFailed(ctx, werr)
			}
			if c.opt.OnSend != nil {
				c.opt.OnSend(k / 2)
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("live: audio: %w", err)
		}
		select {
		case <-t.C:
		case <-c.done:
			return c.endedErr()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// writeFailed says why a write failed. A controller that ends the call
// sends its "ended" status and closes: a write can fail on the closed
// connection before the reader has taken that status. The reader stops
// once the connection is closed, so wait for it (a little) and then tell
// an ended call from a broken one.
func (c *Call) writeFailed(ctx context.Context, werr error) error {
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-c.done:
	case <-ctx.Done():
	case <-t.C:
	}
	if _, ok := c.Ended(); ok {
		return c.endedErr()
	}
	return fmt.Errorf("live: send: %w", werr)
}

// End ends the call cleanly and returns the server's last status; if the
// controller ended the call first, that status.
func (c *Call) End(ctx context.Context) (Status, error) {
	if st, ok := c.Ended(); ok {
		c.c.CloseNow()
		<-c.done
		return st, nil // the controller ended it first
	}
	if err := c.c.Write(ctx, websocket.MessageText, []byte(`{"type":"end"}`)); err != nil {
		c.c.CloseNow()
		return Status{}, fmt.Errorf("live: end: %w", err)
	}
	var last Status
	for {
		select {
		case st, ok := <-c.status:
			if !ok {
				c.c.CloseNow()
				if last.State != "ended" {
					return last, errors.New("live: the controller closed without ending the call")
				}
				return last, nil
			}
			last = st
		case <-ctx.Done():
			c.c.CloseNow()
			return last, ctx.Err()
		}
	}
}

// Drop disconnects at once, as a browser tab closing would.
func (c *Call) Drop() {
	c.c.CloseNow()
	<-c.done
}
