package http_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// TestEventsAndDeliveries: the play log and delivery endpoints return what
// the stores hold, limited to the caller's area.
func TestEventsAndDeliveries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	officer := e.addUser("can-bo-a", loaxa.RoleCommune, "12346")
	c := e.upload(e.admin, "ban-tin.wav", wav(16000, 1, 1600), "Bản tin", http.StatusCreated)
	start := e.clock.Now().Add(time.Hour).Truncate(time.Second)
	var a loaxa.Announcement
	e.call("POST", "/api/v1/announcements", e.admin, map[string]any{
		"content_id": c.ID, "targets": map[string]any{"areas": []string{"318"}}, "start": start.Format(time.RFC3339),
	}, http.StatusCreated, &a)

	ctx := t.Context()
	occ := loaxa.OccurrenceID(a.ID, start)
	err := e.stores.deliveries.EnsureDeliveries(ctx, []*loaxa.Delivery{
		{Announcement: a.ID, Occurrence: occ, Node: "n-a", Start: start, State: loaxa.DeliveryPending},
		{Announcement: a.ID, Occurrence: occ, Node: "n-b", Start: start, State: loaxa.DeliveryPending},
	})
	if err != nil {
		t.Fatal(err)
	}
	ev := func(seq uint64, typ protocol.EventType, at time.Time) protocol.Event {
		return protocol.Event{Seq: seq, Type: typ, At: at, Occurrence: occ, Announcement: a.ID, Content: c.ID}
	}
	batches := map[string][]protocol.Event{
		"n-a": {ev(1, protocol.EventReceived, start.Add(-50*time.Minute)), ev(2, protocol.EventStarted, start), ev(3, protocol.EventCompleted, start.Add(time.Second))},
		"n-b": {ev(1, protocol.EventReceived, start.Add(-40*time.Minute))},
	}
	for node, events := range batches {
		if _, _, err := e.stores.events.RecordEvents(ctx, node, protocol.EventBatch{Epoch: "e1", Events: events}, start); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("deliveries", func(t *testing.T) {
		var all struct {
			Announcement string
			Counts       map[loaxa.DeliveryState]int
			Deliveries   []loaxa.Delivery
		}
		e.call("GET", "/api/v1/announcements/"+a.ID+"/deliveries", e.admin, nil, http.StatusOK, &all)
		got := map[string]loaxa.DeliveryState{}
		for _, d := range all.Deliveries {
			got[d.Node] = d.State
		}
		if len(all.Deliveries) != 2 || got["n-a"] != loaxa.DeliveryCompleted || got["n-b"] != loaxa.DeliveryReceived {
			t.Errorf("deliveries %+v", all.Deliveries)
		}
		if all.Announcement != a.ID || all.Counts[loaxa.DeliveryCompleted] != 1 || all.Counts[loaxa.DeliveryReceived] != 1 {
			t.Errorf("announcement %q counts %v", all.Announcement, all.Counts)
		}

		var mine struct{ Deliveries []loaxa.Delivery }
		e.call("GET", "/api/v1/announcements/"+a.ID+"/deliveries", officer, nil, http.StatusOK, &mine)
		if len(mine.Deliveries) != 1 || mine.Deliveries[0].Node != "n-a" {
			t.Errorf("officer of 12346 sees deliveries %+v, want only n-a's", mine.Deliveries)
		}
	})

	t.Run("events", func(t *testing.T) {
		q := func(kv ...string) string {
			v := url.Values{}
			for i := 0; i+1 < len(kv); i += 2 {
				v.Set(kv[i], kv[i+1])
			}
			return "/api/v1/events?" + v.Encode()
		}
		tests := []struct {
			name  string
			token string
			path  string
			want  []string // node:seq
		}{
			{"all, oldest first", e.admin, q(), []string{"n-a:1", "n-b:1", "n-a:2", "n-a:3"}},
			{"one node", e.admin, q("node", "n-a"), []string{"n-a:1", "n-a:2", "n-a:3"}},
			{"one area", e.admin, q("area", "12347"), []string{"n-b:1"}},
			{"time window", e.admin, q("from", start.Format(time.RFC3339), "to", start.Add(time.Minute).Format(time.RFC3339)), []string{"n-a:2", "n-a:3"}},
			{"limit", e.admin, q("limit", "2"), []string{"n-a:1", "n-b:1"}},
			{"officer defaults to their area", officer, q(), []string{"n-a:1", "n-a:2", "n-a:3"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var got struct{ Events []loaxa.Event }
				e.call("GET", tt.path, tt.token, nil, http.StatusOK, &got)
				var ids []string
				for _, ev := range got.Events {
					ids = append(ids, fmt.Sprintf("%s:%d", ev.Node, ev.Seq))
				}
				if !slices.Equal(ids, tt.want) {
					t.Errorf("GET %s = %v, want %v", tt.path, ids, tt.want)
				}
			})
		}
		var one struct{ Events []loaxa.Event }
		e.call("GET", q("node", "n-a", "limit", "1"), e.admin, nil, http.StatusOK, &one)
		if got := one.Events[0]; got.Area != "12346" || got.Epoch != "e1" || got.Type != protocol.EventReceived || got.Occurrence != occ {
			t.Errorf("event %+v", got)
		}
	})
}

// TestEventsNewestFirstPastTheLimit: the cluster page reads a cluster's
// last week of plays with a limit, and the log answered oldest first, so
// once the week held more events than the limit the newest were cut off:
// an officer checking whether this morning's typhoon bulletin played saw
// last week's plays. With order=newest the limit keeps the newest, newest
// first; the default order stays oldest first for the scripts that rely
// on it.
func TestEventsNewestFirstPastTheLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tree()
	day := e.clock.Now().Add(-7 * 24 * time.Hour)
	var events []protocol.Event
	for i := range 5 { // one play a day; the limit holds three
		events = append(events, protocol.Event{Seq: uint64(i + 1), Type: protocol.EventCompleted, At: day.Add(time.Duration(i+1) * 24 * time.Hour)})
	}
	if _, _, err := e.stores.events.RecordEvents(t.Context(), "n-a", protocol.EventBatch{Epoch: "e1", Events: events}, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	seqs := func(query string) []uint64 {
		var got struct{ Events []loaxa.Event }
		e.call("GET", "/api/v1/events?node=n-a&from="+url.QueryEscape(day.Format(time.RFC3339))+"&limit=3"+query, e.admin, nil, http.StatusOK, &got)
		var out []uint64
		for _, ev := range got.Events {
			out = append(out, ev.Seq)
		}
		return out
	}
	if got, want := seqs("&order=newest"), []uint64{5, 4, 3}; !slices.Equal(got, want) {
		t.Errorf("newest first: plays %v, want the latest three %v", got, want)
	}
	if got, want := seqs(""), []uint64{1, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("by default: plays %v, want the oldest three %v", got, want)
	}
	if got, want := seqs("&order=oldest"), []uint64{1, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("oldest first: plays %v, want %v", got, want)
	}
	r := e.call("GET", "/api/v1/events?order=latest", e.admin, nil, http.StatusBadRequest, nil)
	checkError(t, r, http.StatusBadRequest, "invalid", "order")
}
