package http

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	kgzip "github.com/klauspost/compress/gzip"

	"loaxa.vn/controller/loaxa"
)

// Pacing of the emergency stream.
const (
	// streamPoll is how often the stream looks again without a node
	// event: nodes going offline and the expiry change the report too.
	streamPoll = time.Second
	// streamCoalesce gathers a burst of node events into one update.
	streamCoalesce = 100 * time.Millisecond
	// streamAfter is how long after its expiry a stream stays open for
	// late reports.
	streamAfter = time.Minute
)

// streamSummary is the data of a "summary" event.
type streamSummary struct {
	ID      string                            `json:"id"`
	Kind    string                            `json:"kind"`
	Title   string                            `json:"title"`
	Drill   bool                              `json:"drill"`
	State   string                            `json:"state"`
	Expires time.Time                         `json:"expires"`
	Summary loaxa.EmergencySummary            `json:"summary"`
	ByArea  map[string]loaxa.EmergencySummary `json:"by_area"`
	Timing  loaxa.EmergencyTiming             `json:"timing"`
	At      time.Time                         `json:"at"`
}

// handleEmergencyStream answers GET /api/v1/emergency/{id}/stream with
// server-sent events for a live view: "summary" (the counts) at once and
// after every change, "node" for each node whose state changed (all of
// them at first, or those changed since the report the client has), and
// "end" when nothing can change any more (every node final: completed,
// failed, missed or cancelled; or a minute past the expiry), saying
// which; then the stream closes.
//
// The client names the report it has with since= (the report's resume
// token) or, reconnecting, with the Last-Event-ID header its EventSource
// sends: each burst's summary carries the token of the report it
// completes as its event id. A token the controller no longer knows means
// every node again. A malformed since= is refused; a malformed header,
// which the officer cannot fix, is taken as none.
func (s *Server) handleEmergencyStream(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r, "since"); err != nil {
		return err
	}
	since := r.URL.Query().Get("since")
	if since != "" && !validResumeToken(since) {
		return loaxa.Errorf(loaxa.EInvalid, "since=%q is not a resume token: give the resume of GET /emergency/{id}, or leave since out for every cluster.", since)
	}
	if h := r.Header.Get("Last-Event-ID"); validResumeToken(h) {
		since = h // a reconnect: newer than the since= of the first connect
	}
	svc, err := s.emergencyService()
	if err != nil {
		return err
	}
	ctx := r.Context()
	id := r.PathValue("id")
	rep, err := s.findEmergency(ctx, svc, id)
	if err != nil {
		return err
	}
	changed, stop := svc.WatchEmergency(id)
	defer stop()
	defer s.reports.watch(id)()
	out := newBurstWriter(w, r)
	defer out.close()
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	last := map[string]loaxa.EmergencyNode{}
	if had := s.resume.find(id, since); had != nil {
		for _, n := range had.Nodes {
			last[n.Node] = n
		}
	}
	send := func(rep *loaxa.EmergencyReport) error {
		for _, n := range rep.Nodes {
			if old, ok := last[n.Node]; ok && sameNode(old, n) {
				continue
			}
			last[n.Node] = n
			if err := out.event("node", n); err != nil {
				return err
			}
		}
		sum := streamSummary{ID: rep.ID, Kind: rep.Kind, Title: rep.Title, Drill: rep.Drill, State: rep.State,
			Expires: rep.Expires, Summary: rep.Summary, ByArea: rep.ByArea, Timing: rep.Timing, At: rep.Generated}
		// The summary ends the burst: its id names the report the client
		// now has, for a reconnect to resume from.
		if err := out.eventID("summary", s.resume.remember(rep), sum); err != nil {
			return err
		}
		return out.flush()
	}
	poll := time.NewTicker(streamPoll)
	defer poll.Stop()
	for {
		if err := send(rep); err != nil {
			return nil // the client went away
		}
		if why := over(rep, s.now()); why != "" {
			// state is the emergency's, as in the summary: active until
			// its expiry even when every node is final (it can still be
			// cancelled, and a cluster put up meanwhile is sent it); reason
			// says why nothing in the report changes any more.
			if out.event("end", map[string]string{"id": rep.ID, "state": rep.State, "reason": why}) == nil {
				out.flush()
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.closing:
			return nil
		case <-poll.C:
			// The stream ends with the session that opened it, as the
			// alarm stream does (a revoked phone's session went on).
			if detail := s.sessionEnded(ctx, loaxa.ActionRead, []string{""}); detail != "" {
				s.logger().Info("emergency stream ended", "emergency", id, "user", userFrom(ctx).Username, "why", detail)
				return nil
			}
		case <-changed:
			// More events of the same burst follow within moments.
			t := time.NewTimer(streamCoalesce)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
		if rep, err = s.reports.get(ctx, id, func(ctx context.Context) (*loaxa.EmergencyReport, error) {
			return svc.EmergencyReport(ctx, id)
		}); err != nil {
			s.logger().Error("emergency stream: report", "emergency", id, "err", err)
			return nil
		}
	}
}

// Why an emergency stream ends (its end event's reason).
const (
	endNodesFinal = "nodes-final" // every node reported how it ended
	endExpired    = "expired"     // streamAfter past the expiry
)

// over says why nothing in rep can change any more, or "" if something
// can.
func over(rep *loaxa.EmergencyReport, now time.Time) string {
	if now.After(rep.Expires.Add(streamAfter)) {
		return endExpired
	}
	if rep.State == loaxa.EmergencyActive && rep.Summary.AwaitingEnrolment > 0 && now.Before(rep.Expires) {
		// A pole put up while the alert is in force redeems its code and
		// is sent the alert (resends): its play is still to come. A
		// cancelled alert is sent to no one any more.
		return ""
	}
	for _, n := range rep.Nodes {
		switch n.State {
		case string(loaxa.DeliveryCompleted), string(loaxa.DeliveryFailed), string(loaxa.DeliveryMissed),
			string(loaxa.DeliveryPreempted), loaxa.EmergencyCancelledState:
		default:
			return "" // pending, offline, received or started: may change
		}
	}
	return endNodesFinal
}

// sameNode reports whether a and b say the same: their optional times
// and faults compare by value, since each report build makes its own.
func sameNode(a, b loaxa.EmergencyNode) bool {
	same := samePtr(a.ReceivedMS, b.ReceivedMS) && samePtr(a.ContentReadyMS, b.ContentReadyMS) && samePtr(a.SoundMS, b.SoundMS) &&
		samePtr(a.MessageMS, b.MessageMS) && samePtr(a.MessageInStep, b.MessageInStep) &&
		(a.SilencedBy == nil) == (b.SilencedBy == nil) && (a.SilencedBy == nil || slices.Equal(*a.SilencedBy, *b.SilencedBy))
	a.ReceivedMS, b.ReceivedMS, a.ContentReadyMS, b.ContentReadyMS, a.SoundMS, b.SoundMS = nil, nil, nil, nil, nil, nil
	a.MessageMS, b.MessageMS, a.MessageInStep, b.MessageInStep, a.SilencedBy, b.SilencedBy = nil, nil, nil, nil, nil, nil
	return same && a == b
}

func samePtr[T comparable](a, b *T) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

// burstWriter writes a stream's events a burst at a time: event adds one
// to the burst, flush sends it. For a client that accepts gzip the stream
// is compressed, each burst on its own (klauspost's stateless mode). The
// first burst of a province's alert is every cluster, about 1.4 MB of
// events, and goes as about 120 KB (BenchmarkStreamBurst); and between
// bursts the stream holds no compressor's window, where a gzip writer at
// its fastest level holds 0.8 MB for as long as the stream lasts
// (compress.go, which leaves event streams alone for that reason).
type burstWriter struct {
	out io.Writer // w, or zw over it
	rc  *http.ResponseController
	zw  *kgzip.Writer // nil: not compressed
	buf bytes.Buffer
}

// newBurstWriter returns the writer of w's events. It sets the answer's
// encoding, so it comes before w.WriteHeader.
func newBurstWriter(w http.ResponseWriter, r *http.Request) *burstWriter {
	b := &burstWriter{out: w, rc: http.NewResponseController(w)}
	if !slices.Contains(w.Header().Values("Vary"), "Accept-Encoding") { // compress (compress.go) adds it to every answer
		w.Header().Add("Vary", "Accept-Encoding")
	}
	if acceptsGzip(r) {
		zw, err := kgzip.NewWriterLevel(w, kgzip.StatelessCompression)
		if err == nil { // a constant level: it does not fail
			w.Header().Set("Content-Encoding", "gzip")
			b.out, b.zw = zw, zw
		}
	}
	return b
}

// event adds one server-sent event to the burst.
func (b *burstWriter) event(name string, v any) error {
	return b.eventID(name, "", v)
}

// eventID adds one server-sent event with an id (none if id is "").
func (b *burstWriter) eventID(name, id string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if id != "" {
		fmt.Fprintf(&b.buf, "id: %s\n", id)
	}
	fmt.Fprintf(&b.buf, "event: %s\ndata: %s\n\n", name, raw)
	return nil
}

// flush sends the burst.
func (b *burstWriter) flush() error {
	defer b.buf.Reset()
	if _, err := b.out.Write(b.buf.Bytes()); err != nil {
		return err
	}
	if b.zw != nil {
		if err := b.zw.Flush(); err != nil {
			return err
		}
	}
	return b.rc.Flush()
}

// close ends a compressed stream with gzip's trailer.
func (b *burstWriter) close() {
	if b.zw != nil {
		b.zw.Close()
		b.rc.Flush()
	}
}

// acceptsGzip reports whether r accepts a gzip-encoded answer: gzip (or
// *) among its Accept-Encoding codings, with a q-value other than 0.
func acceptsGzip(r *http.Request) bool {
	for _, h := range r.Header.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(h, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if c := strings.ToLower(strings.TrimSpace(coding)); c != "gzip" && c != "*" {
				continue
			}
			if v, ok := strings.CutPrefix(strings.ReplaceAll(strings.ToLower(params), " ", ""), "q="); ok {
				if q, err := strconv.ParseFloat(v, 64); err != nil || q <= 0 {
					continue
				}
			}
			return true
		}
	}
	return false
}
