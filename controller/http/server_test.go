package http_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/emergency"
	"loaxa.vn/controller/health"
	lhttp "loaxa.vn/controller/http"
	"loaxa.vn/controller/live"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/media"
	"loaxa.vn/controller/schedule"
	"loaxa.vn/internal/clock"
	"loaxa.vn/internal/syncbuf"
	"loaxa.vn/protocol"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeScheduler counts Changed calls; the real scheduler is another
// component, and the API only has to tell it.
type fakeScheduler struct{ changed atomic.Int64 }

var _ loaxa.Scheduler = (*fakeScheduler)(nil)

func (f *fakeScheduler) Changed() { f.changed.Add(1) }

// fakeAlerts records the alert commands the API has sent.
type fakeAlerts struct {
	mu   sync.Mutex
	sent []sentAlert
	away error // returned for every command while set: the broker away
}

// setAway has every command fail with err (nil: sent again).
func (f *fakeAlerts) setAway(err error) {
	f.mu.Lock()
	f.away = err
	f.mu.Unlock()
}

type sentAlert struct {
	scope, id string // "area" or "node", and its id
	cmd       protocol.Command
	ttl       time.Duration
}

var _ loaxa.AlertMessenger = (*fakeAlerts)(nil)

func (f *fakeAlerts) SendAreaCommand(_ context.Context, area string, cmd protocol.Command, ttl time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.away != nil {
		return f.away
	}
	f.sent = append(f.sent, sentAlert{"area", area, cmd, ttl})
	return nil
}

func (f *fakeAlerts) SendNodeCommand(_ context.Context, node string, cmd protocol.Command, ttl time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.away != nil {
		return f.away
	}
	f.sent = append(f.sent, sentAlert{"node", node, cmd, ttl})
	return nil
}

func (f *fakeAlerts) commands() []sentAlert {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sentAlert(nil), f.sent...)
}

// t0 is the fake clock's start: a Monday morning in Hải Phòng.
var t0 = time.Date(2026, 3, 2, 5, 0, 0, 0, time.FixedZone("+07", 7*3600))

// testPassword is every test user's password; its bcrypt hash is made once
// per test binary, at bcrypt's lowest cost (as the test server sets
// passwords), because bcrypt is slow under the race detector.
const testPassword = "mat-khau-dai-du"

var testPasswordHash = sync.OnceValues(func() ([]byte, error) { return loaxa.HashPassword(testPassword, bcrypt.MinCost) })

// env is a server over a real store and a real audio library in a temp
// dir, on a fake clock, behind httptest.
type env struct {
	t     testing.TB
	clock *clock.Fake
	db    *bolt.DB
	lib   *media.Library
	sched *fakeScheduler
	srv   *lhttp.Server
	ts    *httptest.Server
	logs  *syncbuf.Buffer
	key   protocol.PublicKey
	admin string // token of user admin (whole tree)
	// emergency sends through alerts, a fake broker; e2e tests use the
	// real one.
	emergency *emergency.Service
	alerts    *fakeAlerts
	caps      *bolt.CapService
	stores    struct {
		areas      *bolt.AreaService
		nodes      *bolt.NodeService
		contents   *bolt.ContentService
		anns       *bolt.AnnouncementService
		deliveries *bolt.DeliveryService
		events     *bolt.EventService
		users      *bolt.UserService
		desired    *bolt.DesiredService
		audit      *bolt.AuditService
		keys       *bolt.KeyService
		sessions   *bolt.SessionService
		holidays   *bolt.HolidayService
		proposals  *bolt.ProposalService
		alarms     *bolt.AlarmService
		standing   *bolt.StandingService
	}
	health *health.Monitor
	msgs   *fakeMessenger
	// live keeps live call records; liveMsgs records what calls publish.
	live     *live.Service
	liveMsgs *recordLive
}

// newEnv starts a server; configure may change it before it serves.
func newEnv(t testing.TB, configure ...func(*lhttp.Server)) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, clock: clock.NewFake(t0), sched: &fakeScheduler{}, logs: &syncbuf.Buffer{}}
	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	e.db = bolt.NewDB(filepath.Join(dir, "loaxa.db"))
	e.db.Now = e.clock.Now
	e.db.Logger = logger
	if err := e.db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.db.Close() })
	e.lib = media.NewLibrary(dir)
	e.lib.Logger = logger
	if err := e.lib.Open(); err != nil {
		t.Fatal(err)
	}
	signing, err := e.db.SigningKey()
	if err != nil {
		t.Fatal(err)
	}
	e.key = protocol.NewPublicKey(protocol.NewSigner("controller", signing, 0, e.clock.Now).PublicKey())

	st := &e.stores
	st.areas, st.nodes, st.contents = bolt.NewAreaService(e.db), bolt.NewNodeService(e.db), bolt.NewContentService(e.db)
	st.anns, st.deliveries, st.events = bolt.NewAnnouncementService(e.db), bolt.NewDeliveryService(e.db), bolt.NewEventService(e.db)
	st.users, st.desired, st.audit = bolt.NewUserService(e.db), bolt.NewDesiredService(e.db), bolt.NewAuditService(e.db)
	st.sessions, st.holidays, st.proposals = bolt.NewSessionService(e.db), bolt.NewHolidayService(e.db), bolt.NewProposalService(e.db)
	// The real scheduler answers programme and conflict questions; nothing
	// runs it, so it publishes nothing.
	prog := schedule.NewScheduler()
	prog.AreaService, prog.NodeService, prog.AnnouncementService, prog.ContentService = st.areas, st.nodes, st.anns, st.contents
	prog.SessionService, prog.HolidayService, prog.ProposalService = st.sessions, st.holidays, st.proposals
	prog.Clock = e.clock

	s := lhttp.NewServer()
	s.PasswordCost = bcrypt.MinCost
	s.ControllerKeys = []protocol.PublicKey{e.key}
	s.TimeSigner = protocol.NewSigner("controller", signing, 0, e.clock.Now)
	s.Now = e.clock.Now
	s.Logger = logger
	s.AreaService, s.NodeService, s.ContentService, s.MediaService = st.areas, st.nodes, st.contents, e.lib
	s.AnnouncementService, s.DeliveryService, s.EventService = st.anns, st.deliveries, st.events
	s.UserService, s.DesiredService, s.Scheduler, s.AuditService = st.users, st.desired, e.sched, st.audit
	st.keys = bolt.NewKeyService(e.db)
	s.KeyService = st.keys
	s.SessionService, s.HolidayService, s.ProposalService, s.ProgrammeService = st.sessions, st.holidays, st.proposals, prog
	e.alerts = &fakeAlerts{}
	st.alarms, e.msgs = bolt.NewAlarmService(e.db), &fakeMessenger{}
	em := emergency.NewService()
	em.Store, em.Areas, em.Nodes, em.Contents, em.Media = bolt.NewEmergencyService(e.db), st.areas, st.nodes, st.contents, e.lib
	em.Deliveries, em.Alarms, em.Messenger, em.Clock, em.Logger = st.deliveries, st.alarms, e.alerts, e.clock, logger
	e.emergency = em
	s.EmergencyService = em
	st.standing = bolt.NewStandingService(e.db)
	s.StandingService = st.standing
	e.caps = bolt.NewCapService(e.db)
	s.CapStore = e.caps
	e.health = health.NewMonitor()
	e.health.Clock, e.health.Nodes, e.health.Alarms, e.health.Tests, e.health.Messenger = e.clock, st.nodes, st.alarms, st.alarms, e.msgs
	e.health.Logger = logger
	if err := e.health.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.health.Close)
	s.HealthService, s.AlarmService, s.SelfTestService, s.Messenger = e.health, st.alarms, st.alarms, e.msgs
	e.live, e.liveMsgs = live.NewService(), &recordLive{}
	e.live.Store, e.live.Nodes, e.live.Deliveries, e.live.Audit = bolt.NewLiveCallService(e.db), st.nodes, st.deliveries, st.audit
	e.live.Clock, e.live.Logger, e.live.Emergencies = e.clock, logger, em.Store
	s.Live, s.LiveCalls = e.liveMsgs, e.live
	for _, f := range configure {
		f(s)
	}
	e.srv = s
	e.ts = httptest.NewServer(s.Handler())
	t.Cleanup(e.ts.Close)

	e.admin = e.addUser("admin", loaxa.RoleAdmin, "")
	return e
}

// addUser stores a user directly and returns a live token for them, so
// tests do not pay a bcrypt per sign-in; TestAuthFlow covers signing in.
func (e *env) addUser(username string, role loaxa.Role, area string) string {
	e.t.Helper()
	hash, err := testPasswordHash()
	if err != nil {
		e.t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.stores.users.CreateUser(ctx, &loaxa.User{Username: username, Role: role, Area: area, PasswordHash: hash}); err != nil {
		e.t.Fatal(err)
	}
	return e.token(username)
}

func (e *env) token(username string) string {
	e.t.Helper()
	tok, err := e.stores.users.CreateToken(context.Background(), username, e.clock.Now().Add(time.Hour))
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// response is an answer read whole.
type response struct {
	status int
	header http.Header
	body   []byte
}

// request sends a request with an optional bearer token and body.
func (e *env) request(method, path, token, contentType string, body io.Reader, header ...string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.ts.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read answer: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// call sends in as JSON (nil: no body) and decodes a want-status answer
// into out.
func (e *env) call(method, path, token string, in any, want int, out any) response {
	e.t.Helper()
	var body io.Reader
	ct := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			e.t.Fatal(err)
		}
		body, ct = bytes.NewReader(b), "application/json"
	}
	r := e.request(method, path, token, ct, body)
	if r.status != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, want, r.body)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			e.t.Fatalf("%s %s: decode %s: %v", method, path, r.body, err)
		}
	}
	return r
}

// apiError is the error body every failure has.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// checkError checks that r is an error answer with status, code and a
// message containing msg.
func checkError(t *testing.T, r response, status int, code, msg string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want JSON", ct)
	}
	var e apiError
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q is not the JSON error shape: %v", r.body, err)
	}
	if e.Error.Code != code {
		t.Errorf("code %q, want %q (message %q)", e.Error.Code, code, e.Error.Message)
	}
	if !strings.Contains(e.Error.Message, msg) {
		t.Errorf("message %q does not contain %q", e.Error.Message, msg)
	}
}

// wav returns a 16-bit PCM WAV of a 440 Hz tone.
func wav(rate, channels, frames int) []byte {
	data := frames * channels * 2
	b := make([]byte, 44, 44+data)
	copy(b[0:], "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+data))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1)
	binary.LittleEndian.PutUint16(b[22:], uint16(channels))
	binary.LittleEndian.PutUint32(b[24:], uint32(rate))
	binary.LittleEndian.PutUint32(b[28:], uint32(rate*channels*2))
	binary.LittleEndian.PutUint16(b[32:], uint16(channels*2))
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(data))
	for i := range frames {
		v := int16(8000 * math.Sin(2*math.Pi*440*float64(i)/float64(rate)))
		for range channels {
			b = binary.LittleEndian.AppendUint16(b, uint16(v))
		}
	}
	return b
}

// part is one multipart form part; a filename makes it a file.
type part struct {
	name, filename string
	data           []byte
}

// multipartBody encodes parts as multipart/form-data.
func multipartBody(t testing.TB, parts ...part) (io.Reader, string) {
	t.Helper()
	return multipartBodyWith(t, "", parts...)
}

// multipartBodyWith encodes parts as multipart/form-data between the
// given boundary (a random one if ""), for a body that must come out the
// same each time (a fuzz seed).
func multipartBodyWith(t testing.TB, boundary string, parts ...part) (*bytes.Buffer, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if boundary != "" {
		if err := mw.SetBoundary(boundary); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range parts {
		var w io.Writer
		var err error
		if p.filename != "" {
			w, err = mw.CreateFormFile(p.name, p.filename)
		} else {
			w, err = mw.CreateFormField(p.name)
		}
		if err != nil {
			t.Fatal(err)
		}
		w.Write(p.data)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf, mw.FormDataContentType()
}

// upload posts audio and returns the content.
func (e *env) upload(token, filename string, audio []byte, title string, want int) *loaxa.Content {
	e.t.Helper()
	parts := []part{{name: "file", filename: filename, data: audio}}
	if title != "" {
		parts = append(parts, part{name: "title", data: []byte(title)})
	}
	body, ct := multipartBody(e.t, parts...)
	r := e.request("POST", "/api/v1/content", token, ct, body)
	if r.status != want {
		e.t.Fatalf("upload %s: status %d, want %d: %s", filename, r.status, want, r.body)
	}
	var c loaxa.Content
	if err := json.Unmarshal(r.body, &c); err != nil {
		e.t.Fatal(err)
	}
	return &c
}

// createdNode is the answer to POST /api/v1/nodes.
type createdNode struct {
	Node        loaxa.Node           `json:"node"`
	Credentials protocol.Credentials `json:"credentials"`
}

// tree creates the test area tree as admin: province 31 with district
// 318 and its communes 12346 and 12347, plus node n-a in 12346 and n-b in
// 12347.
func (e *env) tree() (na, nb createdNode) {
	e.t.Helper()
	for _, a := range []map[string]string{
		{"id": "31", "name": "Thành phố Hải Phòng"},
		{"id": "318", "name": "Huyện Tiên Lãng", "parent": "31"},
		{"id": "12346", "name": "Xã Tiên Thắng", "parent": "318"},
		{"id": "12347", "name": "Xã Tiên Minh", "parent": "318"},
	} {
		e.call("POST", "/api/v1/areas", e.admin, a, http.StatusCreated, nil)
	}
	e.call("POST", "/api/v1/nodes", e.admin, map[string]any{"id": "n-a", "name": "Cụm loa chợ Đôi", "area": "12346", "lat": 20.716, "lon": 106.552},
		http.StatusCreated, &na)
	e.call("POST", "/api/v1/nodes", e.admin, map[string]any{"id": "n-b", "name": "Cụm loa UBND", "area": "12347", "lat": 20.70, "lon": 106.56},
		http.StatusCreated, &nb)
	return na, nb
}

func TestServerOpenClose(t *testing.T) {
	e := newEnv(t)
	s := e.srv
	s.Addr = "127.0.0.1:0"
	if s.URL() != "" {
		t.Errorf("URL before Open = %q, want empty", s.URL())
	}
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(s.URL() + "/api/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != `{"status":"ok"}` {
		t.Errorf("health: %d %s", resp.StatusCode, body)
	}

	// A second server on the same port fails in Open, not later.
	busy := lhttp.NewServer()
	busy.Addr = strings.Replace(strings.TrimPrefix(s.URL(), "http://"), "localhost", "127.0.0.1", 1)
	busy.AreaService, busy.NodeService, busy.ContentService, busy.MediaService = s.AreaService, s.NodeService, s.ContentService, s.MediaService
	busy.AnnouncementService, busy.DeliveryService, busy.EventService = s.AnnouncementService, s.DeliveryService, s.EventService
	busy.UserService, busy.DesiredService, busy.Scheduler, busy.AuditService = s.UserService, s.DesiredService, s.Scheduler, s.AuditService
	busy.KeyService = s.KeyService
	if err := busy.Open(); err == nil || !strings.Contains(err.Error(), "listen on") {
		busy.Close()
		t.Errorf("Open on a busy port: %v, want a listen error", err)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := client.Get("http://" + busy.Addr + "/api/v1/health"); err == nil {
		t.Error("server still answers after Close")
	}
}

func TestOpenRefusesMissingServices(t *testing.T) {
	s := lhttp.NewServer()
	s.Addr = "127.0.0.1:0"
	err := s.Open()
	if err == nil {
		s.Close()
		t.Fatal("Open without services succeeded")
	}
	if want := "not set: AnnouncementService, AreaService, AuditService, ContentService"; !strings.Contains(err.Error(), want) {
		t.Errorf("Open: %v, want it to name the missing services", err)
	}
	if err := (&lhttp.Server{}).Open(); err == nil || !strings.Contains(err.Error(), "NewServer") {
		t.Errorf("Open of a zero Server: %v", err)
	}
}

func TestHealthAndTimeArePublic(t *testing.T) {
	e := newEnv(t)
	r := e.request("GET", "/api/v1/time", "", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("time: %d %s", r.status, r.body)
	}
	var got struct{ Time time.Time }
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	if !got.Time.Equal(e.clock.Now()) {
		t.Errorf("time %v, want the controller clock %v", got.Time, e.clock.Now())
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("time Cache-Control %q, want no-store", cc)
	}
	e.call("GET", "/api/v1/health", "", nil, http.StatusOK, nil)
}

// TestTimeIsSignedForANonce: with a node's nonce the time comes with a
// proof, signed with the key the nodes trust, that opens for that nonce
// only; a nonce that is not one is refused.
func TestTimeIsSignedForANonce(t *testing.T) {
	e := newEnv(t)
	const nonce = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	r := e.request("GET", "/api/v1/time?nonce="+nonce, "", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("time with a nonce: %d %s", r.status, r.body)
	}
	var got struct {
		Time  time.Time
		Proof json.RawMessage
	}
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	pub, err := e.key.Parse()
	if err != nil {
		t.Fatal(err)
	}
	v := protocol.NewVerifier([]ed25519.PublicKey{pub}, time.Now, 0)
	proven, err := v.OpenTimeProof(got.Proof, nonce)
	if err != nil || !proven.Equal(e.clock.Now()) || !got.Time.Equal(proven) {
		t.Errorf("proof %s opens as %v, %v; want the controller's clock %v, as the answer's time %v", got.Proof, proven, err, e.clock.Now(), got.Time)
	}
	if _, err := v.OpenTimeProof(got.Proof, "ANOTHERREQUESTSNONCE12345"); !errors.Is(err, protocol.ErrReplay) {
		t.Errorf("the proof for another nonce: %v, want ErrReplay", err)
	}
	checkError(t, e.request("GET", "/api/v1/time?nonce=short", "", "", nil), http.StatusBadRequest, loaxa.EInvalid, "nonce")
}

func TestUnknownRoutesAnswerJSON(t *testing.T) {
	e := newEnv(t)
	checkError(t, e.request("GET", "/api/v1/speakers", e.admin, "", nil), http.StatusNotFound, loaxa.ENotFound, "no API route /api/v1/speakers")
	r := e.request("DELETE", "/api/v1/areas", e.admin, "", nil)
	checkError(t, r, http.StatusMethodNotAllowed, "method_not_allowed", "does not accept DELETE")
	if allow := r.header.Get("Allow"); !strings.Contains(allow, "POST") {
		t.Errorf("Allow %q does not list POST", allow)
	}
}

// TestUIServesOutsideAPI: with a UI handler, paths outside /api/ reach it
// and API paths still answer in JSON; without one, every path is the API's.
func TestUIServesOutsideAPI(t *testing.T) {
	ui := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "console "+r.URL.Path) })
	e := newEnv(t, func(s *lhttp.Server) { s.UI = ui })
	if r := e.request("GET", "/", "", "", nil); r.status != http.StatusOK || string(r.body) != "console /" {
		t.Errorf("GET / with a UI: %d %q", r.status, r.body)
	}
	if r := e.request("GET", "/static/app.css", "", "", nil); string(r.body) != "console /static/app.css" {
		t.Errorf("GET /static/app.css with a UI: %d %q", r.status, r.body)
	}
	checkError(t, e.request("GET", "/api/v1/speakers", e.admin, "", nil), http.StatusNotFound, loaxa.ENotFound, "no API route")
	checkError(t, e.request("GET", "/api", e.admin, "", nil), http.StatusNotFound, loaxa.ENotFound, "no API route")

	bare := newEnv(t)
	checkError(t, bare.request("GET", "/", "", "", nil), http.StatusNotFound, loaxa.ENotFound, "no API route /")
}

// TestEveryRouteNeedsCredentials walks the route table: every route that
// declares an action refuses a request without credentials, and only the
// few public ones declare none.
func TestEveryRouteNeedsCredentials(t *testing.T) {
	e := newEnv(t)
	public := publicRoutes
	routes := e.srv.Routes()
	if len(routes) < 20 {
		t.Fatalf("only %d routes", len(routes))
	}
	for _, rt := range routes {
		name := rt.Method + " " + rt.Path
		if public[name] != (rt.Action == "") {
			t.Errorf("%s: action %q, public %v", name, rt.Action, public[name])
		}
		if rt.Action == "" {
			continue
		}
		path := strings.ReplaceAll(rt.Path, "{id}", "x")
		checkError(t, e.request(rt.Method, path, "", "", nil), http.StatusUnauthorized, loaxa.EUnauthorized, "Sign in first")
	}
}

func TestInternalErrorsDoNotLeak(t *testing.T) {
	e := newEnv(t)
	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}
	// The token check itself now fails inside the store.
	r := e.request("GET", "/api/v1/areas", e.admin, "", nil)
	checkError(t, r, http.StatusInternalServerError, loaxa.EInternal, "Internal error")
	if bytes.Contains(r.body, []byte("database")) || bytes.Contains(r.body, []byte("bolt")) {
		t.Errorf("internal detail leaked: %s", r.body)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "http: internal error") {
		t.Errorf("internal error not logged:\n%s", logs)
	}
	if !strings.Contains(logs, `msg="http request" method=GET path=/api/v1/areas status=500`) {
		t.Errorf("request not logged at debug:\n%s", logs)
	}
}

func TestPanicBecomes500(t *testing.T) {
	// A server wired without its desired-state store panics on the nil
	// interface; the client still gets a JSON 500 and the server lives on.
	e := newEnv(t, func(s *lhttp.Server) { s.DesiredService = nil })
	e.tree()
	checkError(t, e.request("GET", "/api/v1/nodes/n-a/desired", e.admin, "", nil), http.StatusInternalServerError, loaxa.EInternal, "Internal error")
	if !strings.Contains(e.logs.String(), "http: panic serving request") {
		t.Error("panic not logged")
	}
	e.call("GET", "/api/v1/health", "", nil, http.StatusOK, nil)
}
