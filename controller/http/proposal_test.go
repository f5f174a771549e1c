package http_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	lhttp "loaxa.vn/controller/http"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/schedule"
)

// programmeOf returns "announcement HH:MM" (local time, day of month) for
// each item of a node's programme over [from, to).
func (e *env) programmeOf(token, node, from, to string) []string {
	e.t.Helper()
	var resp struct{ Items []loaxa.ProgrammeItem }
	e.call("GET", "/api/v1/nodes/"+node+"/programme?from="+from+"&to="+to, token, nil, http.StatusOK, &resp)
	var out []string
	for _, it := range resp.Items {
		out = append(out, fmt.Sprintf("%s %s", it.Announcement, it.Start.In(t0.Location()).Format("02 15:04")))
	}
	return out
}

// TestProposals: a normal bulletin from the district reaches each station
// below it as a proposal; its nodes play it only once the station's
// officer accepts it (into one of the station's sessions), never if
// declined; an officer decides only for their own station. A priority
// bulletin from the district opens the next session of every station.
func TestProposals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	officerA := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	officerB := e.addUser("can-bo-b", loaxa.RoleCommune, "12347")
	district := e.addUser("can-bo-huyen", loaxa.RoleDistrict, "318")
	c := e.upload(e.admin, "ban-tin.wav", wav(16000, 1, 16000), "Bản tin huyện", http.StatusCreated) // 1 s

	var eveningA, morningB loaxa.Session
	e.call("POST", "/api/v1/sessions", officerA, map[string]any{"area": "12346", "name": "Buổi chiều", "start": "17:00", "max_minutes": 45},
		http.StatusCreated, &eveningA)
	e.call("POST", "/api/v1/sessions", officerB, map[string]any{"area": "12347", "name": "Buổi sáng", "start": "05:30", "max_minutes": 15},
		http.StatusCreated, &morningB)

	announce := func(token, area, priority string, at time.Time) struct {
		loaxa.Announcement
		Proposals []loaxa.Proposal
	} {
		var out struct {
			loaxa.Announcement
			Proposals []loaxa.Proposal
		}
		e.call("POST", "/api/v1/announcements", token, map[string]any{
			"content_id": c.ID, "targets": map[string]any{"areas": []string{area}}, "priority": priority, "start": at.Format(time.RFC3339),
		}, http.StatusCreated, &out)
		return out
	}
	// Monday 06:00: from the district, so each station is asked.
	bulletin := announce(district, "318", "normal", t0.Add(time.Hour))
	if !bulletin.Proposed || len(bulletin.Proposals) != 2 {
		t.Fatalf("district bulletin: proposed %v, proposals %+v", bulletin.Proposed, bulletin.Proposals)
	}
	byArea := map[string]loaxa.Proposal{}
	for _, p := range bulletin.Proposals {
		byArea[p.Area] = p
		if p.State != loaxa.ProposalPending || p.Announcement != bulletin.ID {
			t.Errorf("proposal %+v", p)
		}
	}
	pA, pB := byArea["12346"], byArea["12347"]
	if pA.ID == "" || pB.ID == "" {
		t.Fatalf("proposals by area %+v, want one for 12346 and one for 12347", byArea)
	}
	if got := e.programmeOf(e.admin, "n-a", "2026-03-02", "2026-03-04"); len(got) != 0 {
		t.Errorf("n-a plays %v before its station accepted", got)
	}

	listProposals := func(token, query string) []string {
		var resp struct{ Proposals []loaxa.Proposal }
		e.call("GET", "/api/v1/proposals"+query, token, nil, http.StatusOK, &resp)
		var out []string
		for _, p := range resp.Proposals {
			out = append(out, p.ID)
		}
		return out
	}
	if got := listProposals(officerA, ""); !slices.Equal(got, []string{pA.ID}) {
		t.Errorf("officer A sees proposals %v, want only %s", got, pA.ID)
	}
	if got := listProposals(district, "?state=pending&announcement="+bulletin.ID); !slices.Equal(got, []string{pA.ID, pB.ID}) {
		t.Errorf("district sees pending %v", got)
	}

	decide := func(token, id, verb string, body map[string]any) response {
		return e.request("POST", "/api/v1/proposals/"+id+"/"+verb, token, "application/json", jsonBody(t, body))
	}
	changed := e.sched.changed.Load()
	for _, tc := range []struct {
		name   string
		r      response
		status int
		code   string
		msg    string
	}{
		{"accept for another commune", decide(officerA, pB.ID, "accept", map[string]any{"session": morningB.ID}), 403, loaxa.EForbidden,
			`is outside your area "12346"`},
		{"decline for another commune", decide(officerB, pA.ID, "decline", map[string]any{}), 403, loaxa.EForbidden, `is outside your area "12347"`},
		{"accept into another station's session", decide(officerA, pA.ID, "accept", map[string]any{"session": morningB.ID}), 400, loaxa.EInvalid,
			fmt.Sprintf("Session %q is not a session of area 12346; pick one from GET /api/v1/sessions?area=12346.", morningB.ID)},
		{"accept into an unknown session", decide(officerA, pA.ID, "accept", map[string]any{"session": "s999999"}), 400, loaxa.EInvalid, `Session "s999999" does not exist (it may have been deleted since the page was read); pick one of area 12346`},
		{"decline into a session", decide(officerB, pB.ID, "decline", map[string]any{"session": morningB.ID}), 400, loaxa.EInvalid,
			"session is for accepting; leave it out to decline."},
		{"unknown proposal", decide(officerA, "p999999", "accept", map[string]any{}), 404, loaxa.ENotFound,
			`There is no proposal "p999999"; list them with GET /api/v1/proposals.`},
		{"a viewer decides", decide(e.addUser("xem-a", loaxa.RoleViewer, "12346"), pA.ID, "accept", map[string]any{}), 403, loaxa.EForbidden, `Role "viewer" may not schedule`},
		{"unknown field", decide(officerA, pA.ID, "accept", map[string]any{"sesion": eveningA.ID}), 400, loaxa.EInvalid, `Unknown field "sesion"; the accepted fields are session, note, force.`},
		{"bad state filter", e.request("GET", "/api/v1/proposals?state=open", officerA, "", nil), 400, loaxa.EInvalid,
			`state "open" is not a proposal state; use pending, accepted, declined or withdrawn.`},
		{"another commune's list", e.request("GET", "/api/v1/proposals?area=12347", officerA, "", nil), 403, loaxa.EForbidden, "outside your area"},
	} {
		t.Run(tc.name, func(t *testing.T) { checkError(t, tc.r, tc.status, tc.code, tc.msg) })
	}
	if got := e.sched.changed.Load(); got != changed {
		t.Errorf("scheduler told %d times by refused decisions", got-changed)
	}

	var accepted, declined loaxa.Proposal
	e.call("POST", "/api/v1/proposals/"+pA.ID+"/accept", officerA, map[string]any{"session": eveningA.ID, "note": "Phát buổi chiều"}, http.StatusOK, &accepted)
	e.call("POST", "/api/v1/proposals/"+pB.ID+"/decline", officerB, map[string]any{"note": "Đã phát tin tương tự"}, http.StatusOK, &declined)
	if accepted.State != loaxa.ProposalAccepted || accepted.Session != eveningA.ID || accepted.DecidedBy != "can-bo-a" ||
		accepted.Note != "Phát buổi chiều" || !accepted.DecidedAt.Equal(e.clock.Now()) {
		t.Errorf("accepted %+v", accepted)
	}
	if declined.State != loaxa.ProposalDeclined || declined.Session != "" || declined.DecidedBy != "can-bo-b" {
		t.Errorf("declined %+v", declined)
	}
	if got := e.sched.changed.Load() - changed; got != 2 {
		t.Errorf("scheduler told %d times for 2 decisions", got)
	}
	checkError(t, decide(officerA, pA.ID, "decline", map[string]any{}), 409, loaxa.EConflict, fmt.Sprintf("Proposal %s was already accepted by can-bo-a.", pA.ID))
	if got := listProposals(officerA, "?state=accepted"); !slices.Equal(got, []string{pA.ID}) {
		t.Errorf("accepted proposals %v", got)
	}

	// Accepted into the evening session: 17:00 that day at n-a; declined:
	// never at n-b.
	if got, want := e.programmeOf(officerA, "n-a", "2026-03-02", "2026-03-04"), []string{bulletin.ID + " 02 17:00"}; !slices.Equal(got, want) {
		t.Errorf("n-a programme %v, want %v", got, want)
	}
	if got := e.programmeOf(officerB, "n-b", "2026-03-02", "2026-03-04"); len(got) != 0 {
		t.Errorf("n-b plays %v after declining", got)
	}

	// A commune's own normal bulletin is not a proposal; a priority one
	// from the district is not either: it opens each station's next
	// session (12346: 17:00 today; 12347: 05:30 tomorrow), ahead of the
	// accepted bulletin.
	own := announce(officerA, "12346", "normal", t0.Add(2*time.Hour))
	if own.Proposed || len(own.Proposals) != 0 {
		t.Errorf("a commune's own bulletin became proposals: %+v", own.Proposals)
	}
	urgent := announce(district, "318", "priority", t0.Add(time.Hour))
	if urgent.Proposed || len(urgent.Proposals) != 0 {
		t.Errorf("a priority bulletin became proposals: %+v", urgent.Proposals)
	}
	if got, want := e.programmeOf(e.admin, "n-a", "2026-03-02", "2026-03-04"), []string{
		own.ID + " 02 07:00", urgent.ID + " 02 17:00", bulletin.ID + " 02 17:00",
	}; !slices.Equal(got, want) {
		t.Errorf("n-a programme %v, want %v with the priority bulletin first in the session", got, want)
	}
	var items struct{ Items []loaxa.ProgrammeItem }
	e.call("GET", "/api/v1/nodes/n-a/programme?from=2026-03-02&to=2026-03-03", e.admin, nil, http.StatusOK, &items)
	var session []loaxa.ProgrammeItem
	for _, it := range items.Items {
		if it.Session != "" {
			session = append(session, it)
		}
	}
	if len(session) != 2 || session[0].Announcement != urgent.ID || session[1].Announcement != bulletin.ID ||
		!session[1].Start.Equal(session[0].End) {
		t.Errorf("evening session %+v, want the priority bulletin then the accepted one back to back", session)
	}
	if got, want := e.programmeOf(e.admin, "n-b", "2026-03-02", "2026-03-04"), []string{urgent.ID + " 03 05:30"}; !slices.Equal(got, want) {
		t.Errorf("n-b programme %v, want %v", got, want)
	}
}

// TestBulletinFromAboveBelowAStationIsProposed: a district officer named a
// commune's cluster directly (targets.nodes), or a village of the commune,
// instead of the commune: no proposal was made and the cluster played the
// normal bulletin as sent, though the commune officer never accepted it.
// Whatever the target, the station its nodes play through gets the
// proposal, and they play the bulletin only once it is accepted.
func TestBulletinFromAboveBelowAStationIsProposed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	e.call("POST", "/api/v1/areas", e.admin, map[string]string{"id": "1234601", "name": "Thôn Đông", "parent": "12346"}, http.StatusCreated, nil)
	e.call("POST", "/api/v1/nodes", e.admin, map[string]any{"id": "n-v", "name": "Cụm loa thôn Đông", "area": "1234601", "lat": 20.72, "lon": 106.55},
		http.StatusCreated, nil)
	officerA := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	district := e.addUser("can-bo-huyen", loaxa.RoleDistrict, "318")
	c := e.upload(e.admin, "ban-tin.wav", wav(16000, 1, 16000), "Bản tin huyện", http.StatusCreated)
	// Tiên Thắng (12346) is a station: it has an evening session.
	e.call("POST", "/api/v1/sessions", officerA, map[string]any{"area": "12346", "name": "Buổi chiều", "start": "17:00", "max_minutes": 45},
		http.StatusCreated, nil)

	for i, tc := range []struct {
		name    string
		targets map[string]any
		node    string
	}{
		{"a cluster of the station", map[string]any{"nodes": []string{"n-a"}}, "n-a"},
		{"a village of the station", map[string]any{"areas": []string{"1234601"}}, "n-v"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out struct {
				loaxa.Announcement
				Proposals []loaxa.Proposal
			}
			e.call("POST", "/api/v1/announcements", district, map[string]any{
				"content_id": c.ID, "targets": tc.targets, "priority": "normal",
				"start": t0.Add(time.Duration(i+1) * time.Hour).Format(time.RFC3339),
			}, http.StatusCreated, &out)
			if !out.Proposed || len(out.Proposals) != 1 || out.Proposals[0].Area != "12346" {
				t.Fatalf("district bulletin to %v below station 12346: proposed %v, proposals %+v; want one proposal to 12346",
					tc.targets, out.Proposed, out.Proposals)
			}
			if got := e.programmeOf(e.admin, tc.node, "2026-03-02", "2026-03-04"); slices.ContainsFunc(got, func(s string) bool {
				return strings.HasPrefix(s, out.ID+" ")
			}) {
				t.Errorf("%s plays the district's normal bulletin before the commune officer accepted it: %v", tc.node, got)
			}
			e.call("POST", "/api/v1/proposals/"+out.Proposals[0].ID+"/accept", officerA, map[string]any{}, http.StatusOK, nil)
			want := fmt.Sprintf("%s 02 %02d:00", out.ID, 6+i)
			if got := e.programmeOf(e.admin, tc.node, "2026-03-02", "2026-03-04"); !slices.Contains(got, want) {
				t.Errorf("accepted at its own time, %s programme %v, want %s", tc.node, got, want)
			}
		})
	}
}

// TestProposalOfCancelledBulletinIsWithdrawn: the district cancelled its
// bulletin, and the commune still listed the proposal as pending and could
// accept it (200), believing it would be broadcast, though nothing played.
// Cancelling withdraws the bulletin's pending proposals, and deciding one
// answers 409 saying the bulletin was cancelled; a proposal already
// decided keeps its decision.
func TestProposalOfCancelledBulletinIsWithdrawn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	officerA := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	officerB := e.addUser("can-bo-b", loaxa.RoleCommune, "12347")
	district := e.addUser("can-bo-huyen", loaxa.RoleDistrict, "318")
	c := e.upload(e.admin, "ban-tin.wav", wav(16000, 1, 16000), "Bản tin huyện", http.StatusCreated)
	var eveningA loaxa.Session
	e.call("POST", "/api/v1/sessions", officerA, map[string]any{"area": "12346", "name": "Buổi chiều", "start": "17:00", "max_minutes": 45},
		http.StatusCreated, &eveningA)
	e.call("POST", "/api/v1/sessions", officerB, map[string]any{"area": "12347", "name": "Buổi chiều", "start": "17:00", "max_minutes": 45},
		http.StatusCreated, nil)
	var out struct {
		loaxa.Announcement
		Proposals []loaxa.Proposal
	}
	e.call("POST", "/api/v1/announcements", district, map[string]any{
		"content_id": c.ID, "targets": map[string]any{"areas": []string{"318"}}, "priority": "normal",
		"start": t0.Add(time.Hour).Format(time.RFC3339),
	}, http.StatusCreated, &out)
	if len(out.Proposals) != 2 || out.Proposals[0].Area != "12346" || out.Proposals[1].Area != "12347" {
		t.Fatalf("proposals %+v, want one to 12346 and one to 12347", out.Proposals)
	}
	pa, pb := out.Proposals[0].ID, out.Proposals[1].ID
	e.call("POST", "/api/v1/proposals/"+pb+"/decline", officerB, map[string]any{"note": "Trùng lịch"}, http.StatusOK, nil)
	e.call("POST", "/api/v1/announcements/"+out.ID+"/cancel", district, nil, http.StatusOK, nil)

	var l struct{ Proposals []loaxa.Proposal }
	e.call("GET", "/api/v1/proposals?state=pending", officerA, nil, http.StatusOK, &l)
	if len(l.Proposals) != 0 {
		t.Errorf("after the district cancelled %s, the commune still has pending proposals %+v", out.ID, l.Proposals)
	}
	e.call("GET", "/api/v1/proposals?announcement="+out.ID, district, nil, http.StatusOK, &l)
	states := map[string]string{}
	for _, p := range l.Proposals {
		states[p.ID] = p.State
	}
	if want := map[string]string{pa: loaxa.ProposalWithdrawn, pb: loaxa.ProposalDeclined}; !maps.Equal(states, want) {
		t.Errorf("proposals of the cancelled bulletin: %v, want %v (a decided one keeps its decision)", states, want)
	}
	for _, verb := range []string{"accept", "decline"} {
		body := map[string]any{}
		if verb == "accept" {
			body["session"] = eveningA.ID
		}
		checkError(t, e.request("POST", "/api/v1/proposals/"+pa+"/"+verb, officerA, "application/json", jsonBody(t, body)),
			http.StatusConflict, loaxa.EConflict, "Proposal "+pa+" is withdrawn: announcement "+out.ID+" was cancelled")
	}
	if got := e.programmeOf(e.admin, "n-a", "2026-03-02", "2026-03-04"); len(got) != 0 {
		t.Errorf("n-a programme %v after the cancel, want nothing", got)
	}
}

// TestDecidedProposalAnswersWithItsDecision: a commune officer pressed
// "Nhận phát" on a proposal that a colleague had declined meanwhile (or
// whose bulletin the district had cancelled), and the console could show
// only the API's English ("Proposal p000001 was already declined by …").
// The 409 carries the proposal as it stands: who decided what and when, or
// withdrawn, for the console to say in Vietnamese.
func TestDecidedProposalAnswersWithItsDecision(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	officer := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	colleague := e.addUser("pho-ban-a", loaxa.RoleCommune, "12346")
	district := e.addUser("can-bo-huyen", loaxa.RoleDistrict, "318")
	c := e.upload(e.admin, "ban-tin.wav", wav(16000, 1, 16000), "Bản tin huyện", http.StatusCreated)
	e.call("POST", "/api/v1/sessions", officer, map[string]any{"area": "12346", "name": "Buổi chiều", "start": "17:00", "max_minutes": 45},
		http.StatusCreated, nil)
	send := func() (ann, proposal string) {
		var out struct {
			loaxa.Announcement
			Proposals []loaxa.Proposal
		}
		e.call("POST", "/api/v1/announcements", district, map[string]any{
			"content_id": c.ID, "targets": map[string]any{"areas": []string{"12346"}}, "priority": "normal",
			"start": t0.Add(time.Hour).Format(time.RFC3339),
		}, http.StatusCreated, &out)
		if len(out.Proposals) != 1 {
			t.Fatalf("proposals %+v, want one to 12346", out.Proposals)
		}
		return out.ID, out.Proposals[0].ID
	}
	decided := func(id string) loaxa.Proposal {
		t.Helper()
		r := e.request("POST", "/api/v1/proposals/"+id+"/accept", officer, "application/json", jsonBody(t, map[string]any{}))
		checkError(t, r, http.StatusConflict, loaxa.EConflict, "Proposal "+id)
		var body struct{ Proposal *loaxa.Proposal }
		if err := json.Unmarshal(r.body, &body); err != nil || body.Proposal == nil {
			t.Fatalf("409 %s: no proposal in it (%v)", r.body, err)
		}
		return *body.Proposal
	}

	_, declined := send()
	e.clock.Advance(time.Minute)
	e.call("POST", "/api/v1/proposals/"+declined+"/decline", colleague, map[string]any{}, http.StatusOK, nil)
	if p := decided(declined); p.ID != declined || p.State != loaxa.ProposalDeclined || p.DecidedBy != "pho-ban-a" || !p.DecidedAt.Equal(e.clock.Now()) {
		t.Errorf("accepting a proposal the colleague declined: 409 with %+v, want it declined by pho-ban-a at %v", p, e.clock.Now())
	}
	ann, withdrawn := send()
	e.call("POST", "/api/v1/announcements/"+ann+"/cancel", district, nil, http.StatusOK, nil)
	if p := decided(withdrawn); p.ID != withdrawn || p.State != loaxa.ProposalWithdrawn {
		t.Errorf("accepting the proposal of a cancelled bulletin: 409 with %+v, want it withdrawn", p)
	}
}

// TestAcceptIntoSessionOverBeforeBulletinStart: the district sent a
// one-off bulletin for Monday 18:00; the commune officer accepted it into
// the 17:00 session (45 min, over at 17:45): 200, and the clusters played
// it at 17:00, an hour before its time, though the same placement made
// directly is refused as a conflict. Accepting runs the same check: 409
// with the conflicts, nothing accepted; "force" accepts it anyway, and
// accepting it at its own time is fine.
func TestAcceptIntoSessionOverBeforeBulletinStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	officerA := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	district := e.addUser("can-bo-huyen", loaxa.RoleDistrict, "318")
	c := e.upload(e.admin, "ban-tin.wav", wav(16000, 1, 16000), "Bản tin huyện", http.StatusCreated)
	var eveningA loaxa.Session
	e.call("POST", "/api/v1/sessions", officerA, map[string]any{"area": "12346", "name": "Buổi chiều", "start": "17:00", "max_minutes": 45},
		http.StatusCreated, &eveningA)
	at := t0.Add(13 * time.Hour) // Monday 18:00 +07
	propose := func() (string, string) {
		var out struct {
			loaxa.Announcement
			Proposals []loaxa.Proposal
		}
		e.call("POST", "/api/v1/announcements", district, map[string]any{
			"content_id": c.ID, "targets": map[string]any{"areas": []string{"12346"}}, "priority": "normal", "start": at.Format(time.RFC3339),
		}, http.StatusCreated, &out)
		if len(out.Proposals) != 1 {
			t.Fatalf("proposals %+v, want one to 12346", out.Proposals)
		}
		return out.ID, out.Proposals[0].ID
	}
	// The same placement made directly is refused as a conflict.
	direct := e.request("POST", "/api/v1/announcements", officerA, "application/json", jsonBody(t, map[string]any{
		"content_id": c.ID, "targets": map[string]any{"areas": []string{"12346"}}, "start": at.Format(time.RFC3339), "session": eveningA.ID,
	}))
	if direct.status != http.StatusConflict {
		t.Fatalf("the same placement made directly: %d %s, want 409", direct.status, direct.body)
	}

	ann, p := propose()
	r := e.request("POST", "/api/v1/proposals/"+p+"/accept", officerA, "application/json", jsonBody(t, map[string]any{"session": eveningA.ID}))
	checkError(t, r, http.StatusConflict, loaxa.EConflict, "Accepting proposal "+p+" conflicts with the programme in 1 place: Announcement \"Bản tin huyện\" ("+ann+") starts at 18:00, after session "+eveningA.ID)
	var refused conflictAnswer
	if err := json.Unmarshal(r.body, &refused); err != nil || len(refused.Conflicts) != 1 || refused.Conflicts[0].Kind != loaxa.ConflictNoSession || refused.Conflicts[0].Node != "n-a" {
		t.Errorf("conflicts %+v (%v), want one no-session conflict on n-a", refused.Conflicts, err)
	} else if end := refused.Conflicts[0].SessionEnd; !end.Equal(t0.Add(12*time.Hour+45*time.Minute)) || end.Format(time.RFC3339) != "2026-03-02T17:45:00+07:00" {
		// When the session that day is over, at the area's offset: the
		// console says so, not that the session does not run that day.
		t.Errorf("the conflict's session_end is %v; want 17:45 on 2026-03-02 at +07:00", end)
	}
	var l struct{ Proposals []loaxa.Proposal }
	e.call("GET", "/api/v1/proposals?state=pending", officerA, nil, http.StatusOK, &l)
	if len(l.Proposals) != 1 || l.Proposals[0].ID != p {
		t.Errorf("pending after the refused accept: %+v, want %s still pending", l.Proposals, p)
	}
	if got := e.programmeOf(e.admin, "n-a", "2026-03-02", "2026-03-04"); len(got) != 0 {
		t.Errorf("n-a plays %v after the refused accept, want nothing", got)
	}

	// Forced, it is accepted and the conflict is listed.
	var forced struct {
		loaxa.Proposal
		Conflicts []loaxa.Conflict
	}
	e.call("POST", "/api/v1/proposals/"+p+"/accept", officerA, map[string]any{"session": eveningA.ID, "force": true}, http.StatusOK, &forced)
	if forced.State != loaxa.ProposalAccepted || len(forced.Conflicts) != 1 {
		t.Errorf("forced accept: %+v, want accepted with the one conflict", forced)
	}
	// The audit log says it as facts the console words, not English
	// prose ("session=…, 1 conflict forced").
	if got := e.auditSeen(e.admin, "proposal.accepted"); len(got) != 1 || got[0].Detail != "session="+eveningA.ID+" conflicts=1" {
		t.Errorf("audit %+v, want the forced accept as session=%s conflicts=1", got, eveningA.ID)
	}
	// At its own time there is nothing in the way.
	ann2, p2 := propose()
	e.call("POST", "/api/v1/proposals/"+p2+"/accept", officerA, map[string]any{}, http.StatusOK, nil)
	if got := e.programmeOf(e.admin, "n-a", "2026-03-02", "2026-03-04"); !slices.Contains(got, ann2+" 02 18:00") {
		t.Errorf("n-a programme %v, want %s at 18:00", got, ann2)
	}
}

// TestProposalAcceptWhenTheCheckPanicsSaysWhich: accepting a bulletin
// from above asks the scheduler whether it conflicts with the station's
// programme (CheckProposal), which a library choking on an input it took
// (here the bulletin's content) could panic in. The accept answers 500
// saying what failed and that the proposal is still pending, the log names
// the check and the panic, and nothing is accepted, as for a session
// delete's check (TestSessionDeleteWhenTheCheckPanicsSaysWhich).
func TestProposalAcceptWhenTheCheckPanicsSaysWhich(t *testing.T) {
	t.Parallel()
	var prog *schedule.Scheduler
	e := newEnv(t, func(s *lhttp.Server) { prog = s.ProgrammeService.(*schedule.Scheduler) })
	e.tree()
	officer := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	district := e.addUser("can-bo-huyen", loaxa.RoleDistrict, "318")
	c := e.upload(e.admin, "ban-tin.wav", wav(16000, 1, 16000), "Bản tin huyện", http.StatusCreated)
	var evening loaxa.Session
	e.call("POST", "/api/v1/sessions", officer, map[string]any{"area": "12346", "name": "Buổi chiều", "start": "17:00", "max_minutes": 45},
		http.StatusCreated, &evening)
	var sent struct {
		loaxa.Announcement
		Proposals []loaxa.Proposal
	}
	e.call("POST", "/api/v1/announcements", district, map[string]any{"title": "Lịch tiêm phòng", "content_id": c.ID,
		"targets": map[string]any{"areas": []string{"12346"}}, "priority": "normal", "start": t0.Add(time.Hour).Format(time.RFC3339)},
		http.StatusCreated, &sent)
	if len(sent.Proposals) != 1 {
		t.Fatalf("proposals %+v, want one to 12346", sent.Proposals)
	}
	p := sent.Proposals[0].ID
	prog.ContentService = panickyContent{ContentService: prog.ContentService, bad: c.ID}
	r := e.request("POST", "/api/v1/proposals/"+p+"/accept", officer, "application/json", jsonBody(t, map[string]any{"session": evening.ID}))
	checkError(t, r, http.StatusInternalServerError, loaxa.EInternal, fmt.Sprintf(
		`Proposal %s was not accepted: the controller failed while checking it against the programme (a fault of the controller; its log has the details, under "proposal conflict check failed"). It is still pending. Try again; if it fails again, tell the controller's administrator.`, p))
	if logs := e.logs.String(); !strings.Contains(logs, "proposal conflict check failed") || !strings.Contains(logs, "choked on "+c.ID) {
		t.Errorf("the log does not name the failed check and its panic:\n%s", logs)
	}
	var l struct{ Proposals []loaxa.Proposal }
	e.call("GET", "/api/v1/proposals?state=pending", officer, nil, http.StatusOK, &l)
	if len(l.Proposals) != 1 || l.Proposals[0].ID != p {
		t.Errorf("pending after the failed check: %+v, want %s still pending", l.Proposals, p)
	}
}

// TestBulletinFromAboveIsNoConflictBeforeItsStationAccepts: a district's
// normal bulletin is proposed to each station below, whose clusters play
// it only once their officer accepts it, and the accept is checked then
// (CheckProposal). The send was checked as if every cluster played it at
// its own time, so a district's daily 17:00 bulletin was refused with 409
// for the 17:00 item of a commune's own evening session: an overlap that
// could happen only if that commune accepted it at its own time, and one
// the district officer could not fix but with force. It is sent, and the
// commune that accepts it at its own time is refused then.
func TestBulletinFromAboveIsNoConflictBeforeItsStationAccepts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	officerA := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	district := e.addUser("can-bo-huyen", loaxa.RoleDistrict, "318")
	c := e.upload(e.admin, "ban-tin.wav", wav(16000, 1, 16000), "Bản tin", http.StatusCreated)
	var evening loaxa.Session
	e.call("POST", "/api/v1/sessions", officerA, map[string]any{"area": "12346", "name": "Buổi chiều", "start": "17:00", "max_minutes": 45},
		http.StatusCreated, &evening)
	at17 := time.Date(2026, 3, 2, 17, 0, 0, 0, time.FixedZone("+07", 7*3600)).Format(time.RFC3339)
	e.call("POST", "/api/v1/announcements", officerA, map[string]any{"title": "Bản tin thời sự", "content_id": c.ID,
		"targets": map[string]any{"areas": []string{"12346"}}, "start": at17, "rrule": "FREQ=DAILY", "session": evening.ID}, http.StatusCreated, nil)

	var sent struct {
		loaxa.Announcement
		Proposals []loaxa.Proposal
	}
	e.call("POST", "/api/v1/announcements", district, map[string]any{"title": "Bản tin huyện", "content_id": c.ID,
		"targets": map[string]any{"areas": []string{"318"}}, "start": at17, "rrule": "FREQ=DAILY"}, http.StatusCreated, &sent)
	var pA string
	for _, p := range sent.Proposals {
		if p.Area == "12346" {
			pA = p.ID
		}
	}
	if pA == "" {
		t.Fatalf("proposals %+v, want one for 12346", sent.Proposals)
	}
	r := e.request("POST", "/api/v1/proposals/"+pA+"/accept", officerA, "application/json", jsonBody(t, map[string]any{}))
	if r.status != http.StatusConflict {
		t.Errorf("accepted at its own time over the session's 17:00 item: %d %s, want 409", r.status, r.body)
	}
	e.call("POST", "/api/v1/proposals/"+pA+"/accept", officerA, map[string]any{"session": evening.ID}, http.StatusOK, nil)
}
