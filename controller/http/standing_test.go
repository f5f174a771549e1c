package http_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

type standingList struct {
	Standing []struct {
		Content string   `json:"content"`
		Areas   []string `json:"areas"`
		Title   string   `json:"title"`
		By      string   `json:"by"`
		Nodes   int      `json:"nodes"`
		Ready   int      `json:"ready"`
	} `json:"standing"`
	MaxBytes int64 `json:"max_bytes"`
}

// TestStandingContent: an officer who may alert a commune keeps a warning
// on its clusters at all times; the list says how many clusters are to
// keep it and how many have it (they run the desired state that names it
// and do not miss it); areas the officer may not alert, and removing
// another officer's area, are refused; so is a change that would have a
// cluster keep more than loaxa.StandingMaxBytes; each change is audited
// and makes the scheduler recompile.
func TestStandingContent(t *testing.T) {
	e := newEnv(t)
	e.tree()
	ctx := context.Background()
	officer := e.addUser("can-bo-tien-thang", loaxa.RoleCommune, "12346")
	district := e.addUser("can-bo-huyen", loaxa.RoleDistrict, "318")
	warning := e.upload(officer, "canh-bao-lu.wav", wav(16000, 1, 32000), "Cảnh báo lũ", http.StatusCreated)
	path := "/api/v1/content/" + warning.ID + "/standing"
	before := e.sched.changed.Load()

	var set struct {
		Content string   `json:"content"`
		Areas   []string `json:"areas"`
		By      string   `json:"by"`
		Nodes   int      `json:"nodes"`
		Ready   int      `json:"ready"`
	}
	e.call("PUT", path, officer, map[string]any{"areas": []string{"12346", "12346"}}, http.StatusOK, &set)
	if set.Content != warning.ID || strings.Join(set.Areas, ",") != "12346" || set.By != "can-bo-tien-thang" || set.Nodes != 1 || set.Ready != 0 {
		t.Errorf("set: %+v, want 12346 (once) by the officer, 1 cluster to keep it, none ready", set)
	}
	if e.sched.changed.Load() == before {
		t.Error("the scheduler was not told to recompile")
	}
	if got := e.auditActions(); !strings.Contains(got, "content.standing "+warning.ID+" by can-bo-tien-thang") {
		t.Errorf("audit:\n%s", got)
	}

	// n-a runs desired state 3, which names the warning: ready.
	if err := e.stores.desired.SaveDesired(ctx, &loaxa.Desired{Node: "n-a", State: &protocol.DesiredState{Node: "n-a", Version: 3,
		Content: []protocol.ContentRef{{ID: warning.ID, Size: warning.Size}}}}); err != nil {
		t.Fatal(err)
	}
	status := func(missing ...string) {
		t.Helper()
		if err := e.stores.nodes.UpdateNodeStatus(ctx, "n-a", func(s *loaxa.NodeStatus) {
			s.DesiredVersion, s.RunningVersion, s.ContentMissing = 3, 3, missing
		}); err != nil {
			t.Fatal(err)
		}
	}
	list := func(token string) standingList {
		t.Helper()
		var l standingList
		e.call("GET", "/api/v1/content/standing", token, nil, http.StatusOK, &l)
		return l
	}
	status()
	if l := list(officer); len(l.Standing) != 1 || l.Standing[0].Title != "Cảnh báo lũ" || l.Standing[0].Nodes != 1 || l.Standing[0].Ready != 1 || l.MaxBytes != loaxa.StandingMaxBytes {
		t.Errorf("list with n-a running it: %+v", l)
	}
	status(warning.ID)
	if l := list(officer); len(l.Standing) != 1 || l.Standing[0].Ready != 0 {
		t.Errorf("list with n-a missing it: %+v, want none ready", l)
	}
	// The officer of the sibling commune does not see it.
	other := e.addUser("can-bo-tien-minh", loaxa.RoleCommune, "12347")
	if l := list(other); len(l.Standing) != 0 {
		t.Errorf("the sibling commune's officer sees %+v", l)
	}

	// The district keeps it on Tiên Minh too. The commune officer names
	// only areas of the commune: Tiên Minh is not theirs to name and
	// stays, whether they name it or not; the district may not be added.
	e.call("PUT", path, district, map[string]any{"areas": []string{"12346", "12347"}}, http.StatusOK, nil)
	for _, areas := range [][]string{{"12346"}, {"12346", "12347"}} {
		e.call("PUT", path, officer, map[string]any{"areas": areas}, http.StatusOK, &set)
		if strings.Join(set.Areas, ",") != "12346,12347" {
			t.Errorf("the commune officer sets %v: kept in %v, want Tiên Minh still", areas, set.Areas)
		}
	}
	for _, areas := range [][]string{{"12346", "12347", "318"}, {"12346", "31"}} {
		r := e.request("PUT", path, officer, "application/json", jsonBody(t, map[string]any{"areas": areas}))
		if r.status != http.StatusForbidden {
			t.Errorf("the commune officer sets %v: %d %s, want 403", areas, r.status, r.body)
		}
	}
	// Taking the commune off leaves Tiên Minh, which the commune officer
	// then no longer sees.
	e.call("PUT", path, officer, map[string]any{"areas": []string{}}, http.StatusOK, &set)
	if strings.Join(set.Areas, ",") != "12347" {
		t.Errorf("the commune officer clears it: kept in %v, want Tiên Minh only", set.Areas)
	}
	if l := list(officer); len(l.Standing) != 0 {
		t.Errorf("the commune officer still sees %+v", l)
	}
	e.call("PUT", path, officer, map[string]any{"areas": []string{"12346"}}, http.StatusOK, &set)
	if strings.Join(set.Areas, ",") != "12346,12347" {
		t.Errorf("the commune officer keeps it again: kept in %v, want both communes", set.Areas)
	}
	if l := list(other); len(l.Standing) != 1 || l.Standing[0].Nodes != 1 {
		t.Errorf("Tiên Minh's officer after the district's change: %+v", l)
	}

	bad := []struct {
		path string
		body any
		want int
		says string
	}{
		{path, map[string]any{}, http.StatusBadRequest, "areas is missing"},
		{path, map[string]any{"areas": []string{"99999"}}, http.StatusBadRequest, "there is no area"},
		{"/api/v1/content/" + strings.Repeat("ab", 32) + "/standing", map[string]any{"areas": []string{"12346"}}, http.StatusNotFound, "no content"},
	}
	for _, b := range bad {
		r := e.request("PUT", b.path, district, "application/json", jsonBody(t, b.body))
		if r.status != b.want || !strings.Contains(string(r.body), b.says) {
			t.Errorf("PUT %s %v: %d %s, want %d saying %q", b.path, b.body, r.status, r.body, b.want, b.says)
		}
	}

	// Two long recordings (40 MiB each) would be 80 MiB on Tiên Thắng's
	// clusters.
	long := func(seed string) string {
		id := strings.Repeat(seed, 64)
		if _, err := e.stores.contents.CreateContent(ctx, &loaxa.Content{ID: id, Title: "Hướng dẫn sơ tán " + seed, Size: 40 << 20, DurationMS: 5_000_000}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	first, second := long("c"), long("d")
	e.call("PUT", "/api/v1/content/"+first+"/standing", district, map[string]any{"areas": []string{"318"}}, http.StatusOK, nil)
	r := e.request("PUT", "/api/v1/content/"+second+"/standing", district, "application/json", jsonBody(t, map[string]any{"areas": []string{"12346"}}))
	if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(string(r.body), "Xã Tiên Thắng") {
		t.Errorf("over the budget: %d %s, want 413 naming Xã Tiên Thắng", r.status, r.body)
	}

	// None: it is standing nowhere.
	e.call("PUT", path, district, map[string]any{"areas": []string{}}, http.StatusOK, &set)
	if len(set.Areas) != 0 {
		t.Errorf("after [] the content keeps %v", set.Areas)
	}
	if l := list(district); len(l.Standing) != 1 || l.Standing[0].Content != first {
		t.Errorf("standing after removing the warning: %+v, want the long recording only", l)
	}
}

// TestStandingChangeVisibleInSupervisorsAudit: a district officer kept a
// warning on two communes of the district; the change was filed in the
// audit log under "12346,12347", which is no area, so only whole-tree
// admins saw it, not the province nor the district officer who made it. It
// is filed under the lowest area the communes kept on (or taken off) lie
// in, and seen by the readers of each of them.
func TestStandingChangeVisibleInSupervisorsAudit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	district := e.addUser("can-bo-huyen", loaxa.RoleDistrict, "318")
	province := e.addUser("can-bo-tinh", loaxa.RoleProvince, "31")
	warning := e.upload(district, "canh-bao-lu.wav", wav(16000, 1, 32000), "Cảnh báo lũ", http.StatusCreated)
	e.call("PUT", "/api/v1/content/"+warning.ID+"/standing", district,
		map[string]any{"areas": []string{"12346", "12347"}}, http.StatusOK, nil)
	// Taken off 12347 again: filed for 12347 too.
	e.call("PUT", "/api/v1/content/"+warning.ID+"/standing", district,
		map[string]any{"areas": []string{"12346"}}, http.StatusOK, nil)

	got := e.auditSeen(e.admin, "content.standing")
	if len(got) != 2 || got[0].Area != "318" || !slices.Equal(got[0].Areas, []string{"12346", "12347"}) ||
		got[1].Area != "318" || !slices.Equal(got[1].Areas, []string{"12346", "12347"}) {
		t.Fatalf("content.standing entries %+v, want two filed under 318 for 12346 and 12347", got)
	}
	for _, tc := range []struct {
		who, token string
	}{{"the province officer", province}, {"the district officer who made it", district}} {
		if got := e.auditSeen(tc.token, "content.standing"); len(got) != 2 {
			t.Errorf("%s sees %d content.standing entries of the changes in district 318, want 2", tc.who, len(got))
		}
	}
}
