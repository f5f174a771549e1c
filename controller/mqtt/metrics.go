package mqtt

import "github.com/prometheus/client_golang/prometheus"

// metrics counts the client's traffic.
type metrics struct {
	in        *prometheus.CounterVec // by channel
	ingested  *prometheus.CounterVec // handled by a worker, by channel and result
	coalesced prometheus.Counter     // states replaced by a newer one while queued
	out       *prometheus.CounterVec // by kind: desired, command
	failed    *prometheus.CounterVec // publishes the broker did not take, by kind
	dropped   prometheus.CounterFunc
	flooded   prometheus.CounterFunc
	// inflightWaits counts desired publishes that waited for a slot
	// (Client.DesiredInflight).
	inflightWaits prometheus.Counter
	// acksCoalesced counts event batches whose acknowledgement one
	// already held for the node covers (Client.AckDelay).
	acksCoalesced prometheus.Counter
	// eventsRefused counts node events protocol.Event.Validate refused.
	eventsRefused prometheus.Counter
}

func newMetrics(c *Client) *metrics {
	return &metrics{
		in: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loaxa_mqtt_messages_in_total", Help: "Node messages received, by channel (state, event).",
		}, []string{"channel"}),
		ingested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loaxa_mqtt_messages_ingested_total", Help: "Node messages the ingest workers handled, by channel and result (ok, refused).",
		}, []string{"channel", "result"}),
		coalesced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "loaxa_mqtt_states_coalesced_total", Help: "Node states replaced by a newer one of the same node before the ingest reached them.",
		}),
		out: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loaxa_mqtt_messages_out_total", Help: "Signed messages the broker took, by kind (desired, command, alert, live).",
		}, []string{"kind"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loaxa_mqtt_publish_failures_total", Help: "Publishes the broker did not take in time, by kind.",
		}, []string{"kind"}),
		dropped: prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "loaxa_mqtt_messages_dropped_total", Help: "Node messages dropped because the ingest queues were full.",
		}, func() float64 { return float64(c.Dropped()) }),
		flooded: prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "loaxa_mqtt_node_flood_dropped_total", Help: "Node event batches dropped because their node already had as many waiting as one node may (a node publishing far faster than any agent does).",
		}, func() float64 { return float64(c.Flooded()) }),
		inflightWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "loaxa_mqtt_desired_inflight_waits_total", Help: "Desired-state publishes that waited because DesiredInflight were not yet acknowledged by the broker.",
		}),
		acksCoalesced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "loaxa_mqtt_acks_coalesced_total", Help: "Node event batches acknowledged together with an earlier batch of the same node (AckDelay) instead of with a signed command of their own.",
		}),
		eventsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "loaxa_mqtt_events_refused_total", Help: "Node events refused as ones the controller cannot take (a text too long, no type, a time out of range), acknowledged with their batch and stored as refusals; a copy received again counts again.",
		}),
	}
}

// Collectors returns the client's metrics for a Prometheus registry.
func (c *Client) Collectors() []prometheus.Collector {
	m := c.metrics()
	return []prometheus.Collector{m.in, m.ingested, m.coalesced, m.out, m.failed, m.dropped, m.flooded, m.inflightWaits, m.acksCoalesced, m.eventsRefused}
}

// metrics returns the client's metrics, made on first use so that a Client
// built without NewClient works too.
func (c *Client) metrics() *metrics {
	c.metricsOnce.Do(func() { c.m = newMetrics(c) })
	return c.m
}
