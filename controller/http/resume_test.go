package http_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// burst is the first burst of an emergency stream: the nodes it sent, and
// its summary's event id.
type burst struct {
	nodes []loaxa.EmergencyNode
	id    string
}

// firstBurst opens the emergency's stream with query and headers (name,
// value pairs) and reads it up to its first summary.
func (e *env) firstBurst(t *testing.T, id, query string, header ...string) burst {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", e.ts.URL+"/api/v1/emergency/"+id+"/stream"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.admin)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream%s: status %d", query, resp.StatusCode)
	}
	var b burst
	var event, eventID string
	lines := bufio.NewScanner(resp.Body)
	lines.Buffer(nil, 1<<20)
	for lines.Scan() {
		line := lines.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			eventID = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "node":
			var n loaxa.EmergencyNode
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &n); err != nil {
				t.Fatalf("node event %q: %v", line, err)
			}
			b.nodes = append(b.nodes, n)
		case strings.HasPrefix(line, "data: ") && event == "summary":
			b.id = eventID
			return b
		case line == "":
			event, eventID = "", ""
		}
	}
	t.Fatalf("stream%s ended before its summary: %v", query, lines.Err())
	return b
}

// drill sends a drill of content to area as the admin.
func (e *env) drill(content, area string) loaxa.Emergency {
	e.t.Helper()
	var em loaxa.Emergency
	e.call("POST", "/api/v1/emergency", e.admin, map[string]any{"content_id": content, "targets": []string{area}, "drill": true},
		http.StatusCreated, &em)
	return em
}

func (b burst) names() []string {
	var out []string
	for _, n := range b.nodes {
		out = append(out, n.Node)
	}
	slices.Sort(out)
	return out
}

// TestStreamResumes: a board that loaded the report opens its stream from
// the report's resume token and gets only the clusters that changed since;
// a reconnect (Last-Event-ID, the last summary's id) gets only what
// changed since its last burst; a token the controller does not know
// means every cluster; a malformed since= is refused with what to give.
func TestStreamResumes(t *testing.T) {
	e := newEnv(t)
	e.tree()
	ct := e.upload(e.admin, "bao.wav", wav(16000, 1, 16000), "Báo bão", http.StatusCreated)
	em := e.drill(ct.ID, "318")
	var rep loaxa.EmergencyReport
	e.call("GET", "/api/v1/emergency/"+em.ID, e.admin, nil, http.StatusOK, &rep)
	if rep.Resume == "" || len(rep.Nodes) != 2 {
		t.Fatalf("report: resume %q, %d nodes; want a token and 2", rep.Resume, len(rep.Nodes))
	}

	// Nothing changed: a stream from the report sends no cluster.
	from := e.firstBurst(t, em.ID, "?since="+url.QueryEscape(rep.Resume))
	if len(from.nodes) != 0 || from.id == "" {
		t.Errorf("stream from the report: nodes %v, summary id %q; want none and an id", from.names(), from.id)
	}

	// n-a has the alert.
	e.clock.Advance(300 * time.Millisecond)
	received := []protocol.Event{{Seq: 1, Type: protocol.EventReceived, At: e.clock.Now(), Occurrence: em.Occurrence, Announcement: em.ID, Content: ct.ID}}
	if _, _, err := e.stores.events.RecordEvents(t.Context(), "n-a", protocol.EventBatch{Epoch: "e1", Events: received}, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.emergency.Events("n-a", "e1", received)

	changed := e.firstBurst(t, em.ID, "?since="+url.QueryEscape(rep.Resume))
	if got := changed.names(); !slices.Equal(got, []string{"n-a"}) || changed.nodes[0].State != string(loaxa.DeliveryReceived) {
		t.Errorf("stream from the report after n-a had it: %+v, want n-a received only", changed.nodes)
	}
	// A reconnect names its last burst, which already had n-a.
	again := e.firstBurst(t, em.ID, "?since="+url.QueryEscape(rep.Resume), "Last-Event-ID", changed.id)
	if len(again.nodes) != 0 {
		t.Errorf("a reconnect after the burst that had n-a: nodes %v, want none", again.names())
	}

	all := []string{"n-a", "n-b"}
	if got := e.firstBurst(t, em.ID, "").names(); !slices.Equal(got, all) {
		t.Errorf("stream without since: %v, want %v", got, all)
	}
	// A token from before a restart, or forgotten: every cluster.
	if got := e.firstBurst(t, em.ID, "?since=0badcafe-1").names(); !slices.Equal(got, all) {
		t.Errorf("stream from an unknown token: %v, want %v", got, all)
	}
	// A header the officer cannot fix is taken as none: since= counts.
	if got := e.firstBurst(t, em.ID, "?since="+url.QueryEscape(changed.id), "Last-Event-ID", "garbage").names(); len(got) != 0 {
		t.Errorf("stream with a malformed Last-Event-ID: %v, want none (since= names the last burst)", got)
	}
	// Another emergency's token is not this one's.
	other := e.drill(ct.ID, "12346")
	if got := e.firstBurst(t, other.ID, "?since="+url.QueryEscape(changed.id)).names(); !slices.Equal(got, []string{"n-a"}) {
		t.Errorf("stream of %s from a token of %s: %v, want its every cluster", other.ID, em.ID, got)
	}

	bad := e.request("GET", "/api/v1/emergency/"+em.ID+"/stream?since=yesterday", e.admin, "", nil)
	if bad.status != http.StatusBadRequest || !strings.Contains(string(bad.body), "not a resume token") {
		t.Errorf("since=yesterday: %d %s, want 400 saying it is not a resume token", bad.status, bad.body)
	}
}
