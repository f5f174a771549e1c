package http_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// streamEnd is the data of an emergency stream's end event.
type streamEnd struct {
	ID, State, Reason string
}

// streamToEnd reads emergency id's stream to its end event.
func (e *env) streamToEnd(t *testing.T, id string) streamEnd {
	t.Helper()
	for ev := range e.openStream(t, id) {
		if ev.name != "end" {
			continue
		}
		var end streamEnd
		if err := json.Unmarshal([]byte(ev.data), &end); err != nil {
			t.Fatalf("end event %q: %v", ev.data, err)
		}
		return end
	}
	t.Fatalf("stream of %s closed without an end event", id)
	return streamEnd{}
}

// reportAlert records node's events about em as the node's batch would.
func (e *env) reportAlert(node string, em loaxa.Emergency, events ...protocol.Event) {
	e.t.Helper()
	for i := range events {
		events[i].At, events[i].Occurrence, events[i].Announcement, events[i].Content = e.clock.Now(), em.Occurrence, em.ID, em.ContentID
	}
	if _, _, err := e.stores.events.RecordEvents(context.Background(), node, protocol.EventBatch{Epoch: "e1", Events: events}, e.clock.Now()); err != nil {
		e.t.Fatal(err)
	}
	e.emergency.Events(node, "e1", events)
}

// TestStreamEndSaysWhyItEnded: an alert whose every cluster had played
// it to the end closed its stream with {"state":"active"} alone, which an
// integration read as the alert still sounding; the stream's end did not
// say that the figures were final. The emergency's state stays what
// GET /emergency/{id} says (active until its expiry: it can still be
// cancelled, and a cluster put up meanwhile is sent it), and the end says
// why the stream ended: every node reported how it ended ("nodes-final"),
// or a minute passed after the expiry with some never reporting
// ("expired").
func TestStreamEndSaysWhyItEnded(t *testing.T) {
	e := newEnv(t)
	e.tree()
	ct := e.upload(e.admin, "bao.wav", wav(16000, 1, 16000), "Báo bão", http.StatusCreated)

	played := e.drill(ct.ID, "318")
	e.clock.Advance(300 * time.Millisecond)
	for _, n := range []string{"n-a", "n-b"} {
		e.reportAlert(n, played, protocol.Event{Seq: 1, Type: protocol.EventReceived}, protocol.Event{Seq: 2, Type: protocol.EventStarted})
	}
	e.clock.Advance(5 * time.Second)
	for _, n := range []string{"n-a", "n-b"} {
		e.reportAlert(n, played, protocol.Event{Seq: 3, Type: protocol.EventCompleted})
	}
	if got, want := e.streamToEnd(t, played.ID), (streamEnd{played.ID, loaxa.EmergencyActive, "nodes-final"}); got != want {
		t.Errorf("every cluster completed: end %+v, want %+v", got, want)
	}

	cancelled := e.drill(ct.ID, "318")
	e.clock.Advance(300 * time.Millisecond)
	for _, n := range []string{"n-a", "n-b"} {
		e.reportAlert(n, cancelled, protocol.Event{Seq: 4, Type: protocol.EventReceived})
	}
	e.call("POST", "/api/v1/emergency/"+cancelled.ID+"/cancel", e.admin, nil, http.StatusOK, nil)
	for _, n := range []string{"n-a", "n-b"} {
		e.reportAlert(n, cancelled, protocol.Event{Seq: 5, Type: protocol.EventFailed, Reason: protocol.ReasonCancelled})
	}
	if got, want := e.streamToEnd(t, cancelled.ID), (streamEnd{cancelled.ID, loaxa.EmergencyCancelled, "nodes-final"}); got != want {
		t.Errorf("cancelled: end %+v, want %+v", got, want)
	}

	// n-b never reports the third: its end is the expiry's.
	unheard := e.drill(ct.ID, "318")
	e.clock.Advance(300 * time.Millisecond)
	e.reportAlert("n-a", unheard, protocol.Event{Seq: 6, Type: protocol.EventReceived}, protocol.Event{Seq: 7, Type: protocol.EventStarted})
	e.clock.Advance(unheard.Expires.Sub(e.clock.Now()) + 2*time.Minute)
	if got, want := e.streamToEnd(t, unheard.ID), (streamEnd{unheard.ID, loaxa.EmergencyExpired, "expired"}); got != want {
		t.Errorf("a cluster never heard from: end %+v, want %+v", got, want)
	}
}

// streamEvent is one server-sent event of a stream: its name and data.
type streamEvent struct{ name, data string }

// openStream reads emergency id's stream in the background; its events
// come on the channel, which closes when the stream does.
func (e *env) openStream(t *testing.T, id string) <-chan streamEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	req, err := http.NewRequestWithContext(ctx, "GET", e.ts.URL+"/api/v1/emergency/"+id+"/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.admin)
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan streamEvent, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		defer resp.Body.Close()
		var name string
		lines := bufio.NewScanner(resp.Body)
		lines.Buffer(nil, 1<<20)
		for lines.Scan() {
			line := lines.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				out <- streamEvent{name, strings.TrimPrefix(line, "data: ")}
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return out
}

// TestStreamStaysOpenForClustersAwaitingTheirCode: an alert to an area
// with a pole not put up yet (its cluster waits for its enrolment code)
// closed its stream once the clusters it had reached all finished, and
// the board said "the figures will not change"; the pole put up during
// the alert redeemed its code, was sent the alert and played it, and the
// officer's board never showed it. While a cluster of the alert still
// waits for its code and the alert is in force, the stream stays open.
func TestStreamStaysOpenForClustersAwaitingTheirCode(t *testing.T) {
	e := newEnv(t)
	e.tree()
	code := clusterAwaitingItsCode(t, e)
	ct := e.upload(e.admin, "bao.wav", wav(16000, 1, 16000), "Báo bão", http.StatusCreated)
	em := e.drill(ct.ID, "318")
	e.clock.Advance(300 * time.Millisecond)
	for _, n := range []string{"n-a", "n-b"} {
		e.reportAlert(n, em, protocol.Event{Seq: 1, Type: protocol.EventReceived}, protocol.Event{Seq: 2, Type: protocol.EventStarted})
	}
	e.clock.Advance(5 * time.Second)
	for _, n := range []string{"n-a", "n-b"} {
		e.reportAlert(n, em, protocol.Event{Seq: 3, Type: protocol.EventCompleted})
	}

	events := e.openStream(t, em.ID)
	next := func(what string) streamEvent {
		t.Helper()
		ev, ok := <-events
		if !ok {
			t.Fatalf("stream closed while waiting for %s", what)
		}
		return ev
	}
	for ev := next("the first summary"); ev.name != "summary"; ev = next("the first summary") {
		if ev.name == "end" {
			t.Fatalf("stream ended before the pole waiting for its code was put up: %s", ev.data)
		}
	}
	// The pole is put up during the alert and plays it.
	if r := e.request("POST", "/api/v1/enrol", "", "application/json", jsonBody(t, map[string]string{"code": code})); r.status != http.StatusOK {
		t.Fatalf("enrol: %d %s", r.status, r.body)
	}
	e.reportAlert("tt-09", em, protocol.Event{Seq: 1, Type: protocol.EventReceived}, protocol.Event{Seq: 2, Type: protocol.EventStarted})
	e.clock.Advance(5 * time.Second)
	e.reportAlert("tt-09", em, protocol.Event{Seq: 3, Type: protocol.EventCompleted})

	var seen []string
	for {
		ev := next("the new cluster and the end")
		switch ev.name {
		case "end":
			var end streamEnd
			if err := json.Unmarshal([]byte(ev.data), &end); err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(seen, "tt-09 completed") {
				t.Errorf("the stream ended (%+v) having shown tt-09 as %q; want it shown completed first", end, seen)
			}
			if end.Reason != "nodes-final" {
				t.Errorf("end %+v, want nodes-final once tt-09 finished", end)
			}
			return
		case "node":
			var n loaxa.EmergencyNode
			if err := json.Unmarshal([]byte(ev.data), &n); err != nil {
				t.Fatal(err)
			}
			if n.Node == "tt-09" {
				seen = append(seen, n.Node+" "+n.State)
			}
		}
	}
}
