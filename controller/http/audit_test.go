package http_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
)

// auditSeen returns the entries of action that GET /api/v1/audit shows
// the user.
func (e *env) auditSeen(token, action string) []loaxa.AuditEntry {
	e.t.Helper()
	var l struct {
		Entries []loaxa.AuditEntry `json:"entries"`
	}
	e.call("GET", "/api/v1/audit", token, nil, http.StatusOK, &l)
	var out []loaxa.AuditEntry
	for _, x := range l.Entries {
		if x.Action == action {
			out = append(out, x)
		}
	}
	return out
}

// TestAnnouncementAuditVisibleInEveryTargetArea: an announcement was filed
// in the audit log under its first target area only, or, naming clusters
// only, under the actor's area ("" for an admin, seen by whole-tree users
// alone). A district's auditor could not see who scheduled what on the
// district's own clusters. Created and cancelled, an announcement is filed
// under the lowest area all its targets lie in, and every reader whose
// subtree holds one of its target areas or target nodes' areas sees it;
// the others do not.
func TestAnnouncementAuditVisibleInEveryTargetArea(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	e.call("POST", "/api/v1/areas", e.admin, map[string]string{"id": "319", "name": "Huyện Vĩnh Bảo", "parent": "31"}, http.StatusCreated, nil)
	e.call("POST", "/api/v1/areas", e.admin, map[string]string{"id": "12350", "name": "Xã Vĩnh An", "parent": "319"}, http.StatusCreated, nil)
	province := e.addUser("can-bo-tinh", loaxa.RoleProvince, "31")
	district := e.addUser("can-bo-huyen", loaxa.RoleDistrict, "318")
	other := e.addUser("can-bo-vinh-bao", loaxa.RoleDistrict, "319")
	c := e.upload(e.admin, "ban-tin.wav", wav(16000, 1, 16000), "Bản tin", http.StatusCreated)
	var a1, a2 loaxa.Announcement
	e.call("POST", "/api/v1/announcements", province, map[string]any{
		"content_id": c.ID, "targets": map[string]any{"areas": []string{"12350", "12346"}}, "priority": "priority",
		"start": t0.Add(time.Hour).Format(time.RFC3339),
	}, http.StatusCreated, &a1)
	e.call("POST", "/api/v1/announcements", e.admin, map[string]any{
		"content_id": c.ID, "targets": map[string]any{"nodes": []string{"n-a"}}, "priority": "priority",
		"start": t0.Add(2 * time.Hour).Format(time.RFC3339),
	}, http.StatusCreated, &a2)
	for _, a := range []loaxa.Announcement{a1, a2} {
		e.call("POST", "/api/v1/announcements/"+a.ID+"/cancel", e.admin, nil, http.StatusOK, nil)
	}

	for _, action := range []string{"announcement.create", "announcement.cancel"} {
		filed := map[string]string{}
		for _, x := range e.auditSeen(e.admin, action) {
			filed[x.Target] = x.Area
		}
		if want := map[string]string{a1.ID: "31", a2.ID: "12346"}; !maps.Equal(filed, want) {
			t.Errorf("%s filed under %v, want %v", action, filed, want)
		}
		for _, tc := range []struct {
			who, token string
			want       []string
		}{
			{"province 31", province, []string{a1.ID, a2.ID}},
			{"district 318", district, []string{a1.ID, a2.ID}},
			{"district 319", other, []string{a1.ID}},
		} {
			var seen []string
			for _, x := range e.auditSeen(tc.token, action) {
				seen = append(seen, x.Target)
			}
			if !slices.Equal(seen, tc.want) {
				t.Errorf("%s's audit shows %s of %v, want %v (a1 plays in 12350 and 12346, a2 on n-a in 12346)", tc.who, action, seen, tc.want)
			}
		}
	}
}

// TestEmergencyAuditVisibleInEveryTargetArea: an alert to communes of two
// districts was filed under "12350,12346", no area, so only whole-tree
// admins saw who sounded the district's speakers. Sending and cancelling
// are filed under the lowest common area and seen in each district.
func TestEmergencyAuditVisibleInEveryTargetArea(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	e.call("POST", "/api/v1/areas", e.admin, map[string]string{"id": "319", "name": "Huyện Vĩnh Bảo", "parent": "31"}, http.StatusCreated, nil)
	e.call("POST", "/api/v1/areas", e.admin, map[string]string{"id": "12350", "name": "Xã Vĩnh An", "parent": "319"}, http.StatusCreated, nil)
	province := e.addUser("can-bo-tinh", loaxa.RoleProvince, "31")
	district := e.addUser("can-bo-huyen", loaxa.RoleDistrict, "318")
	other := e.addUser("can-bo-vinh-bao", loaxa.RoleDistrict, "319")
	c := e.upload(e.admin, "canh-bao.wav", wav(16000, 1, 16000), "Cảnh báo bão", http.StatusCreated)
	var em struct{ ID string }
	e.call("POST", "/api/v1/emergency", province, map[string]any{
		"content_id": c.ID, "targets": []string{"12350", "12346"}, "drill": true,
	}, http.StatusCreated, &em)
	e.call("POST", "/api/v1/emergency/"+em.ID+"/cancel", province, nil, http.StatusOK, nil)
	for _, action := range []string{"emergency.send", "emergency.cancel"} {
		if got := e.auditSeen(e.admin, action); len(got) != 1 || got[0].Area != "31" || !slices.Equal(got[0].Areas, []string{"12346", "12350"}) {
			t.Errorf("%s entries %+v, want one filed under 31 for 12346 and 12350", action, got)
		}
		for _, tc := range []struct{ who, token string }{{"province 31", province}, {"district 318", district}, {"district 319", other}} {
			if got := e.auditSeen(tc.token, action); len(got) != 1 || got[0].Target != em.ID {
				t.Errorf("%s's audit shows %d %s entries, want the one of %s", tc.who, len(got), action, em.ID)
			}
		}
	}
}

// TestAuditNewestFirstPastTheLimit: the audit screen read the log oldest
// first with a limit and turned it round, so once the period held more
// entries than the limit it showed the oldest and none of today's. With
// order=newest the limit keeps the newest, newest first; the default order
// stays oldest first.
func TestAuditNewestFirstPastTheLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree() // the areas and nodes created are audited in this order
	targets := func(query string) []string {
		var l struct{ Entries []loaxa.AuditEntry }
		e.call("GET", "/api/v1/audit?limit=2"+query, e.admin, nil, http.StatusOK, &l)
		var out []string
		for _, x := range l.Entries {
			out = append(out, x.Target)
		}
		return out
	}
	if got, want := targets("&order=newest"), []string{"n-b", "n-a"}; !slices.Equal(got, want) {
		t.Errorf("newest first: %v, want the two latest %v", got, want)
	}
	if got := targets(""); len(got) != 2 || slices.Contains(got, "n-b") {
		t.Errorf("by default: %v, want the two oldest", got)
	}
	r := e.call("GET", "/api/v1/audit?order=desc", e.admin, nil, http.StatusBadRequest, nil)
	checkError(t, r, http.StatusBadRequest, "invalid", "order")
}

// TestAuditNamesWhatTheEntriesName: an audit entry holds ids — the
// bulletin's "a000001", the alert's "e000001", the audio's SHA-256 — and
// the audit screen showed them as such. GET /audit answers with the names
// of what its entries name, by kind: the targets, a cluster acting for
// itself, and the audio, clusters and alert their details name; a
// reader's filter narrows them to its entries.
func TestAuditNamesWhatTheEntriesName(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	c := e.upload(e.admin, "ban-tin.wav", wav(16000, 1, 16000), "Bản tin sáng", http.StatusCreated)
	var a loaxa.Announcement
	e.call("POST", "/api/v1/announcements", e.admin, map[string]any{
		"title": "Lịch tiêm chủng", "content_id": c.ID, "targets": map[string]any{"areas": []string{"12346"}, "nodes": []string{"n-b"}},
		"priority": "normal", "start": t0.Add(time.Hour).Format(time.RFC3339),
	}, http.StatusCreated, &a)
	var em loaxa.Emergency
	e.call("POST", "/api/v1/emergency", e.admin, map[string]any{"content_id": c.ID, "targets": []string{"318"}, "drill": true}, http.StatusCreated, &em)
	var clear loaxa.Emergency
	e.call("POST", "/api/v1/emergency/"+em.ID+"/all-clear", e.admin, map[string]any{"content_id": c.ID}, http.StatusCreated, &clear)

	if em.Title == "" || clear.Title == "" {
		t.Fatalf("the alerts have no titles (%q, %q) to name them by", em.Title, clear.Title)
	}
	var l struct {
		Entries []loaxa.AuditEntry           `json:"entries"`
		Names   map[string]map[string]string `json:"names"`
	}
	e.call("GET", "/api/v1/audit", e.admin, nil, http.StatusOK, &l)
	want := map[string]map[string]string{
		"announcement": {a.ID: "Lịch tiêm chủng"},
		"content":      {c.ID: "Bản tin sáng"},
		"node":         {"n-a": "Cụm loa chợ Đôi", "n-b": "Cụm loa UBND"},
		"emergency":    {em.ID: em.Title, clear.ID: clear.Title},
	}
	for kind, ids := range want {
		for id, name := range ids {
			if got := l.Names[kind][id]; got != name {
				t.Errorf("names[%s][%s] = %q, want %q (names %v)", kind, id, got, name, l.Names)
			}
		}
	}

	// A district's reader sees a province bulletin to its commune and to
	// a cluster of another district: that cluster keeps its id, as
	// GET /nodes shows the reader only its own.
	e.call("POST", "/api/v1/areas", e.admin, map[string]string{"id": "319", "name": "Huyện Vĩnh Bảo", "parent": "31"}, http.StatusCreated, nil)
	e.call("POST", "/api/v1/areas", e.admin, map[string]string{"id": "12350", "name": "Xã Vĩnh An", "parent": "319"}, http.StatusCreated, nil)
	e.call("POST", "/api/v1/nodes", e.admin, map[string]any{"id": "n-c", "name": "Cụm loa Vĩnh An", "area": "12350", "lat": 20.7, "lon": 106.5}, http.StatusCreated, nil)
	var wide loaxa.Announcement
	e.call("POST", "/api/v1/announcements", e.admin, map[string]any{
		"title": "Thông báo của tỉnh", "content_id": c.ID, "targets": map[string]any{"areas": []string{"12346"}, "nodes": []string{"n-c"}},
		"priority": "normal", "start": t0.Add(3 * time.Hour).Format(time.RFC3339),
	}, http.StatusCreated, &wide)
	district := e.addUser("can-bo-huyen", loaxa.RoleDistrict, "318")
	var seen struct {
		Entries []loaxa.AuditEntry           `json:"entries"`
		Names   map[string]map[string]string `json:"names"`
	}
	e.call("GET", "/api/v1/audit", district, nil, http.StatusOK, &seen)
	if got := seen.Names["announcement"][wide.ID]; got != "Thông báo của tỉnh" {
		t.Errorf("the district's reader has the province bulletin named %q (names %v)", got, seen.Names)
	}
	if got, ok := seen.Names["node"]["n-c"]; ok {
		t.Errorf("the district's reader has the other district's cluster named %q", got)
	}
	if got := seen.Names["node"]["n-a"]; got != "Cụm loa chợ Đôi" {
		t.Errorf("the district's reader has its own cluster n-a named %q", got)
	}

	// Read for one day without entries, nothing is named.
	var none struct {
		Entries []loaxa.AuditEntry           `json:"entries"`
		Names   map[string]map[string]string `json:"names"`
	}
	e.call("GET", "/api/v1/audit?from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z", e.admin, nil, http.StatusOK, &none)
	if len(none.Entries) != 0 || none.Names != nil {
		t.Errorf("an empty day names %v (entries %d), want nothing", none.Names, len(none.Entries))
	}
}

// BenchmarkListAuditWithNames: the audit screen's read, 10,000 entries
// (the most GET /audit gives) naming 1,000 clusters, 1,000 bulletins
// (deleted since: each looked up and not found) and one audio file, read
// by the administrator. The names cost one store read per id named.
func BenchmarkListAuditWithNames(b *testing.B) {
	e := newEnv(b)
	e.tree()
	ctx := context.Background()
	c := e.upload(e.admin, "ban-tin.wav", wav(16000, 1, 16000), "Bản tin sáng", http.StatusCreated)
	var ns []*loaxa.Node
	for i := range 1000 {
		ns = append(ns, &loaxa.Node{ID: fmt.Sprintf("p-%04d", i), Name: fmt.Sprintf("Cụm loa %d", i), Area: "12346", SecretHash: loaxa.HashSecret("s")})
	}
	if err := e.stores.nodes.CreateNodes(ctx, ns); err != nil {
		b.Fatal(err)
	}
	for i := range 10000 {
		entry := &loaxa.AuditEntry{Actor: "admin", Action: "node.command", Target: ns[i%1000].ID, Area: "12346", Detail: "name=reboot"}
		if i%2 == 1 {
			entry = &loaxa.AuditEntry{Actor: "admin", Action: "announcement.create", Target: fmt.Sprintf("a%06d", i%1000), Area: "12346",
				Detail: fmt.Sprintf("priority=normal start=2026-03-02T00:00:00Z areas=12346 nodes=%s content=%s", ns[i%1000].ID, c.ID)}
		}
		if err := e.stores.audit.RecordAudit(ctx, entry); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		var l struct {
			Entries []loaxa.AuditEntry `json:"entries"`
		}
		e.call("GET", "/api/v1/audit?limit=10000&order=newest", e.admin, nil, http.StatusOK, &l)
		if len(l.Entries) != 10000 {
			b.Fatalf("%d entries, want 10000", len(l.Entries))
		}
	}
}

// TestAuditDetailsNameWhatTheyHold: three details read wrong on the audit
// screen. A self-test wrote how many clusters it tested under nodes=, which
// GET /audit looked up as a cluster's id (a cluster "1" was named for every
// self-test of one); the CAP recordings were written "Sóng thần=<hash>",
// which named no audio, so the screen showed the hashes; a release upload
// was "amd64 <hash>", with nothing to say which is which. The self-test
// writes node_count=, the recordings event="…" content=<hash>, named like
// any audio (an older entry's hashes too), and the release arch= sha256=.
func TestAuditDetailsNameWhatTheyHold(t *testing.T) {
	a := newAuthzEnv(t)
	e := a.env
	ctx := t.Context()
	// A cluster whose id is a number, put in the store: its enrolment's
	// entry would name it rightly.
	if err := e.stores.nodes.CreateNodes(ctx, []*loaxa.Node{{ID: "1", Name: "Cụm loa số 1", Area: "12346", SecretHash: loaxa.HashSecret("s")}}); err != nil {
		t.Fatal(err)
	}
	siren := e.upload(e.admin, "coi.wav", wav(16000, 1, 1600), "Còi báo động", http.StatusCreated)
	flood := e.upload(e.admin, "lu.wav", wav(16000, 1, 2400), "Bản ghi lũ", http.StatusCreated)
	// The log is read from here on: the uploads' own entries would name
	// the audio.
	e.clock.Advance(time.Minute)
	since := e.clock.Now()
	e.call("POST", "/api/v1/selftests", e.admin, map[string]any{"kind": "silent", "nodes": []string{"n-a"}}, http.StatusAccepted, nil)
	e.call("PUT", "/api/v1/cap/recordings", e.admin, map[string]any{"recordings": map[string]string{"Sóng thần": siren.ID}}, http.StatusOK, nil)
	archive := releaseArchive(t, 62)
	if r := a.request("POST", "/api/v1/releases?version=2.0.0&arch=amd64", a.admin, "application/gzip", bytes.NewReader(archive)); r.status != http.StatusCreated {
		t.Fatalf("release upload: %d %s", r.status, r.body)
	}
	// What an older controller wrote.
	for _, old := range []*loaxa.AuditEntry{
		{At: e.clock.Now(), Actor: "admin", Action: "selftest.start", Target: "t000099", Area: "12346", Detail: "kind=silent nodes=1"},
		{At: e.clock.Now(), Actor: "admin", Action: "cap.recordings", Target: "cap", Detail: "Lũ quét=" + flood.ID},
	} {
		if err := e.stores.audit.RecordAudit(ctx, old); err != nil {
			t.Fatal(err)
		}
	}

	var l struct {
		Entries []loaxa.AuditEntry           `json:"entries"`
		Names   map[string]map[string]string `json:"names"`
	}
	e.call("GET", "/api/v1/audit?from="+since.UTC().Format(time.RFC3339), e.admin, nil, http.StatusOK, &l)
	details := map[string][]string{}
	for _, x := range l.Entries {
		details[x.Action] = append(details[x.Action], x.Detail)
	}
	sum := sha256.Sum256(archive)
	for action, want := range map[string]string{
		"selftest.start": "kind=silent node_count=1",
		"cap.recordings": `event="Sóng thần" content=` + siren.ID,
		"release.upload": "arch=amd64 sha256=" + hex.EncodeToString(sum[:]),
	} {
		if !slices.Contains(details[action], want) {
			t.Errorf("%s entries read %q, want one %q", action, details[action], want)
		}
	}
	if got, ok := l.Names["node"]["1"]; ok {
		t.Errorf("a self-test's count of clusters is named as cluster 1, %q", got)
	}
	for id, want := range map[string]string{siren.ID: "Còi báo động", flood.ID: "Bản ghi lũ"} {
		if got := l.Names["content"][id]; got != want {
			t.Errorf("the CAP recording %s is named %q, want %q (names %v)", id, got, want, l.Names["content"])
		}
	}
}
