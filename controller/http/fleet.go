package http

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// Audit actions of fleet health and remote control.
const (
	auditAlarmAck     = "alarm.ack"
	auditNodeSettings = "node.settings"
	auditNodeCommand  = "node.command"
	auditSelfTest     = "selftest.start"
)

// CommandTTL is how long a remote command stays valid: a node that comes
// back later does not reboot out of the blue.
const CommandTTL = 2 * time.Minute

// healthServices returns an error while the fleet health model is not
// wired (a server built for a narrower test).
func (s *Server) healthServices() error {
	if s.HealthService == nil || s.AlarmService == nil || s.SelfTestService == nil {
		return loaxa.Errorf(loaxa.EUnavailable, "Fleet health is not available on this controller.")
	}
	return nil
}

// alarmsResponse answers GET /api/v1/alarms.
type alarmsResponse struct {
	Alarms []*loaxa.Alarm `json:"alarms"`
}

// handleListAlarms answers GET /api/v1/alarms?area=&node=&kind=&state=&from=&to=&limit=
// (kind: one, or several separated by commas):
// alarms in the user's area, newest first.
func (s *Server) handleListAlarms(w http.ResponseWriter, r *http.Request) error {
	if err := s.healthServices(); err != nil {
		return err
	}
	if err := checkQuery(r, "area", "node", "kind", "state", "from", "to", "limit"); err != nil {
		return err
	}
	ctx, q := r.Context(), r.URL.Query()
	f, err := s.alarmScope(ctx, q.Get("area"))
	if err != nil {
		return err
	}
	f.Open = q.Get("state")
	if id := q.Get("node"); id != "" {
		// A cluster that does not exist, or is not the caller's, is said
		// so, as the play log does: an empty list read as "no alarm on
		// that cluster" to a technician who mistyped its id.
		n, err := s.requireNode(ctx, "node", id)
		if err != nil {
			return err
		}
		if err := s.authorizeOn(ctx, loaxa.ActionRead, n.Area, fmt.Sprintf("Node %q", n.ID)); err != nil {
			return err
		}
		f.Node = n.ID
	}
	if v := q.Get("kind"); v != "" {
		// One kind, or several separated by commas.
		for _, k := range strings.Split(v, ",") {
			if !slices.Contains(loaxa.AlarmKinds, k) {
				return loaxa.Errorf(loaxa.EInvalid, "kind %q is not an alarm kind; use one of %s (several separated by commas).", k, strings.Join(loaxa.AlarmKinds, ", "))
			}
			f.Kinds = append(f.Kinds, k)
		}
	}
	if f.Open != "" && f.Open != "open" && f.Open != "closed" {
		return loaxa.Errorf(loaxa.EInvalid, "state %q: use open or closed (or leave it out for both).", f.Open)
	}
	if f.From, err = parseQueryTime("from", q.Get("from")); err != nil {
		return err
	}
	if f.To, err = parseQueryTime("to", q.Get("to")); err != nil {
		return err
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return loaxa.Errorf(loaxa.EInvalid, "from %s is not before to %s; give from < to (to is exclusive).", q.Get("from"), q.Get("to"))
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			return loaxa.Errorf(loaxa.EInvalid, "limit %q is not a number from 1 to 10000.", v)
		}
		f.Limit = n
	}
	alarms, err := s.AlarmService.FindAlarms(ctx, f)
	if err != nil {
		return fmt.Errorf("list alarms: %w", err)
	}
	s.writeJSON(w, r, http.StatusOK, alarmsResponse{Alarms: nonNil(alarms)})
	return nil
}

// alarmScope is the filter of the user's area, narrowed to area if given.
func (s *Server) alarmScope(ctx context.Context, area string) (loaxa.AlarmFilter, error) {
	f := loaxa.AlarmFilter{Within: userFrom(ctx).Area}
	if area != "" {
		if _, err := s.requireArea(ctx, "area", area); err != nil {
			return f, err
		}
		if err := s.authorize(ctx, loaxa.ActionRead, area); err != nil {
			return f, err
		}
		f.Within = area
	}
	return f, nil
}

// handleAlarmStream answers GET /api/v1/alarms/stream?area=&max= with a
// server-sent event stream: an "alarm" event (the alarm as JSON) whenever
// an alarm in scope opens, ends or is acknowledged, a "resync" event when
// the stream fell behind and lost changes (the client reads the alarms
// again), and a comment every 30 s to keep proxies from closing the
// connection. max (a duration, e.g. 10m) ends the stream after that long,
// for proxies that cut long requests; EventSource reconnects by itself.
func (s *Server) handleAlarmStream(w http.ResponseWriter, r *http.Request) error {
	if err := s.healthServices(); err != nil {
		return err
	}
	if err := checkQuery(r, "area", "max"); err != nil {
		return err
	}
	ctx := r.Context()
	f, err := s.alarmScope(ctx, r.URL.Query().Get("area"))
	if err != nil {
		return err
	}
	var end <-chan time.Time
	if v := r.URL.Query().Get("max"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return loaxa.Errorf(loaxa.EInvalid, "max %q is not a positive duration; write e.g. 10m or 1h.", v)
		}
		t := time.NewTimer(d)
		defer t.Stop()
		end = t.C
	}
	in, err := s.alarmAreas(ctx, f.Within)
	if err != nil {
		return err
	}
	changes, cancel := s.HealthService.SubscribeAlarms(in)
	defer func() { cancel() }() // the subscription of the moment
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": loaxa alarms\n\n")
	if err := rc.Flush(); err != nil {
		return nil
	}
	keepAlive := time.NewTicker(30 * time.Second)
	defer keepAlive.Stop()
	// The stream ends with the session that opened it (a stolen phone's
	// session revoked): it went on sending alarms.
	session := time.NewTicker(sessionCheck)
	defer session.Stop()
	covers := map[string]bool{} // area → in scope, cached for the stream
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.closing:
			return nil
		case <-end:
			return nil
		case <-session.C:
			if detail := s.sessionEnded(ctx, loaxa.ActionRead, []string{f.Within}); detail != "" {
				s.logger().Info("alarm stream ended", "user", userFrom(ctx).Username, "why", detail)
				return nil
			}
			continue
		case <-keepAlive.C:
			fmt.Fprint(w, ": keep-alive\n\n")
		case a, ok := <-changes:
			if !ok {
				// Fell behind (a sweep that opened thousands of alarms
				// at once) and lost changes: subscribe again, then tell
				// the client to read the alarms again, so that none
				// falls between its reading and the new subscription.
				cancel()
				changes, cancel = s.HealthService.SubscribeAlarms(in)
				s.logger().Info("alarm stream fell behind; the client is told to read the alarms again", "user", userFrom(ctx).Username)
				fmt.Fprint(w, "event: resync\ndata: {}\n\n")
				break
			}
			in, seen := covers[a.Area]
			if !seen {
				in = f.Within == "" || s.within(ctx, a.Area, f.Within)
				covers[a.Area] = in
			}
			if !in {
				continue
			}
			raw, err := json.Marshal(a)
			if err != nil {
				return nil
			}
			fmt.Fprintf(w, "event: alarm\nid: %s\ndata: %s\n\n", a.ID, raw)
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
	}
}

// alarmAreas returns which areas' alarm changes a stream of root's subtree
// subscribes to (nil: every area, for the whole tree): those of the
// subtree, and those of an area made since, which the stream checks itself.
// An outage elsewhere then takes no room in the stream's buffer, so it
// neither delays its changes nor makes it resync. It reads the tree's
// shape only (AreaParents), once: a console opens a stream on every page
// load, and reading every area twice, whole, cost a province's officer
// 15 ms with 5,000 areas (BENCHMARKS.md).
func (s *Server) alarmAreas(ctx context.Context, root string) (func(area string) bool, error) {
	if root == "" {
		return nil, nil
	}
	parents, err := s.AreaService.AreaParents(ctx)
	if err != nil {
		return nil, fmt.Errorf("areas of the alarm stream within %s: %w", root, err)
	}
	if _, ok := parents[root]; !ok {
		return nil, loaxa.Errorf(loaxa.ENotFound, "Area %q does not exist.", root)
	}
	children := make(map[string][]string, len(parents))
	for id, parent := range parents {
		if parent != "" {
			children[parent] = append(children[parent], id)
		}
	}
	scope := make(map[string]bool, len(parents)) // area → in the subtree; read only from here on
	for id := range parents {
		scope[id] = false
	}
	for next := []string{root}; len(next) > 0; {
		id := next[len(next)-1]
		next = next[:len(next)-1]
		scope[id] = true
		next = append(next, children[id]...)
	}
	return func(area string) bool {
		in, known := scope[area]
		return in || !known
	}, nil
}

// within reports whether area lies in root's subtree.
func (s *Server) within(ctx context.Context, area, root string) bool {
	chain, err := s.AreaService.AreaChain(ctx, area)
	return err == nil && slices.Contains(chain, root)
}

// handleAckAlarm answers POST /api/v1/alarms/{id}/ack: records that the
// user has seen the alarm (it stays open until its condition clears). An
// alarm acknowledged already keeps the first acknowledgement and is
// answered 200 as it is, ack_by naming who took it: two technicians on
// one alarm is no error, and the second learns who has it.
func (s *Server) handleAckAlarm(w http.ResponseWriter, r *http.Request) error {
	if err := s.healthServices(); err != nil {
		return err
	}
	ctx, id := r.Context(), r.PathValue("id")
	a, err := s.AlarmService.FindAlarmByID(ctx, id)
	if err != nil {
		return err
	}
	if err := s.authorizeOn(ctx, loaxa.ActionMaintain, a.Area, fmt.Sprintf("Alarm %s", a.ID)); err != nil {
		return err
	}
	u := userFrom(ctx)
	a, err = s.HealthService.AckAlarm(ctx, id, u.Username)
	if err != nil {
		return fmt.Errorf("acknowledge alarm %s: %w", id, err)
	}
	s.audit(r, auditAlarmAck, a.ID, a.Area, alarmAckDetail(a, u.Username))
	s.writeJSON(w, r, http.StatusOK, a)
	return nil
}

// alarmAckDetail is the audit detail of an acknowledgement by user by:
// the alarm's kind and node, and, when someone else took it first, who
// (acked_by), as the alarm keeps their acknowledgement, not this one.
func alarmAckDetail(a *loaxa.Alarm, by string) string {
	d := fmt.Sprintf("kind=%s node=%s", a.Kind, a.Node)
	if a.AckBy != by {
		d += fmt.Sprintf(" acked_by=%s", a.AckBy)
	}
	return d
}

// handleFleetHealth answers GET /api/v1/fleet/health: the health of the
// user's whole area.
func (s *Server) handleFleetHealth(w http.ResponseWriter, r *http.Request) error {
	if err := s.healthServices(); err != nil {
		return err
	}
	h, err := s.HealthService.AreaHealth(r.Context(), userFrom(r.Context()).Area)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, h)
	return nil
}

// handleAreaHealth answers GET /api/v1/areas/{id}/health.
func (s *Server) handleAreaHealth(w http.ResponseWriter, r *http.Request) error {
	if err := s.healthServices(); err != nil {
		return err
	}
	ctx, id := r.Context(), r.PathValue("id")
	if _, err := s.AreaService.FindAreaByID(ctx, id); loaxa.ErrorCode(err) == loaxa.ENotFound {
		return loaxa.Errorf(loaxa.ENotFound, "There is no area %q; list areas with GET /api/v1/areas.", id)
	} else if err != nil {
		return err
	}
	if err := s.authorize(ctx, loaxa.ActionRead, id); err != nil {
		return err
	}
	h, err := s.HealthService.AreaHealth(ctx, id)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, h)
	return nil
}

// settingsRequest is the body of PATCH /api/v1/nodes/{id}/settings; absent
// fields stay as they are.
type settingsRequest struct {
	Volume          *int    `json:"volume"`
	Muted           *bool   `json:"muted"`
	AmplifierPolicy *string `json:"amplifier_policy"`
}

// handleNodeSettings answers PATCH /api/v1/nodes/{id}/settings: the node's
// default volume, mute and amplifier policy. They travel in the node's
// signed desired state, so a node that is offline now applies them when it
// is back, and keeps them across restarts.
func (s *Server) handleNodeSettings(w http.ResponseWriter, r *http.Request) error {
	n, err := s.maintainNode(r)
	if err != nil {
		return err
	}
	var req settingsRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Volume == nil && req.Muted == nil && req.AmplifierPolicy == nil {
		return loaxa.Errorf(loaxa.EInvalid, "Give at least one of volume (0–15), muted (true/false) or amplifier_policy (auto, always-on).")
	}
	if v := req.Volume; v != nil && (*v < protocol.MinVolume || *v > protocol.MaxVolume) {
		return loaxa.Errorf(loaxa.EInvalid, "volume %d is out of range; the boards have levels %d to %d.", *v, protocol.MinVolume, protocol.MaxVolume)
	}
	if p := req.AmplifierPolicy; p != nil && *p != protocol.AmpAuto && *p != protocol.AmpAlwaysOn {
		return loaxa.Errorf(loaxa.EInvalid, "amplifier_policy %q: use %q (on only around plays) or %q.", *p, protocol.AmpAuto, protocol.AmpAlwaysOn)
	}
	n, err = s.NodeService.UpdateNodeSettings(r.Context(), n.ID, func(st *loaxa.NodeSettings) error {
		if req.Volume != nil {
			v := *req.Volume
			st.Volume = &v
		}
		if req.Muted != nil {
			st.Muted = *req.Muted
		}
		if req.AmplifierPolicy != nil {
			st.AmplifierPolicy = *req.AmplifierPolicy
			if st.AmplifierPolicy == protocol.AmpAuto {
				st.AmplifierPolicy = ""
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.audit(r, auditNodeSettings, n.ID, n.Area, settingsDetail(req))
	s.changed()
	s.writeJSON(w, r, http.StatusOK, n)
	return nil
}

// settingsDetail says the settings a request gave, for the audit log, as
// the key=value facts the console words ("volume=8 muted=false"); the
// request's JSON, nulls and all, was shown as written.
func settingsDetail(req settingsRequest) string {
	var parts []string
	if req.Volume != nil {
		parts = append(parts, fmt.Sprintf("volume=%d", *req.Volume))
	}
	if req.Muted != nil {
		parts = append(parts, fmt.Sprintf("muted=%t", *req.Muted))
	}
	if req.AmplifierPolicy != nil {
		parts = append(parts, "amplifier_policy="+*req.AmplifierPolicy)
	}
	return strings.Join(parts, " ")
}

// maintainNode returns the node named by the path if the user may
// maintain it.
func (s *Server) maintainNode(r *http.Request) (*loaxa.Node, error) {
	n, err := s.findNode(r)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeOn(r.Context(), loaxa.ActionMaintain, n.Area, fmt.Sprintf("Node %q", n.ID)); err != nil {
		return nil, err
	}
	return n, nil
}

// commandRequest is the body of POST /api/v1/nodes/{id}/commands.
type commandRequest struct {
	Name string `json:"name"`
}

// handleNodeCommand answers POST /api/v1/nodes/{id}/commands with 202: a
// signed command (reboot, state-now) is on its way, valid for CommandTTL.
func (s *Server) handleNodeCommand(w http.ResponseWriter, r *http.Request) error {
	n, err := s.maintainNode(r)
	if err != nil {
		return err
	}
	var req commandRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Name != protocol.CmdReboot && req.Name != protocol.CmdStateNow {
		return loaxa.Errorf(loaxa.EInvalid, "Command %q is unknown; use %q or %q (volume and mute: PATCH /api/v1/nodes/{id}/settings; tests: POST /api/v1/selftests).",
			req.Name, protocol.CmdReboot, protocol.CmdStateNow)
	}
	if s.Messenger == nil {
		return loaxa.Errorf(loaxa.EUnavailable, "Remote commands are not available on this controller.")
	}
	if err := s.Messenger.SendNodeCommand(r.Context(), n.ID, protocol.Command{Name: req.Name}, CommandTTL); err != nil {
		s.logger().Error("remote command not sent", "node", n.ID, "command", req.Name, "err", err)
		return loaxa.Errorf(loaxa.EUnavailable, "The command could not be handed to the broker; check GET /api/v1/health and try again.")
	}
	s.audit(r, auditNodeCommand, n.ID, n.Area, "name="+req.Name)
	s.writeJSON(w, r, http.StatusAccepted, map[string]any{"node": n.ID, "name": req.Name, "expires": s.now().Add(CommandTTL).UTC()})
	return nil
}

// selfTestRequest is the body of POST /api/v1/selftests.
type selfTestRequest struct {
	Kind  string   `json:"kind"`
	Area  string   `json:"area"`
	Nodes []string `json:"nodes"`
}

// handleStartSelfTest answers POST /api/v1/selftests with 202 and the run:
// a silent or audible self-test of the online nodes of an area and/or of
// named nodes. GET /api/v1/selftests/{id} has the report.
func (s *Server) handleStartSelfTest(w http.ResponseWriter, r *http.Request) error {
	if err := s.healthServices(); err != nil {
		return err
	}
	ctx := r.Context()
	var req selfTestRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	// Without a kind the test is silent: no tone, nothing a village hears
	// by mistake; audible is asked for by name.
	if req.Kind == "" {
		req.Kind = protocol.TestSilent
	}
	// Without an area or nodes, the caller's own area: a commune
	// technician's {} tests the commune's clusters online. A whole-tree
	// user has none, and the province is named, not taken by default.
	if req.Area == "" && len(req.Nodes) == 0 {
		req.Area = userFrom(ctx).Area
		if req.Area == "" {
			return loaxa.Errorf(loaxa.EInvalid, `Name what to test: "area" (an area's code: its clusters online) or "nodes" (clusters' ids, whatever their state). Without either a self-test tests your own area, and you are over the whole tree: name the province's area to test every cluster online.`)
		}
	}
	if req.Area != "" {
		if _, err := s.requireArea(ctx, "area", req.Area); err != nil {
			return err
		}
		if err := s.authorize(ctx, loaxa.ActionMaintain, req.Area); err != nil {
			return err
		}
	}
	// The areas tested, for the audit: a test of named clusters was filed
	// under the tester's area (none, for a whole-tree admin), and the
	// district whose clusters were tested never saw it.
	var areas []string
	if req.Area != "" {
		areas = append(areas, req.Area)
	}
	for _, id := range req.Nodes {
		n, err := s.NodeService.FindNodeByID(ctx, id)
		if loaxa.ErrorCode(err) == loaxa.ENotFound {
			return loaxa.Errorf(loaxa.EInvalid, "nodes: there is no node %q.", id)
		} else if err != nil {
			return err
		}
		if err := s.authorizeOn(ctx, loaxa.ActionMaintain, n.Area, fmt.Sprintf("Node %q", n.ID)); err != nil {
			return err
		}
		if !slices.Contains(areas, n.Area) {
			areas = append(areas, n.Area)
		}
	}
	run, err := s.HealthService.StartSelfTest(ctx, req.Kind, req.Area, req.Nodes, userFrom(ctx).Username)
	if err != nil {
		return err
	}
	// How many clusters, as node_count: under nodes= (an older entry's
	// key) the count read as a cluster's id.
	s.auditIn(r, auditSelfTest, run.ID, areas, fmt.Sprintf("kind=%s node_count=%d", run.Kind, len(run.Nodes)))
	s.writeJSON(w, r, http.StatusAccepted, run)
	return nil
}

// selfTestSummary is a run in GET /api/v1/selftests.
type selfTestSummary struct {
	ID          string    `json:"id"`
	Kind        string    `json:"kind"`
	Area        string    `json:"area,omitempty"`
	Nodes       int       `json:"nodes"`
	RequestedBy string    `json:"requested_by"`
	Started     time.Time `json:"started"`
	Deadline    time.Time `json:"deadline"`
}

// handleListSelfTests answers GET /api/v1/selftests: the latest runs.
func (s *Server) handleListSelfTests(w http.ResponseWriter, r *http.Request) error {
	if err := s.healthServices(); err != nil {
		return err
	}
	if err := checkQuery(r); err != nil {
		return err
	}
	ctx := r.Context()
	runs, err := s.SelfTestService.FindSelfTests(ctx, 100)
	if err != nil {
		return err
	}
	sc, err := s.scopeOf(ctx, userFrom(ctx), true)
	if err != nil {
		return err
	}
	mine := sc.nodes
	out := make([]selfTestSummary, 0, len(runs))
	for _, t := range runs {
		n := len(t.Nodes)
		if !sc.all {
			// Runs of other areas are theirs: not listed, nor counted.
			if n = countIn(t.Nodes, mine); n == 0 {
				continue
			}
		}
		out = append(out, selfTestSummary{ID: t.ID, Kind: t.Kind, Area: t.Area, Nodes: n, RequestedBy: t.RequestedBy, Started: t.Started, Deadline: t.Deadline})
	}
	s.writeJSON(w, r, http.StatusOK, map[string]any{"selftests": out})
	return nil
}

// handleGetSelfTest answers GET /api/v1/selftests/{id}: the report, with
// the nodes of the user's area only.
func (s *Server) handleGetSelfTest(w http.ResponseWriter, r *http.Request) error {
	if err := s.healthServices(); err != nil {
		return err
	}
	ctx := r.Context()
	t, err := s.SelfTestService.FindSelfTestByID(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	sc, err := s.scopeOf(ctx, userFrom(ctx), true)
	if err != nil {
		return err
	}
	if mine := sc.nodes; !sc.all {
		if countIn(t.Nodes, mine) == 0 {
			return loaxa.Errorf(loaxa.EForbidden, "Self-test %s tested no cluster of your area.", t.ID)
		}
		// The nodes and their results both: the report carries the run.
		t.Nodes = slices.DeleteFunc(t.Nodes, func(id string) bool { return !mine[id] })
		maps.DeleteFunc(t.Results, func(id string, _ *protocol.TestResult) bool { return !mine[id] })
	}
	s.writeJSON(w, r, http.StatusOK, t.Report(s.now()))
	return nil
}

// countIn counts the ids in set.
func countIn(ids []string, set map[string]bool) int {
	n := 0
	for _, id := range ids {
		if set[id] {
			n++
		}
	}
	return n
}
