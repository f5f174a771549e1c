package health

import (
	"github.com/prometheus/client_golang/prometheus"

	"loaxa.vn/controller/loaxa"
)

// Metric descriptions of the health model, read from memory at each
// scrape.
var (
	nodesDesc  = prometheus.NewDesc("loaxa_nodes", "Nodes by state (never, online, stale, offline), and those waiting for their enrolment code (awaiting_enrolment, not in never).", []string{"state"}, nil)
	alarmsDesc = prometheus.NewDesc("loaxa_alarms_open", "Open alarms by severity.", []string{"severity"}, nil)
)

// collector exports the monitor's view.
type collector struct{ m *Monitor }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- nodesDesc
	ch <- alarmsDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.m.Status()
	for state, n := range st.Nodes {
		ch <- prometheus.MustNewConstMetric(nodesDesc, prometheus.GaugeValue, float64(n), state)
	}
	c.m.mu.Lock()
	sev := map[string]int{loaxa.SeverityCritical: 0, loaxa.SeverityWarning: 0}
	for _, a := range c.m.open {
		sev[a.Severity]++
	}
	c.m.mu.Unlock()
	for s, n := range sev {
		ch <- prometheus.MustNewConstMetric(alarmsDesc, prometheus.GaugeValue, float64(n), s)
	}
}

// Collectors returns the health model's metrics: nodes by state, open
// alarms by severity, and node events by type (the rate of each delivery
// outcome: completed, failed, missed, preempted…).
func (m *Monitor) Collectors() []prometheus.Collector {
	return []prometheus.Collector{collector{m}, m.eventCounter()}
}

func (m *Monitor) eventCounter() *prometheus.CounterVec {
	m.eventsOnce.Do(func() {
		m.events = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loaxa_node_events_total",
			Help: "Node events stored, by type: the deliveries reaching each state.",
		}, []string{"type"})
	})
	return m.events
}
