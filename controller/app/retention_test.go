package app

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	lhttp "loaxa.vn/controller/http"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/internal/clock"
)

// TestRetainDaysFlag: 0 (keep everything) is the default, the flag and
// LOAXA_RETAIN_DAYS set it, and a retention shorter than the yearly report
// of the year before needs is refused saying why.
func TestRetainDaysFlag(t *testing.T) {
	c := DefaultConfig()
	if err := c.Parse(nil, func(string) string { return "" }); err != nil || c.RetainDays != 0 {
		t.Fatalf("default: %d, %v; want 0 (keep everything)", c.RetainDays, err)
	}
	c = DefaultConfig()
	if err := c.Parse(nil, func(k string) string { return map[string]string{"LOAXA_RETAIN_DAYS": "730"}[k] }); err != nil || c.RetainDays != 730 {
		t.Fatalf("LOAXA_RETAIN_DAYS=730: %d, %v", c.RetainDays, err)
	}
	c = DefaultConfig()
	if err := c.Parse([]string{"--retain-days", "400"}, func(string) string { return "" }); err != nil || c.RetainDays != 400 {
		t.Fatalf("--retain-days 400: %d, %v", c.RetainDays, err)
	}
	for _, v := range []string{"30", "399", "-1", "a year"} {
		c = DefaultConfig()
		err := c.Parse([]string{"--retain-days", v}, func(string) string { return "" })
		if err == nil || !strings.Contains(err.Error(), "at least 400") || !strings.Contains(err.Error(), "yearly report") {
			t.Errorf("--retain-days %s: %v, want a refusal naming the minimum and why", v, err)
		}
	}
}

// The shortest retention holds the longest report four weeks after its
// end: last year's report, asked in January.
func TestMinRetainDaysCoversTheLongestReport(t *testing.T) {
	if shortest := time.Duration(MinRetainDays) * 24 * time.Hour; shortest < lhttp.MaxReportSpan+28*24*time.Hour {
		t.Errorf("MinRetainDays %d days is shorter than a report's longest span (%v) and four weeks", MinRetainDays, lhttp.MaxReportSpan)
	}
}

// TestRetentionRunsAtStartAndDaily: with --retain-days the controller
// deletes, at start, a delivery older than the retention and keeps one a
// little younger and one still pending; a day later it deletes the
// younger one, now past the retention too. /metrics counts them.
func TestRetentionRunsAtStartAndDaily(t *testing.T) {
	cfg := testConfig(t)
	cfg.RetainDays = MinRetainDays
	now := time.Date(2026, 12, 1, 5, 0, 0, 0, time.UTC)
	cutoff := now.AddDate(0, 0, -cfg.RetainDays)
	ctx := context.Background()

	db := bolt.NewDB(filepath.Join(cfg.DataDir, "loaxa.db"))
	db.Logger = slog.New(slog.DiscardHandler)
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	if err := bolt.NewAreaService(db).CreateArea(ctx, &loaxa.Area{ID: "p", Name: "Tỉnh"}); err != nil {
		t.Fatal(err)
	}
	if err := bolt.NewNodeService(db).CreateNode(ctx, &loaxa.Node{ID: "n1", Name: "Cụm 1", Area: "p", SecretHash: loaxa.HashSecret(loaxa.NewSecret())}); err != nil {
		t.Fatal(err)
	}
	delivery := func(ann string, start time.Time, state loaxa.DeliveryState) *loaxa.Delivery {
		return &loaxa.Delivery{Announcement: ann, Occurrence: loaxa.OccurrenceID(ann, start), Node: "n1", Start: start, State: state, PlannedMS: 60_000}
	}
	if err := bolt.NewDeliveryService(db).EnsureDeliveries(ctx, []*loaxa.Delivery{
		delivery("old", cutoff.Add(-24*time.Hour), loaxa.DeliveryCompleted),
		delivery("younger", cutoff.Add(12*time.Hour), loaxa.DeliveryCompleted),
		delivery("pending", cutoff.Add(-48*time.Hour), loaxa.DeliveryPending),
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	fc := clock.NewFake(now)
	a := New(cfg, slog.New(slog.DiscardHandler))
	a.Clock = fc
	if err := a.Open(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := a.Close(); err != nil {
			t.Error(err)
		}
	}()
	stored := func() string {
		t.Helper()
		ds, err := a.Deliveries.FindDeliveries(ctx, loaxa.DeliveryFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var anns []string
		for _, d := range ds {
			anns = append(anns, d.Announcement)
		}
		return strings.Join(anns, " ")
	}
	metrics := func() string {
		rec := httptest.NewRecorder()
		a.HTTP.Metrics.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return rec.Body.String()
	}
	// until polls for an outcome; the purge runs in its own goroutine.
	until := func(what string, ok func() bool, tick func()) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10s (deliveries %q)", what, stored())
			}
			if tick != nil {
				tick()
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	until("the purge at start", func() bool {
		m := metrics()
		return strings.Contains(m, "loaxa_store_purge_last_success_timestamp_seconds ") &&
			!strings.Contains(m, "loaxa_store_purge_last_success_timestamp_seconds 0\n")
	}, nil)
	if got := stored(); got != "pending younger" {
		t.Fatalf("after the purge at start: deliveries %q, want the pending one and the younger one", got)
	}
	if m := metrics(); !strings.Contains(m, `loaxa_store_purged_total{kind="deliveries"} 1`) {
		t.Errorf("metrics after the purge at start:\n%s", grepLines(m, "loaxa_store_purge"))
	}
	// A day on, the younger one is past the retention too. The advance
	// is repeated in case the retention had not reached its wait yet.
	advanced := 0
	until("the daily purge", func() bool { return stored() == "pending" }, func() {
		if advanced < 3 {
			fc.Advance(purgeEvery)
			advanced++
		}
	})
	until("the metrics of the daily purge", func() bool {
		return strings.Contains(metrics(), `loaxa_store_purged_total{kind="deliveries"} 2`)
	}, nil)
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}
