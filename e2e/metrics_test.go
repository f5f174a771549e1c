package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/e2e/rig"
	"loaxa.vn/internal/promtest"
)

// TestControllerMetricsAndHealth scrapes the controller's /metrics with a
// node connected and parses it with Prometheus' own parser, and reads
// GET /api/v1/health.
func TestControllerMetricsAndHealth(t *testing.T) {
	t.Parallel()
	c := rig.StartController(t, "")
	c.CreateArea("31", "Thành phố Hải Phòng", "")
	c.CreateArea("12346", "Xã Tiên Thắng", "31")
	cr := c.CreateNode("tt-01", "12346")
	c.CreateNode("tt-02", "12346") // never connects
	rig.StartNode(t, cr, rig.NodeOptions{})
	rig.Eventually(t, 15*time.Second, "node online, running its desired state", func() bool {
		st := c.Node("tt-01").Status
		return st.State == loaxa.NodeOnline && st.RunningVersion > 0
	})

	var m promtest.Metrics
	rig.Eventually(t, 10*time.Second, "one node online and one never seen in the metrics", func() bool {
		m = promtest.Scrape(t, c.URL+"/metrics")
		online, _ := m.Value("loaxa_nodes", "state", "online")
		never, _ := m.Value("loaxa_nodes", "state", "never")
		return online == 1 && never == 1
	})
	for _, tt := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"loaxa_mqtt_messages_in_total", []string{"channel", "state"}, 1},
		{"loaxa_mqtt_messages_out_total", []string{"kind", "desired"}, 1},
		{"loaxa_http_request_duration_seconds", []string{"route", "/api/v1/nodes/{id}"}, 1},
		{"loaxa_store_bytes", nil, 1},
		{"go_goroutines", nil, 1},
	} {
		if v, ok := m.Value(tt.name, tt.labels...); !ok || v < tt.min {
			t.Errorf("%s%v = %v (present %v), want at least %v", tt.name, tt.labels, v, ok, tt.min)
		}
	}
	// Both nodes' desired states were accepted: none waits for a retry.
	if v, ok := m.Value("loaxa_desired_undelivered"); !ok || v != 0 {
		t.Errorf("loaxa_desired_undelivered = %v (present %v), want 0", v, ok)
	}
	// Node statuses are written in batches: the metrics say how many wait
	// and how many writes failed (none).
	if _, ok := m.Value("loaxa_store_node_status_unflushed"); !ok {
		t.Error("no loaxa_store_node_status_unflushed")
	}
	if v, ok := m.Value("loaxa_store_volume_free_bytes"); !ok || v <= 0 {
		t.Errorf("loaxa_store_volume_free_bytes = %v (present %v), want the free bytes", v, ok)
	}
	if v, ok := m.Value("loaxa_store_node_status_flush_failures_total"); !ok || v != 0 {
		t.Errorf("loaxa_store_node_status_flush_failures_total = %v (present %v), want 0", v, ok)
	}
	if _, ok := m.Value("loaxa_alarms_open", "severity", "critical"); !ok {
		t.Error("no loaxa_alarms_open{severity=critical}")
	}
	// Every loaxa metric the controller serves is in the list a technician
	// reads (docs/fleet-health.md "Metrics"): three served at every start
	// were in none of the docs.
	doc, err := os.ReadFile(filepath.Join("..", "docs", "fleet-health.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, metrics, _ := strings.Cut(string(doc), "\n## Metrics\n")
	metrics, _, _ = strings.Cut(metrics, "\n## ")
	for name := range m {
		if strings.HasPrefix(name, "loaxa_") && !strings.Contains(metrics, "`"+name) {
			t.Errorf("%s is served on /metrics but not in docs/fleet-health.md's Metrics", name)
		}
	}

	resp, err := http.Get(c.URL + "/api/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h struct {
		Status string
		Checks map[string]struct {
			OK     bool
			Detail string
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || h.Status != "ok" {
		t.Errorf("health %d %+v", resp.StatusCode, h)
	}
	for _, part := range []string{"broker", "store", "disk", "scheduler", "health"} {
		if !h.Checks[part].OK {
			t.Errorf("check %s: %+v", part, h.Checks[part])
		}
	}
}
