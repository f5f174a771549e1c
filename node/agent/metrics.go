package agent

import (
	"github.com/prometheus/client_golang/prometheus"

	"loaxa.vn/protocol"
)

// metrics are the agent's Prometheus metrics. They are always counted
// (a few counters cost nothing); Collectors hands them to a registry.
type metrics struct {
	events   *prometheus.CounterVec // by type
	failures *prometheus.CounterVec // failed plays by reason
	connects prometheus.Counter
}

func newMetrics() *metrics {
	return &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loaxa_node_events_total",
			Help: "Events the node wrote, by type: plays started, completed, failed, missed, preempted; self-tests.",
		}, []string{"type"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loaxa_node_play_failures_total", Help: "Plays that failed, by reason.",
		}, []string{"reason"}),
		connects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "loaxa_node_link_connects_total", Help: "Connections to the broker made, the first included: reconnects are this minus one.",
		}),
	}
}

// count records events the agent noted.
func (m *metrics) count(events []protocol.Event) {
	for _, e := range events {
		m.events.WithLabelValues(string(e.Type)).Inc()
		if e.Type == protocol.EventFailed {
			m.failures.WithLabelValues(e.Reason).Inc()
		}
	}
}

// Collectors returns the agent's metrics for a Prometheus registry: events
// and failures, broker connects, and gauges of the content cache, the
// outbox and refused messages read at each scrape.
func (a *Agent) Collectors() []prometheus.Collector {
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	return []prometheus.Collector{
		a.metrics.events, a.metrics.failures, a.metrics.connects,
		gauge("loaxa_node_cache_bytes", "Bytes in the content cache.", func() float64 {
			n, _, _ := a.cache.Usage()
			return float64(n)
		}),
		gauge("loaxa_node_cache_limit_bytes", "Size limit of the content cache.", func() float64 {
			_, n, _ := a.cache.Usage()
			return float64(n)
		}),
		gauge("loaxa_node_content_missing", "Content the desired state needs and the cache lacks.", func() float64 {
			a.mu.Lock()
			defer a.mu.Unlock()
			return float64(len(a.status.cache.missing))
		}),
		gauge("loaxa_node_storage_damaged_files", "Files found damaged on the node's storage in the last 24 hours (a failing SD card): cached content, and its store set aside at start.", func() float64 {
			return float64(a.cache.Damaged())
		}),
		gauge("loaxa_node_store_in_memory", "1 while the agent runs on a store in memory because its store could not be opened on the board's storage (read-only, full, failing); 0 on its own.", func() float64 {
			if a.cfg.StoreFault != nil {
				return 1
			}
			return 0
		}),
		gauge("loaxa_node_sound_device_missing", "1 while the agent runs without its sound device, which it could not open when it started; 0 with it.", func() float64 {
			if a.noSound != nil {
				return 1
			}
			return 0
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "loaxa_node_link_deaf_total",
			Help: "Reconnects because the broker no longer delivered to the node while connected (its own state did not come back).",
		}, func() float64 {
			a.mu.Lock()
			defer a.mu.Unlock()
			if a.link == nil {
				return 0
			}
			return float64(a.link.Deaf())
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "loaxa_node_link_restated_total",
			Help: "States published again because the broker held another for the node while it was connected (a late Last Will of an earlier connection).",
		}, func() float64 {
			a.mu.Lock()
			defer a.mu.Unlock()
			if a.link == nil {
				return 0
			}
			return float64(a.link.Restated())
		}),
		gauge("loaxa_node_outbox_events", "Events not yet acknowledged by the controller.", func() float64 {
			a.mu.Lock()
			defer a.mu.Unlock()
			return float64(a.status.outbox)
		}),
		gauge("loaxa_node_rejected_messages", "Controller messages refused since start (bad signature, expired, replayed…).", func() float64 {
			a.mu.Lock()
			defer a.mu.Unlock()
			return float64(a.status.rejected)
		}),
		gauge("loaxa_node_desired_version", "Version of the desired state the node runs.", func() float64 {
			a.mu.Lock()
			defer a.mu.Unlock()
			return float64(a.status.desiredVersion)
		}),
	}
}
