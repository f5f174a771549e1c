package http_test

import (
	"net/http"
	"strings"
	"testing"

	"loaxa.vn/controller/loaxa"
)

func TestKeyRotationRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	scoped := e.addUser("huyen", loaxa.RoleAdmin, "318")
	checkError(t, e.request("POST", "/api/v1/keys", scoped, "", nil), http.StatusForbidden, loaxa.EForbidden, "only a user over the whole tree")

	var next loaxa.SigningKey
	before := e.sched.changed.Load()
	e.call("POST", "/api/v1/keys", e.admin, nil, http.StatusCreated, &next)
	if next.State != loaxa.KeyNext || e.sched.changed.Load() == before {
		t.Errorf("announced %+v; scheduler told: %v", next, e.sched.changed.Load() != before)
	}
	checkError(t, e.request("POST", "/api/v1/keys", e.admin, "", nil), http.StatusConflict, loaxa.EConflict, "announced already")

	// No node has learnt the key: activation would strand them all.
	r := e.request("POST", "/api/v1/keys/activate", e.admin, "", nil)
	checkError(t, r, http.StatusConflict, loaxa.EConflict, "2 nodes do not trust key "+next.ID+" yet (n-a, n-b); wait until they are online and running their latest")
	learn := func(id string) {
		err := e.stores.nodes.UpdateNodeStatus(t.Context(), id, func(s *loaxa.NodeStatus) { s.Keys = []string{e.key.ID, next.ID} })
		if err != nil {
			t.Fatal(err)
		}
	}
	learn("n-a")
	// One node is one node (it read "1 nodes do not trust key").
	checkError(t, e.request("POST", "/api/v1/keys/activate", e.admin, "", nil), http.StatusConflict, loaxa.EConflict,
		"1 node does not trust key "+next.ID+" yet (n-b); wait until it is online and running its latest desired state, or send {\"force\": true} and re-enrol it afterwards.")
	// A revoked node does not hold the rotation up.
	e.call("POST", "/api/v1/nodes/n-b/revoke", e.admin, nil, http.StatusOK, nil)

	var keys struct {
		Keys []struct {
			Kid       string
			State     string
			TrustedBy int `json:"trusted_by"`
			Nodes     int
		}
	}
	e.call("GET", "/api/v1/keys", e.admin, nil, http.StatusOK, &keys)
	if len(keys.Keys) != 2 || keys.Keys[1].Kid != next.ID || keys.Keys[1].TrustedBy != 1 || keys.Keys[1].Nodes != 1 {
		t.Errorf("keys %+v", keys.Keys)
	}

	var active loaxa.SigningKey
	e.call("POST", "/api/v1/keys/activate", e.admin, nil, http.StatusOK, &active)
	if active.ID != next.ID || active.State != loaxa.KeyCurrent {
		t.Errorf("activated %+v", active)
	}
	// New credentials trust the new key only.
	var created createdNode
	e.call("POST", "/api/v1/nodes", e.admin, map[string]any{"id": "n-moi", "name": "Cụm loa mới", "area": "12346"}, http.StatusCreated, &created)
	if ks := created.Credentials.Keys; len(ks) != 1 || ks[0].ID != next.ID {
		t.Errorf("new credentials trust %v, want only %s", ks, next.ID)
	}
	checkError(t, e.request("POST", "/api/v1/keys/activate", e.admin, "application/json", strings.NewReader(`{"force":true}`)),
		http.StatusConflict, loaxa.EConflict, "No key is announced")
}
