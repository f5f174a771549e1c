package schedule

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"loaxa.vn/controller/loaxa"
)

// ErrNotAccepted marks a desired state the broker did not accept: the
// messenger returned an error, or the broker did not acknowledge the
// publish within the messenger's timeout.
//
// Such a state is not lost. It is stored (with Published zero), and the
// scheduler keeps the node on a retry list: Run publishes the node's newest
// stored desired state again after RetryMin, doubling the wait up to
// RetryMax, until the broker takes it or a newer version is published
// (which clears the entry when accepted). Passes leave a node on the list
// alone, so a node gets one publish per retry, not one per pass as well.
// A retry that fails holds every retry until its own next attempt: a broker
// that refused one will not take the others at once. The list is in memory;
// a restarted controller republishes every node in its first pass anyway.
//
// A publish that timed out may still reach the broker later (paho keeps it
// in flight until the broker acknowledges it or the connection drops); the
// retry then publishes the same version once more, which the node ignores
// (it acts only on a version above the one it runs).
var ErrNotAccepted = errors.New("broker did not accept the desired state")

// undelivered is a node whose newest desired state the broker has not
// accepted yet.
type undelivered struct {
	version  uint64
	since    time.Time // first failure since the last accepted publish
	attempts int
	due      time.Time // next retry
	err      string
	alarmed  bool // Alarms was told it is undelivered
}

// Undelivered reports how many nodes have a desired state the broker has
// not accepted yet, and since when the oldest has waited (zero if none).
func (s *Scheduler) Undelivered() (nodes int, since time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.undelivered {
		if since.IsZero() || u.since.Before(since) {
			since = u.since
		}
	}
	return len(s.undelivered), since
}

func (s *Scheduler) undeliveredCount() int {
	n, _ := s.Undelivered()
	return n
}

// notAccepted puts rec's node on the retry list, or moves its retry on.
func (s *Scheduler) notAccepted(rec *loaxa.Desired, now time.Time, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.undelivered == nil {
		s.undelivered = map[string]*undelivered{}
	}
	u := s.undelivered[rec.Node]
	if u == nil {
		u = &undelivered{since: now}
		s.undelivered[rec.Node] = u
	}
	u.version = max(u.version, rec.State.Version)
	u.attempts++
	u.due = now.Add(s.backoff(u.attempts))
	u.err = err.Error()
}

// raiseAlarms tells Alarms of every node undelivered for AlarmAfter that it
// was not told of yet. Run calls it after each pass and retry round, so an
// alarm opens at most RetryMax after AlarmAfter.
func (s *Scheduler) raiseAlarms(ctx context.Context, now time.Time) {
	if s.Alarms == nil {
		return
	}
	type alarm struct {
		node  string
		facts loaxa.AlarmFacts
		since time.Time
	}
	var raise []alarm
	s.mu.Lock()
	for node, u := range s.undelivered {
		if !u.alarmed && now.Sub(u.since) >= s.AlarmAfter {
			u.alarmed = true
			raise = append(raise, alarm{node, loaxa.AlarmFacts{DesiredVersion: u.version, Attempts: u.attempts, Error: u.err}, u.since})
		}
	}
	s.mu.Unlock()
	for _, a := range raise {
		s.Alarms.DesiredUndelivered(ctx, a.node, a.facts, a.since)
	}
}

// backoff is the wait after the n-th failed attempt.
func (s *Scheduler) backoff(n int) time.Duration {
	d := s.RetryMin
	if d <= 0 {
		d = time.Second
	}
	limit := max(s.RetryMax, d)
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// accepted takes node off the retry list once version (or a newer one)
// was accepted at now, and ends its alarm. Alarms hears of every such
// publish, not only of the nodes on the list: the list is in memory, and
// an alarm opened before a restart is ended by the new controller's first
// pass (for a node with no alarm it is a map lookup).
func (s *Scheduler) accepted(ctx context.Context, node string, version uint64, now time.Time) {
	s.mu.Lock()
	u := s.undelivered[node]
	if u != nil && version < u.version {
		s.mu.Unlock()
		return
	}
	delete(s.undelivered, node)
	s.mu.Unlock()
	if s.Alarms != nil {
		s.Alarms.DesiredDelivered(ctx, node, now)
	}
}

// retrying reports whether node is on the retry list.
func (s *Scheduler) retrying(node string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.undelivered[node] != nil
}

// nextRetry returns when the next retry is due.
func (s *Scheduler) nextRetry() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var next time.Time
	for _, u := range s.undelivered {
		if next.IsZero() || u.due.Before(next) {
			next = u.due
		}
	}
	if next.IsZero() {
		return next, false
	}
	if s.hold.After(next) {
		next = s.hold
	}
	return next, true
}

// retryDue publishes again the newest stored desired state of every node
// whose retry is due, oldest failure first, and stops at the first the
// broker does not accept, or when Changed asks for a pass. It records the
// accepted publishes changeBatch at a time (recordRetries), and those of
// the round's end, however it ends.
func (s *Scheduler) retryDue(ctx context.Context) {
	now := s.Clock.Now()
	var accepted []*loaxa.Desired
	defer func() { s.recordRetries(ctx, accepted, now) }()
	s.mu.Lock()
	if now.Before(s.hold) {
		s.mu.Unlock()
		return
	}
	type entry struct {
		node     string
		since    time.Time
		attempts int
	}
	var due []entry
	for node, u := range s.undelivered {
		if !u.due.After(now) {
			due = append(due, entry{node, u.since, u.attempts})
		}
	}
	s.mu.Unlock()
	slices.SortFunc(due, func(a, b entry) int {
		if c := a.since.Compare(b.since); c != 0 {
			return c
		}
		return strings.Compare(a.node, b.node)
	})
	for _, e := range due {
		// A change waiting for its pass goes first: retries must not
		// hold up a new schedule. The rest stay due.
		if ctx.Err() != nil || len(s.kick) > 0 {
			return
		}
		// The newest version wins: whatever the store holds now, not
		// the version that failed.
		rec, err := s.DesiredService.FindDesired(ctx, e.node)
		if loaxa.ErrorCode(err) == loaxa.ENotFound {
			s.forget(e.node) // the node was removed
			continue
		}
		if err != nil {
			s.Logger.Error("schedule: retry of desired state", "node", e.node, "err", err)
			s.postpone(e.node, now)
			continue
		}
		s.retries.Add(1)
		if err := s.send(ctx, rec, now); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.mu.Lock()
			if u := s.undelivered[e.node]; u != nil {
				s.hold = u.due
			}
			s.mu.Unlock()
			s.Logger.Warn("schedule: desired state still not accepted", "node", e.node, "version", rec.State.Version,
				"attempts", e.attempts+1, "since", e.since, "err", err)
			return
		}
		s.Logger.Info("schedule: desired state accepted on retry", "node", e.node, "version", rec.State.Version,
			"attempts", e.attempts+1, "waited", now.Sub(e.since))
		if accepted = append(accepted, rec); len(accepted) == changeBatch {
			s.recordRetries(ctx, accepted, now)
			accepted = accepted[:0]
		}
	}
}

// recordRetries records recs, accepted by the broker at now, as
// published, with one commit for them all that writes only their heads
// (RecordPublished): one each (SaveDesired) made
// the retries after a broker outage with thousands of nodes waiting a
// commit and fsync per node. A state not recorded keeps Published zero,
// so the next pass publishes it again, which the node ignores if it has
// it.
func (s *Scheduler) recordRetries(ctx context.Context, recs []*loaxa.Desired, now time.Time) {
	if len(recs) == 0 || ctx.Err() != nil {
		return // shutting down: the next start republishes every node
	}
	ps := make([]loaxa.DesiredPublished, len(recs))
	for i, rec := range recs {
		ps[i] = loaxa.DesiredPublished{Node: rec.Node, Version: rec.State.Version, At: now}
	}
	for i, err := range s.DesiredService.RecordPublished(ctx, ps) {
		if err != nil {
			s.Logger.Error("schedule: publish of a retried desired state not recorded; the next pass publishes it again",
				"node", recs[i].Node, "version", recs[i].State.Version, "err", err)
		}
	}
}

// forget takes node off the retry list.
func (s *Scheduler) forget(node string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.undelivered, node)
}

// postpone moves node's retry on without a publish (the store failed).
func (s *Scheduler) postpone(node string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.undelivered[node]; u != nil {
		u.attempts++
		u.due = now.Add(s.backoff(u.attempts))
	}
}

// Collectors returns the scheduler's metrics: the nodes whose desired
// state the broker has not accepted yet, and the retries.
func (s *Scheduler) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "loaxa_desired_undelivered",
			Help: "Nodes whose newest desired state the broker has not accepted yet (retried with backoff).",
		}, func() float64 { return float64(s.undeliveredCount()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "loaxa_desired_retries_total",
			Help: "Publishes of a desired state the broker had not accepted before.",
		}, func() float64 { return float64(s.retries.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "loaxa_desired_republished_behind_total",
			Help: "Desired states published again to an online node that still ran an older version (a broker that lost its retained copy, or a node that refuses it).",
		}, func() float64 { return float64(s.caughtUp.Load()) }),
	}
}
