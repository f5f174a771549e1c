package fleet

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"loaxa.vn/internal/mosquittotest"
	"loaxa.vn/node/agent"
	"loaxa.vn/protocol"
)

// TestMain checks that the fleet leaves no goroutine behind. paho's
// connect-retry goroutine outlives Link.Close by up to its retry interval
// (1s in node/mqtt) when the broker was never reached, so leaks are polled
// for a few seconds rather than checked once.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(5 * time.Second)
		for err := goleak.Find(); err != nil; err = goleak.Find() {
			if time.Now().After(deadline) {
				fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
				code = 1
				break
			}
			time.Sleep(100 * time.Millisecond) // polling interval
		}
	}
	os.Exit(code)
}

const token = "good-token"

// controller is a fake of the controller's node enrolment route.
type controller struct {
	t      *testing.T
	srv    *httptest.Server
	broker string
	pub    ed25519.PublicKey
	signer *protocol.Signer // signs commands as the controller does
	// answer, if set, replaces the normal answer for a node id.
	answer func(id string, w http.ResponseWriter) bool

	mu       sync.Mutex
	requests []enrolRequest
	exists   map[string]bool
}

func newController(t *testing.T, broker string) *controller {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c := &controller{t: t, broker: broker, pub: pub, signer: protocol.NewSigner("controller", key, 0, nil), exists: map[string]bool{}}
	c.srv = httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(c.srv.Close)
	return c
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`, code, message)
}

func (c *controller) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/api/v1/nodes" {
		// The agents also ask for the time and for content; this fake
		// only enrols.
		writeError(w, http.StatusNotFound, "not_found", "no such route in the fake controller")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+token {
		writeError(w, http.StatusUnauthorized, "unauthorized", "Token expired; log in again.")
		return
	}
	var req enrolRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid", "body is not JSON")
		return
	}
	c.mu.Lock()
	c.requests = append(c.requests, req)
	exists := c.exists[req.ID]
	c.exists[req.ID] = true
	c.mu.Unlock()
	if c.answer != nil && c.answer(req.ID, w) {
		return
	}
	if exists {
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("Node %q exists already; choose another id.", req.ID))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(map[string]any{
		"node":        map[string]any{"id": req.ID, "name": req.Name, "area": req.Area},
		"credentials": c.credentials(req.ID, req.Area),
	})
}

func (c *controller) credentials(id, area string) *protocol.Credentials {
	return &protocol.Credentials{
		Node:        id,
		Area:        area,
		Areas:       []string{area},
		Controller:  c.srv.URL,
		Broker:      c.broker,
		Username:    id,
		Secret:      "secret-of-" + id,
		TopicPrefix: protocol.DefaultPrefix,
		Keys:        []protocol.PublicKey{protocol.NewPublicKey(c.pub)},
	}
}

func (c *controller) enrolments() []enrolRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]enrolRequest(nil), c.requests...)
}

// deadBroker is a broker URL nobody listens on: agents keep retrying.
func deadBroker(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "tcp://" + addr
}

// fastAgents shortens the agents' waits so tests end quickly.
func fastAgents(c *agent.Config) {
	c.StateDebounce = 10 * time.Millisecond
	c.MQTTMaxReconnect = 200 * time.Millisecond
}

// nodeState is a state message and the node that sent it.
type nodeState struct {
	node  string
	state protocol.State
}

// states subscribes to every node's state topic and returns the states
// received.
func states(t *testing.T, broker string) <-chan nodeState {
	t.Helper()
	topics := protocol.NewTopics(protocol.DefaultPrefix)
	got := make(chan nodeState, 64)
	opts := mqtt.NewClientOptions().AddBroker(broker).SetClientID("observer")
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("observer connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	tok := c.Subscribe(topics.AllNodes(protocol.ChanState), 1, func(_ mqtt.Client, m mqtt.Message) {
		env, err := protocol.Parse(m.Payload())
		if err != nil {
			t.Errorf("state on %s: %v", m.Topic(), err)
			return
		}
		var st protocol.State
		if err := env.Decode(&st); err != nil {
			t.Errorf("state on %s: %v", m.Topic(), err)
			return
		}
		select {
		case got <- nodeState{env.From, st}:
		default:
			t.Errorf("observer channel full")
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("observer subscribe: %v", tok.Error())
	}
	return got
}

// awaitStates collects states until every node in ids has reported want.
func awaitStates(t *testing.T, got <-chan nodeState, want protocol.Status, ids []string) map[string]protocol.State {
	t.Helper()
	seen := map[string]protocol.State{}
	timeout := time.After(15 * time.Second)
	for len(seen) < len(ids) {
		select {
		case ns := <-got:
			if ns.state.Status == want && slices.Contains(ids, ns.node) {
				seen[ns.node] = ns.state
			}
		case <-timeout:
			t.Fatalf("%s states from %d of %v nodes within 15s", want, len(seen), ids)
		}
	}
	return seen
}

func TestRunsAgentsOnSimulatedBoards(t *testing.T) {
	broker := mosquittotest.Start(t, mosquittotest.Options{AllowAnonymous: true})
	ctl := newController(t, broker.URL())
	observed := states(t, broker.URL())

	f, err := Start(context.Background(), Config{
		Controller: ctl.srv.URL,
		Token:      token,
		Nodes:      3,
		Area:       "xa-an-lu",
		Prefix:     "run",
		Tune:       fastAgents,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	reqs := ctl.enrolments()
	if len(reqs) != 3 || f.Enrolled() != 3 || f.Reused() != 0 {
		t.Fatalf("%d enrolment requests, Enrolled %d, Reused %d; want 3, 3, 0", len(reqs), f.Enrolled(), f.Reused())
	}
	ids := []string{"run-0001", "run-0002", "run-0003"}
	for _, r := range reqs {
		if r.Area != "xa-an-lu" || r.Name == "" || r.Lat < 20 || r.Lat > 21 || r.Lon < 106 || r.Lon > 108 {
			t.Errorf("enrolment %+v: want area xa-an-lu, a name and a position near Hải Phòng", r)
		}
	}
	for i, s := range f.Sims() {
		if s.ID != ids[i] || f.Sim(ids[i]) != s {
			t.Fatalf("sim %d is %s, want %s", i, s.ID, ids[i])
		}
	}
	if n := f.WaitConnected(context.Background(), 15*time.Second); n != 3 {
		t.Fatalf("%d of 3 agents connected", n)
	}
	online := awaitStates(t, observed, protocol.StatusOnline, ids)
	for id, st := range online {
		if st.Board == nil || st.Board.Mains == nil || !*st.Board.Mains || st.Board.BatteryVolts == nil {
			t.Errorf("%s reported board %+v, want the simulated board's sensors", id, st.Board)
		}
	}

	// A fault injected on one board shows in that agent's status only.
	f.Sims()[1].Board.CutMains()
	for i, s := range f.Sims() {
		mains := *s.Agent().Status().Board.Mains
		if mains != (i != 1) {
			t.Errorf("%s: mains %v after cutting run-0002's", s.ID, mains)
		}
	}
	if f.Running() != 3 {
		t.Fatalf("%d agents running, want 3", f.Running())
	}

	if err := f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if f.Running() != 0 {
		t.Fatalf("%d agents still running after Close", f.Running())
	}
	awaitStates(t, observed, protocol.StatusOffline, ids)
	for _, s := range f.Sims() {
		if err := s.Err(); err != nil {
			t.Errorf("%s stopped with %v", s.ID, err)
		}
	}
}

func TestDataDirKeepsCredentials(t *testing.T) {
	ctl := newController(t, deadBroker(t))
	data := t.TempDir()
	cfg := Config{Controller: ctl.srv.URL, Token: token, Nodes: 2, Area: "xa-an-lu", DataDir: data, Tune: fastAgents}

	f, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if f.Enrolled() != 2 {
		t.Fatalf("first run enrolled %d, want 2", f.Enrolled())
	}
	for _, id := range []string{"sim-0001", "sim-0002"} {
		path := filepath.Join(data, id, credentialsFile)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatalf("credentials of %s not saved: %v", id, err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is %v: it holds a secret and must be private", path, fi.Mode().Perm())
		}
		c, err := protocol.ReadCredentials(path)
		if err != nil || c.Secret != "secret-of-"+id {
			t.Errorf("saved credentials of %s: %+v, %v", id, c, err)
		}
		if _, err := os.Stat(filepath.Join(data, id, "node.db")); err != nil {
			t.Errorf("store of %s: %v", id, err)
		}
	}

	// The second run enrols nothing: the controller would refuse (409).
	cfg.Token = "" // not needed when every node has saved credentials
	again, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(ctl.enrolments()); n != 2 || again.Enrolled() != 0 || again.Reused() != 2 {
		t.Fatalf("second run: %d enrolments in all, Enrolled %d, Reused %d; want 2, 0, 2", n, again.Enrolled(), again.Reused())
	}

	// Growing the fleet enrols only the new node.
	cfg.Token, cfg.Nodes = token, 3
	grown, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("third run: %v", err)
	}
	if err := grown.Close(); err != nil {
		t.Fatal(err)
	}
	if grown.Enrolled() != 1 || grown.Reused() != 2 {
		t.Fatalf("third run: Enrolled %d, Reused %d; want 1, 2", grown.Enrolled(), grown.Reused())
	}
}

func TestEnrolmentErrors(t *testing.T) {
	tests := []struct {
		name   string
		token  string
		exists bool
		answer func(w http.ResponseWriter)
		want   []string // substrings of the error
		is     error
	}{
		{name: "node exists", token: token, exists: true, want: []string{"sim-0001", "--prefix", "--data", "exists already"}, is: ErrNodeExists},
		{name: "bad token", token: "stale", want: []string{"401", "Token expired", "POST /api/v1/auth/token"}},
		{name: "no token", token: "", want: []string{"--token"}},
		{name: "forbidden", token: token, answer: func(w http.ResponseWriter) {
			writeError(w, http.StatusForbidden, "forbidden", "You may manage nodes in xa-khac only.")
		}, want: []string{"403", "xa-khac only"}},
		{name: "invalid", token: token, answer: func(w http.ResponseWriter) {
			writeError(w, http.StatusBadRequest, "invalid", "There is no area \"xa-an-lu\".")
		}, want: []string{"400", "no area"}},
		{name: "not JSON", token: token, answer: func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte("<html>"))
		}, want: []string{"not JSON"}},
		{name: "no credentials", token: token, answer: func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{"node":{"id":"sim-0001"}}`))
		}, want: []string{"without a credentials document"}},
		{name: "unusable credentials", token: token, answer: func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{"credentials":{"node":"sim-0001","area":"xa-an-lu"}}`))
		}, want: []string{"unusable", "controller"}},
		{name: "internal error page", token: token, answer: func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusBadGateway)
			w.Write([]byte("proxy down"))
		}, want: []string{"502", "proxy down"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctl := newController(t, deadBroker(t))
			if tt.exists {
				ctl.exists["sim-0001"] = true
			}
			if tt.answer != nil {
				ctl.answer = func(_ string, w http.ResponseWriter) bool { tt.answer(w); return true }
			}
			f, err := Start(context.Background(), Config{Controller: ctl.srv.URL, Token: tt.token, Nodes: 1, Area: "xa-an-lu"})
			if err == nil {
				f.Close()
				t.Fatal("Start succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
		})
	}
}

// TestEnrolsAnHTTPSControllerUnderItsOwnCA: a technician running the fleet
// against a controller with the province's own CA (or a self-signed
// certificate) got "certificate signed by unknown authority" for every
// node, with no way to tell the fleet the certificate (node --enrol has
// --ca). Without ControllerCA the error must say how; with it the fleet
// must enrol.
func TestEnrolsAnHTTPSControllerUnderItsOwnCA(t *testing.T) {
	ctl := newController(t, deadBroker(t))
	srv := httptest.NewTLSServer(http.HandlerFunc(ctl.serve))
	t.Cleanup(srv.Close)
	cfg := Config{Controller: srv.URL, Token: token, Nodes: 1, Area: "xa-an-lu", Tune: fastAgents}

	f, err := Start(context.Background(), cfg)
	if err == nil {
		f.Close()
		t.Fatal("Start succeeded without the controller's certificate")
	}
	for _, want := range []string{"unknown authority", "--ca", "--tls-ca"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if n := len(ctl.enrolments()); n != 0 {
		t.Fatalf("%d enrolments reached the controller through a handshake that failed", n)
	}

	cfg.ControllerCA = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	f, err = Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("with the controller's certificate: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if f.Enrolled() != 1 || len(ctl.enrolments()) != 1 {
		t.Fatalf("enrolled %d (%d requests), want 1", f.Enrolled(), len(ctl.enrolments()))
	}
}

// TestEnrolFollowsNoRedirectAwayFromTheController: the fleet's enrolment
// (POST /api/v1/nodes with the officer's token) followed a 307 or 308 to
// any host, and Go's client keeps the Authorization header when only the
// port differs: another server on the controller's host got the token and
// the node's details. As the node agent does (protocol.StayOnController),
// the fleet follows redirects on the controller's own scheme, host and
// port only; the other server must not be asked.
func TestEnrolFollowsNoRedirectAwayFromTheController(t *testing.T) {
	other := newController(t, deadBroker(t)) // would enrol, and hand out credentials
	front := newController(t, deadBroker(t))
	var to atomic.Value // where the controller sends POST /api/v1/nodes
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/nodes" && r.URL.RawQuery == "" {
			http.Redirect(w, r, to.Load().(string), http.StatusTemporaryRedirect)
			return
		}
		front.serve(w, r)
	}))
	t.Cleanup(srv.Close)

	to.Store(other.srv.URL + "/api/v1/nodes")
	cfg := Config{Controller: srv.URL, Token: token, Nodes: 1, Area: "xa-an-lu", Tune: fastAgents}
	f, err := Start(context.Background(), cfg)
	if err == nil {
		f.Close()
		t.Fatal("Start succeeded through a redirect to another server")
	}
	if !errors.Is(err, protocol.ErrRedirectAway) || !strings.Contains(err.Error(), "--controller") {
		t.Errorf("error %q: want ErrRedirectAway, saying what to give --controller", err)
	}
	if n := len(other.enrolments()); n != 0 {
		t.Fatalf("the other server was asked to enrol %d nodes, with the fleet's token", n)
	}

	// A redirect on the controller itself is followed.
	to.Store("/api/v1/nodes?moved=1")
	f, err = Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("through a redirect on the controller: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if f.Enrolled() != 1 || len(front.enrolments()) != 1 {
		t.Fatalf("enrolled %d (%d requests), want 1", f.Enrolled(), len(front.enrolments()))
	}
}

func TestPartialEnrolmentWithoutDataDirWarns(t *testing.T) {
	ctl := newController(t, deadBroker(t))
	ctl.exists["sim-0003"] = true
	_, err := Start(context.Background(), Config{Controller: ctl.srv.URL, Token: token, Nodes: 3, Area: "xa-an-lu", EnrolWorkers: 1})
	if !errors.Is(err, ErrNodeExists) || !strings.Contains(err.Error(), "2 nodes were enrolled") {
		t.Fatalf("error %v: want ErrNodeExists saying 2 nodes were enrolled and their credentials lost", err)
	}
}

func TestConfigErrors(t *testing.T) {
	good := Config{Controller: "http://127.0.0.1:1", Token: token, Nodes: 1, Area: "xa-an-lu"}
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no controller", func(c *Config) { c.Controller = "" }, "controller"},
		{"controller not http", func(c *Config) { c.Controller = "tcp://x:1883" }, "base URL"},
		{"no nodes", func(c *Config) { c.Nodes = 0 }, "at least 1"},
		{"bad area", func(c *Config) { c.Area = "Xã An Lư" }, "area"},
		{"bad prefix", func(c *Config) { c.Prefix = "Sim" }, "prefix"},
		{"too long prefix", func(c *Config) { c.Prefix = strings.Repeat("p", 64) }, "prefix"},
		{"impossible board", func(c *Config) { c.Board.BatteryFullVolts = 1 }, "board config"},
		{"more nodes than files", func(c *Config) { c.Nodes, c.DataDir = 50_000_000, t.TempDir() }, "open files"},
		{"controller CA not PEM", func(c *Config) { c.ControllerCA = "not a certificate" }, "controller CA"},
		{"place off the globe", func(c *Config) { c.Place = &Place{91, 106.5} }, "place 91,106.5"},
		{"place not a number", func(c *Config) { c.Place = &Place{math.NaN(), 106.5} }, "place NaN"},
		{"last box off the globe", func(c *Config) { c.Place, c.Nodes = &Place{89.99, 106.5}, 100 }, "for the last box too (90.008,"},
		{"controller CA and a client", func(c *Config) {
			c.ControllerCA, c.HTTPClient = "not a certificate", http.DefaultClient
		}, "not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.change(&cfg)
			f, err := Start(context.Background(), cfg)
			if err == nil {
				f.Close()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestRunStopsWithContext(t *testing.T) {
	ctl := newController(t, deadBroker(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Controller: ctl.srv.URL, Token: token, Nodes: 2, Area: "xa-an-lu", Tune: fastAgents})
	}()
	// Cancel once the controller has seen both enrolments. The last answer
	// may still be on its way, so Run may stop during enrolment (returning
	// the cancellation) or while running (returning nil); either way it
	// must stop.
	deadline := time.Now().Add(10 * time.Second)
	for len(ctl.enrolments()) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("fleet did not enrol within 10s")
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	cancel()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want nil or the cancellation", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// TestEachAreaHasItsOwnPlace: every fleet stood on one grid whatever its
// area, so on a walk-through a CAP circle drawn around one commune's
// simulated clusters held the other commune's too, and alerted both.
// Each area's boxes now stand at a place of its own: sibling communes'
// boxes (consecutive codes) are kilometres apart, a code that is not a
// number has a place too, and a place is the same in every run.
func TestEachAreaHasItsOwnPlace(t *testing.T) {
	const n = 30 // a commune's clusters
	ctl := newController(t, deadBroker(t))
	boxes := func(area, prefix string) [][2]float64 {
		t.Helper()
		before := len(ctl.enrolments())
		f, err := Start(context.Background(), Config{Controller: ctl.srv.URL, Token: token, Nodes: n, Area: area, Prefix: prefix, Tune: fastAgents})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		var out [][2]float64
		for _, r := range ctl.enrolments()[before:] {
			out = append(out, [2]float64{r.Lat, r.Lon})
		}
		slices.SortFunc(out, func(a, b [2]float64) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) })
		return out
	}
	// 11527 and 11719, two communes of Hải Phòng 192 codes apart, shared
	// a place on the 12 × 16 grid of 06f48d9.
	areas := []string{"12346", "12347", "12348", "xa-an-lu", "11527", "11719"}
	placed := map[string][][2]float64{}
	for _, a := range areas {
		placed[a] = boxes(a, "p"+a)
		for _, p := range placed[a] {
			if p[0] < 20.2 || p[0] > 21.5 || p[1] < 106.0 || p[1] > 107.35 {
				t.Fatalf("area %s: a box at %v, want one on the grid around Hải Phòng", a, p)
			}
		}
	}
	if again := boxes("12346", "again"); !slices.Equal(again, placed["12346"]) {
		t.Errorf("area 12346 placed at %v, then at %v: want the same place in every run", placed["12346"][:2], again[:2])
	}
	for i, a := range areas {
		for _, b := range areas[i+1:] {
			closest := math.Inf(1)
			for _, p := range placed[a] {
				for _, q := range placed[b] {
					closest = min(closest, distanceKM(p, q))
				}
			}
			if closest < 2 {
				t.Errorf("areas %s and %s: boxes %.2f km apart, want at least 2 km", a, b, closest)
			}
		}
	}
}

// TestAFleetStandsWhereItIsTold: two areas whose codes are 1,024 apart
// (or two hashed codes) share a place, and a fleet could not be stood
// where a real alert's area lies; Config.Place (--place) puts its first
// box there, the others in rows of 10 northwards.
func TestAFleetStandsWhereItIsTold(t *testing.T) {
	ctl := newController(t, deadBroker(t))
	f, err := Start(context.Background(), Config{Controller: ctl.srv.URL, Token: token, Nodes: 12, Area: "12346",
		Place: &Place{20.7, 106.55}, Tune: fastAgents})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got := map[string][2]float64{}
	for _, r := range ctl.enrolments() {
		got[r.ID] = [2]float64{r.Lat, r.Lon}
	}
	for id, want := range map[string][2]float64{"sim-0001": {20.7, 106.55}, "sim-0010": {20.7, 106.568}, "sim-0011": {20.702, 106.55}, "sim-0012": {20.702, 106.552}} {
		if p, ok := got[id]; !ok || math.Abs(p[0]-want[0]) > 1e-9 || math.Abs(p[1]-want[1]) > 1e-9 {
			t.Errorf("%s enrolled at %v (found %v), want %v", id, p, ok, want)
		}
	}
}

// TestCodesLessThan1024ApartNeverShareAPlace: a province's communes have
// official codes within a few hundred of each other (Hải Phòng's from
// about 11290 to 11940 before the 2025 merger); on the grid of 06f48d9
// (192 places) every code shared its place with those 192 apart, so two
// fleets for two communes of one province could stand on one place. Now
// no two codes less than 1,024 apart do, and a fleet of 100 boxes keeps
// 2 km from the boxes of the places around its own.
func TestCodesLessThan1024ApartNeverShareAPlace(t *testing.T) {
	seen := map[[2]float64]string{}
	for code := 11290; code < 11290+1024; code++ {
		lat, lon := areaPlace(strconv.Itoa(code))
		p := [2]float64{math.Round(lat * 1e6), math.Round(lon * 1e6)}
		if other, ok := seen[p]; ok {
			t.Fatalf("areas %s and %d stand on one place (%.2f, %.2f)", other, code, lat, lon)
		}
		seen[p] = strconv.Itoa(code)
	}
	// 11527's place is inside the grid: its neighbours are the places
	// of 11526, 11528 (west, east), 11495 and 11559 (south, north), and
	// the four corners between.
	boxes := func(area string) [][2]float64 {
		var out [][2]float64
		start := Config{Area: area}.start()
		for i := range 100 {
			lat, lon := boxPosition(start, i)
			out = append(out, [2]float64{lat, lon})
		}
		return out
	}
	mine := boxes("11527")
	for _, other := range []int{11526, 11528, 11495, 11559, 11494, 11496, 11558, 11560} {
		closest := math.Inf(1)
		for _, p := range mine {
			for _, q := range boxes(strconv.Itoa(other)) {
				closest = min(closest, distanceKM(p, q))
			}
		}
		if closest < 2 {
			t.Errorf("100 boxes of 11527 and of %d: %.2f km apart, want at least 2 km", other, closest)
		}
	}
}

// distanceKM is the great-circle distance between two positions (lat, lon).
func distanceKM(p, q [2]float64) float64 {
	const r = 6371.0
	rad := math.Pi / 180
	dLat, dLon := (q[0]-p[0])*rad, (q[1]-p[1])*rad
	h := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(p[0]*rad)*math.Cos(q[0]*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * r * math.Asin(math.Sqrt(h))
}
