package http_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	lhttp "loaxa.vn/controller/http"
	"loaxa.vn/controller/loaxa"
)

// TestUpdateNode: a cluster, once enrolled, could never be corrected: a
// misspelt name, a position surveyed later, a pole moved to the
// neighbouring commune. PATCH /api/v1/nodes/{id} corrects name and
// position and moves it, checked as POST /nodes checks them; a move needs
// nodes.manage on both communes, is found under the new commune at once,
// is told to the parts that keep the node's area (NodeMoved) and the
// scheduler, and is audited with what changed, seen from both communes.
func TestUpdateNode(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		moves []string
	)
	e := newEnv(t, func(s *lhttp.Server) {
		s.NodeMoved = func(_ context.Context, node, from, to string) {
			mu.Lock()
			moves = append(moves, node+":"+from+"->"+to)
			mu.Unlock()
		}
	})
	e.tree()
	district := e.addUser("ky-thuat-huyen", loaxa.RoleTechnician, "318")
	techA := e.addUser("ky-thuat-a", loaxa.RoleTechnician, "12346")
	techB := e.addUser("ky-thuat-b", loaxa.RoleTechnician, "12347")
	officer := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	auditor := e.addUser("huyen", loaxa.RoleDistrict, "318")
	changed := e.sched.changed.Load()

	t.Run("refused", func(t *testing.T) {
		for _, tt := range []struct {
			name, token, node string
			body              map[string]any
			status            int
			words             string
		}{
			{"nothing to change", techA, "n-a", map[string]any{}, http.StatusBadRequest, "Give at least one of name, lat and lon"},
			{"empty name", techA, "n-a", map[string]any{"name": " "}, http.StatusBadRequest, "name"},
			{"latitude", techA, "n-a", map[string]any{"lat": 120}, http.StatusBadRequest, "lat 120, lon 106.552 is not a position; give decimal degrees"},
			{"unknown area", district, "n-a", map[string]any{"area": "99999"}, http.StatusBadRequest, `area: there is no area "99999"`},
			{"unknown field", techA, "n-a", map[string]any{"commune": "12347"}, http.StatusBadRequest, "commune"},
			{"no such node", district, "n-x", map[string]any{"name": "x"}, http.StatusNotFound, `There is no node "n-x"`},
			{"another commune's cluster", techA, "n-b", map[string]any{"name": "x"}, http.StatusForbidden, `Node "n-b" is outside your area "12346"`},
			{"moved out of one's commune", techA, "n-a", map[string]any{"area": "12347"}, http.StatusForbidden, `Area "12347" is outside your area "12346"`},
			{"moved into one's commune", techB, "n-a", map[string]any{"area": "12347"}, http.StatusForbidden, `Node "n-a" is outside your area "12347"`},
			// The refusal says the right covers what was asked: it said
			// "enrol and remove clusters" to an officer moving one.
			{"an officer without nodes.manage", officer, "n-a", map[string]any{"area": "12347"}, http.StatusForbidden,
				`Role "commune" may not nodes.manage (enrol clusters, rename them, set their position or move them to another area, renew or revoke their credentials)`},
		} {
			t.Run(tt.name, func(t *testing.T) {
				var out struct {
					Error struct{ Message string }
				}
				e.call("PATCH", "/api/v1/nodes/"+tt.node, tt.token, tt.body, tt.status, &out)
				if !strings.Contains(out.Error.Message, tt.words) {
					t.Errorf("answer %q; want it to say %q", out.Error.Message, tt.words)
				}
			})
		}
		var n loaxa.Node
		e.call("GET", "/api/v1/nodes/n-a", e.admin, nil, http.StatusOK, &n)
		if n.Name != "Cụm loa chợ Đôi" || n.Area != "12346" || n.Lat != 20.716 {
			t.Errorf("a refused change changed the node: %+v", n)
		}
		if len(moves) != 0 || e.sched.changed.Load() != changed {
			t.Errorf("a refused change was told: moves %v, scheduler told %d times", moves, e.sched.changed.Load()-changed)
		}
	})

	t.Run("name and position", func(t *testing.T) {
		var out struct {
			Node   loaxa.Node `json:"node"`
			Notice string     `json:"notice"`
		}
		e.call("PATCH", "/api/v1/nodes/n-a", techA, map[string]any{"name": "Cụm loa chợ Đôi (cổng chợ)", "lat": 20.7171}, http.StatusOK, &out)
		if out.Node.Name != "Cụm loa chợ Đôi (cổng chợ)" || out.Node.Lat != 20.7171 || out.Node.Lon != 106.552 || out.Node.Area != "12346" || out.Notice != "" {
			t.Errorf("answer %+v", out)
		}
		got := e.auditSeen(auditor, "node.update")
		if len(got) != 1 || got[0].Target != "n-a" || got[0].Detail != `name_before="Cụm loa chợ Đôi" name="Cụm loa chợ Đôi (cổng chợ)" position_before=20.716,106.552 position=20.7171,106.552` {
			t.Errorf("audit %+v", got)
		}
		if len(moves) != 0 {
			t.Errorf("a rename was told as a move: %v", moves)
		}
	})

	t.Run("moved to the neighbouring commune", func(t *testing.T) {
		before := e.sched.changed.Load()
		var out struct {
			Node   loaxa.Node `json:"node"`
			Notice string     `json:"notice"`
		}
		e.call("PATCH", "/api/v1/nodes/n-a", district, map[string]any{"area": "12347"}, http.StatusOK, &out)
		if out.Node.Area != "12347" || out.Node.Name != "Cụm loa chợ Đôi (cổng chợ)" || out.Notice != "" {
			t.Errorf("answer %+v", out)
		}
		if !slices.Equal(moves, []string{"n-a:12346->12347"}) {
			t.Errorf("moves told: %v", moves)
		}
		if e.sched.changed.Load() == before {
			t.Error("the scheduler was not told of the move")
		}
		var l struct{ Nodes []loaxa.Node }
		e.call("GET", "/api/v1/nodes?area=12347", e.admin, nil, http.StatusOK, &l)
		if len(l.Nodes) != 2 {
			t.Errorf("nodes of 12347 after the move: %+v", l.Nodes)
		}
		// The cluster is now the other commune's technician's, no longer
		// the first one's.
		e.call("GET", "/api/v1/nodes/n-a", techA, nil, http.StatusForbidden, nil)
		e.call("PATCH", "/api/v1/nodes/n-a", techB, map[string]any{"name": "Cụm loa chợ Đôi"}, http.StatusOK, nil)
		got := e.auditSeen(auditor, "node.update")
		i := slices.IndexFunc(got, func(a loaxa.AuditEntry) bool { return strings.Contains(a.Detail, "area=") })
		if i < 0 || got[i].Detail != "area_before=12346 area=12347" || got[i].Area != "318" || !slices.Equal(got[i].Areas, []string{"12346", "12347"}) {
			t.Errorf("the move's audit: %+v; want it filed under 318 for both communes", got)
		}
	})

	t.Run("an external broker's files must be exported again", func(t *testing.T) {
		e.srv.BrokerFiles = func(context.Context) (map[string]string, []string, error) { return nil, nil, nil }
		defer func() { e.srv.BrokerFiles = nil }()
		var out struct {
			Notice string `json:"notice"`
		}
		e.call("PATCH", "/api/v1/nodes/n-a", district, map[string]any{"area": "12346"}, http.StatusOK, &out)
		if !strings.Contains(out.Notice, "export the broker files again (GET /api/v1/broker/mosquitto)") {
			t.Errorf("notice %q", out.Notice)
		}
	})
}
