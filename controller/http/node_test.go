package http_test

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"testing"

	lhttp "loaxa.vn/controller/http"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

func TestCreateAreaAndNode(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	na, _ := e.tree()

	var area loaxa.Area
	e.call("GET", "/api/v1/areas/12346", e.admin, nil, http.StatusOK, &area)
	if area.Name != "Xã Tiên Thắng" || area.Parent != "318" {
		t.Errorf("area %+v", area)
	}

	creds := na.Credentials
	if err := creds.Validate(); err != nil {
		t.Fatalf("credentials document is invalid: %v\n%+v", err, creds)
	}
	want := protocol.Credentials{
		Node: "n-a", Area: "12346", Areas: []string{"12346", "318", "31"},
		Controller: e.ts.URL, Broker: "tcp://127.0.0.1:1883",
		Username: "n-a", Secret: creds.Secret, TopicPrefix: protocol.DefaultPrefix, Keys: []protocol.PublicKey{e.key},
	}
	if creds.Secret == "" || !credentialsEqual(creds, want) {
		t.Errorf("credentials\n got %+v\nwant %+v", creds, want)
	}
	if na.Node.ID != "n-a" || na.Node.Status.State != loaxa.NodeNever || na.Node.Lat != 20.716 {
		t.Errorf("node %+v", na.Node)
	}
	if got := e.sched.changed.Load(); got != 2 {
		t.Errorf("scheduler told %d times after enrolling two nodes, want 2", got)
	}

	t.Run("the secret is never shown again", func(t *testing.T) {
		for _, path := range []string{"/api/v1/nodes/n-a", "/api/v1/nodes", "/api/v1/nodes?area=12346"} {
			r := e.call("GET", path, e.admin, nil, http.StatusOK, nil)
			if containsAny(r.body, creds.Secret, "secret") {
				t.Errorf("GET %s shows the secret: %s", path, r.body)
			}
		}
		var n loaxa.Node
		e.call("GET", "/api/v1/nodes/n-a", e.admin, nil, http.StatusOK, &n)
		if n.Name != "Cụm loa chợ Đôi" || n.Area != "12346" || n.Status.State != loaxa.NodeNever {
			t.Errorf("GET node: %+v", n)
		}
	})

	t.Run("the secret downloads audio", func(t *testing.T) {
		c := e.upload(e.admin, "ban-tin.wav", wav(16000, 1, 1600), "", http.StatusCreated)
		path := "/api/v1/content/" + c.ID + "/audio"
		req, _ := http.NewRequest("GET", e.ts.URL+path, nil)
		req.SetBasicAuth(creds.Username, creds.Secret)
		resp, err := e.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("node download: %d %s", resp.StatusCode, body)
		}
		if sum := sha256.Sum256(body); hex.EncodeToString(sum[:]) != c.ID {
			t.Error("downloaded bytes do not hash to the content id")
		}

		req, _ = http.NewRequest("GET", e.ts.URL+path, nil)
		req.SetBasicAuth(creds.Username, creds.Secret+"x")
		resp, err = e.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		checkError(t, response{resp.StatusCode, resp.Header, readAll(t, resp)}, http.StatusUnauthorized, loaxa.EUnauthorized, `Node "n-a" is not known, revoked, or its secret is wrong`)

		// Node credentials open the audio route only.
		req, _ = http.NewRequest("GET", e.ts.URL+"/api/v1/content/"+c.ID, nil)
		req.SetBasicAuth(creds.Username, creds.Secret)
		resp, err = e.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		checkError(t, response{resp.StatusCode, resp.Header, readAll(t, resp)}, http.StatusUnauthorized, loaxa.EUnauthorized, "")
	})

	t.Run("desired state", func(t *testing.T) {
		checkError(t, e.request("GET", "/api/v1/nodes/n-a/desired", e.admin, "", nil), http.StatusNotFound, loaxa.ENotFound,
			`No desired state has been compiled for node "n-a" yet`)
		d := &loaxa.Desired{Node: "n-a", Hash: "h1", State: &protocol.DesiredState{Node: "n-a", Version: 7, Areas: []string{"12346", "318", "31"}}}
		if err := e.stores.desired.SaveDesired(t.Context(), d); err != nil {
			t.Fatal(err)
		}
		var got loaxa.Desired
		e.call("GET", "/api/v1/nodes/n-a/desired", e.admin, nil, http.StatusOK, &got)
		if got.Node != "n-a" || got.State == nil || got.State.Version != 7 || got.Hash != "h1" {
			t.Errorf("desired %+v", got)
		}
	})

	t.Run("filters", func(t *testing.T) {
		tests := []struct {
			query string
			want  []string
		}{
			{"", []string{"n-a", "n-b"}},
			{"?area=318", []string{"n-a", "n-b"}},
			{"?area=12347", []string{"n-b"}},
			{"?state=never", []string{"n-a", "n-b"}},
			{"?state=online", nil},
		}
		for _, tt := range tests {
			var got struct{ Nodes []loaxa.Node }
			e.call("GET", "/api/v1/nodes"+tt.query, e.admin, nil, http.StatusOK, &got)
			if ids := nodeIDs(got.Nodes); !slices.Equal(ids, tt.want) {
				t.Errorf("GET /api/v1/nodes%s = %v, want %v", tt.query, ids, tt.want)
			}
		}
	})
}

func TestCredentialsURLs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                  string
		publicURL, brokerURL  string
		wantController, wantB string
	}{
		{"derived from the request", "", "", "{ts}", "tcp://127.0.0.1:1883"},
		{"public URL and broker with {host}", "https://loa.haiphong.gov.vn/", "ssl://{host}:8883", "https://loa.haiphong.gov.vn", "ssl://loa.haiphong.gov.vn:8883"},
		{"fixed broker", "", "tcp://10.0.0.2:1884", "{ts}", "tcp://10.0.0.2:1884"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(s *lhttp.Server) { s.PublicURL, s.BrokerURL, s.TopicPrefix = tt.publicURL, tt.brokerURL, "loa/hp" })
			na, _ := e.tree()
			wantController := tt.wantController
			if wantController == "{ts}" {
				wantController = e.ts.URL
			}
			c := na.Credentials
			if c.Controller != wantController || c.Broker != tt.wantB || c.TopicPrefix != "loa/hp" {
				t.Errorf("controller %q broker %q prefix %q, want %q %q loa/hp", c.Controller, c.Broker, c.TopicPrefix, wantController, tt.wantB)
			}
			if err := c.Validate(); err != nil {
				t.Error(err)
			}
		})
	}
}

// A setup fault that makes the credentials document unusable (here a
// public URL nodes cannot use) creates no node whose secret nobody saw.
func TestNodeWithBadCredentialsIsNotCreated(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(s *lhttp.Server) { s.PublicURL = "ftp://loa.example.vn" })
	e.call("POST", "/api/v1/areas", e.admin, map[string]string{"id": "31", "name": "Hải Phòng"}, http.StatusCreated, nil)
	r := e.request("POST", "/api/v1/nodes", e.admin, "application/json", jsonBody(t, map[string]any{"id": "n-1", "name": "Loa 1", "area": "31"}))
	checkError(t, r, http.StatusInternalServerError, loaxa.EInternal, "Internal error")
	if _, err := e.stores.nodes.FindNodeByID(t.Context(), "n-1"); loaxa.ErrorCode(err) != loaxa.ENotFound {
		t.Errorf("a node whose credentials could not be made was stored (err %v)", err)
	}
}

func nodeIDs(ns []loaxa.Node) []string {
	var ids []string
	for _, n := range ns {
		ids = append(ids, n.ID)
	}
	return ids
}

func credentialsEqual(a, b protocol.Credentials) bool {
	return a.Node == b.Node && a.Area == b.Area && slices.Equal(a.Areas, b.Areas) && a.Controller == b.Controller &&
		a.Broker == b.Broker && a.Username == b.Username && a.Secret == b.Secret && a.TopicPrefix == b.TopicPrefix &&
		slices.Equal(a.Keys, b.Keys)
}
