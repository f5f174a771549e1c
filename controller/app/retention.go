package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/internal/clock"
)

// purgeEvery is how often the retention runs after the one at start.
const purgeEvery = 24 * time.Hour

// retention deletes, once at start and then every purgeEvery, the
// history older than days days (Config.RetainDays).
type retention struct {
	db     *bolt.DB
	days   int
	clock  clock.Clock
	logger *slog.Logger

	purged   *prometheus.CounterVec
	keptFrom prometheus.Gauge
	last     prometheus.Gauge
	failed   prometheus.Counter
}

func newRetention(db *bolt.DB, days int, clk clock.Clock, logger *slog.Logger) *retention {
	return &retention{db: db, days: days, clock: clk, logger: logger.With("part", "retention"),
		purged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "loaxa_store_purged_total", Help: "Records the retention (--retain-days) deleted from the store, by kind: deliveries, events, audit, alarms.",
		}, []string{"kind"}),
		keptFrom: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "loaxa_store_retained_from_timestamp_seconds", Help: "Cutoff of the last retention run: history from it on is kept (0: no run yet).",
		}),
		last: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "loaxa_store_purge_last_success_timestamp_seconds", Help: "When the retention last finished without error (0: not yet).",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "loaxa_store_purge_failures_total", Help: "Retention runs that failed (each is tried again the next day).",
		}),
	}
}

// Collectors returns the retention's metrics.
func (r *retention) Collectors() []prometheus.Collector {
	return []prometheus.Collector{r.purged, r.keptFrom, r.last, r.failed}
}

// Run purges at once and then every purgeEvery until ctx ends.
func (r *retention) Run(ctx context.Context) {
	for {
		r.purge(ctx)
		t := r.clock.NewTimer(purgeEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}

// purge deletes what is older than r.days days and logs and counts it.
func (r *retention) purge(ctx context.Context) {
	start := r.clock.Now()
	cutoff := start.AddDate(0, 0, -r.days)
	p, err := r.db.Purge(ctx, cutoff, 0)
	for kind, n := range map[string]int{"deliveries": p.Deliveries, "events": p.Events, "audit": p.Audit, "alarms": p.Alarms} {
		r.purged.WithLabelValues(kind).Add(float64(n))
	}
	attrs := []any{"kept_from", cutoff, "retain_days", r.days, "deliveries", p.Deliveries, "events", p.Events, "audit", p.Audit, "alarms", p.Alarms,
		"transactions", p.Transactions, "longest_tx", p.LongestTx, "took", r.clock.Now().Sub(start)}
	if err != nil {
		if ctx.Err() == nil {
			r.failed.Inc()
			r.logger.Error("purge of old history failed; it is tried again tomorrow", append(attrs, "err", err)...)
		}
		return
	}
	r.keptFrom.Set(float64(cutoff.Unix()))
	r.last.Set(float64(r.clock.Now().Unix()))
	r.logger.Info("purged old history", attrs...)
}
