package bolt_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// mustAnnouncement creates an announcement of content on area and returns
// its id.
func mustAnnouncement(tb testing.TB, db *bolt.DB, content, area string) string {
	tb.Helper()
	a := &loaxa.Announcement{Title: "Bản tin", ContentID: content, Targets: loaxa.Targets{Areas: []string{area}},
		Priority: protocol.PriorityNormal, Start: t0.Add(time.Hour), Repeat: 1}
	must(tb, bolt.NewAnnouncementService(db).CreateAnnouncement(context.Background(), a))
	return a.ID
}

func TestAnnouncementService_CreateAnnouncement(t *testing.T) {
	db, clk := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	mustNode(t, db, "n1", "hp")
	content := mustContent(t, db, "Bản tin sáng")
	s := bolt.NewAnnouncementService(db)
	ctx := context.Background()

	a := &loaxa.Announcement{
		Title: "Bản tin sáng", ContentID: content,
		Targets:  loaxa.Targets{Areas: []string{"hp"}, Nodes: []string{"n1"}},
		Priority: protocol.PriorityNormal, Start: t0.Add(time.Hour), RRule: "FREQ=DAILY",
		State: loaxa.AnnouncementCancelled, // ignored: new announcements are active
	}
	must(t, s.CreateAnnouncement(ctx, a))
	if a.ID != "a000001" || a.State != loaxa.AnnouncementActive || a.Repeat != 1 || !a.CreatedAt.Equal(clk.Now()) {
		t.Errorf("created %+v; want id a000001, active, repeat 1, created now", a)
	}
	if err := protocol.CheckID(a.ID); err != nil {
		t.Errorf("announcement id is not a valid id: %v", err)
	}
	got, err := s.FindAnnouncementByID(ctx, a.ID)
	must(t, err)
	if got.ID != a.ID || got.RRule != a.RRule || !got.Start.Equal(a.Start) || !slices.Equal(got.Targets.Nodes, a.Targets.Nodes) {
		t.Errorf("stored %+v, want %+v", got, a)
	}

	valid := func() loaxa.Announcement {
		return loaxa.Announcement{Title: "t", ContentID: content, Targets: loaxa.Targets{Areas: []string{"hp"}},
			Priority: protocol.PriorityEmergency, Start: t0}
	}
	tests := []struct {
		name   string
		change func(*loaxa.Announcement)
	}{
		{"unknown content", func(a *loaxa.Announcement) { a.ContentID = contentID("none") }},
		{"no content", func(a *loaxa.Announcement) { a.ContentID = "" }},
		{"no targets", func(a *loaxa.Announcement) { a.Targets = loaxa.Targets{} }},
		{"unknown target area", func(a *loaxa.Announcement) { a.Targets.Areas = []string{"hp", "nowhere"} }},
		{"unknown target node", func(a *loaxa.Announcement) { a.Targets.Nodes = []string{"n9"} }},
		{"bad target id", func(a *loaxa.Announcement) { a.Targets.Nodes = []string{"N 1"} }},
		{"unknown priority", func(a *loaxa.Announcement) { a.Priority = "urgent" }},
		{"no start", func(a *loaxa.Announcement) { a.Start = time.Time{} }},
		{"negative repeat", func(a *loaxa.Announcement) { a.Repeat = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := valid()
			tt.change(&a)
			wantCode(t, s.CreateAnnouncement(ctx, &a), loaxa.EInvalid)
			if a.ID != "" {
				t.Errorf("a failed create assigned id %q", a.ID)
			}
		})
	}

	// The failed creates used no id: the next one is a000002.
	b := valid()
	must(t, s.CreateAnnouncement(ctx, &b))
	if b.ID != "a000002" {
		t.Errorf("next id %q, want a000002", b.ID)
	}
}

func TestAnnouncementService_FindAndCancel(t *testing.T) {
	db, clk := MustOpenDB(t)
	mustArea(t, db, "hp", "")
	content := mustContent(t, db, "c")
	s := bolt.NewAnnouncementService(db)
	ctx := context.Background()
	var ids []string
	for range 3 {
		ids = append(ids, mustAnnouncement(t, db, content, "hp"))
	}
	clk.Set(t0.Add(time.Minute))
	must(t, s.CancelAnnouncement(ctx, ids[1]))
	clk.Set(t0.Add(2 * time.Minute))
	must(t, s.CancelAnnouncement(ctx, ids[1])) // again: a safe retry
	// The scheduler keeps a session item's slot by when it was cancelled
	// (docs/scheduling.md): the first cancel is that moment.
	cancelled, err := s.FindAnnouncementByID(ctx, ids[1])
	must(t, err)
	if !cancelled.CancelledAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("cancelled_at %v, want the first cancel, %v", cancelled.CancelledAt, t0.Add(time.Minute))
	}
	wantCode(t, s.CancelAnnouncement(ctx, "a999999"), loaxa.ENotFound)
	_, err = s.FindAnnouncementByID(ctx, "a999999")
	wantCode(t, err, loaxa.ENotFound)

	tests := []struct {
		state string
		want  []string
	}{
		{"", ids},
		{loaxa.AnnouncementActive, []string{ids[0], ids[2]}},
		{loaxa.AnnouncementCancelled, []string{ids[1]}},
	}
	for _, tt := range tests {
		t.Run("state "+tt.state, func(t *testing.T) {
			as, err := s.FindAnnouncements(ctx, loaxa.AnnouncementFilter{State: tt.state})
			must(t, err)
			var got []string
			for _, a := range as {
				got = append(got, a.ID)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ids %q, want %q", got, tt.want)
			}
		})
	}
}

// TestAnnouncementWithAChimeNotInTheLibraryIsRefused: the store checked a
// bulletin's content but not its chimes (only the API did, in a
// transaction of its own), so a bulletin could be stored with a chime the
// library lacks and never be scheduled anywhere (its
// bulletin-unschedulable alarm). The store refuses it in the transaction
// that would store it, with the API's words, and stores nothing.
func TestAnnouncementWithAChimeNotInTheLibraryIsRefused(t *testing.T) {
	db, _ := MustOpenDB(t)
	ctx := context.Background()
	mustArea(t, db, "hp", "")
	s := bolt.NewAnnouncementService(db)
	content, chime := mustContent(t, db, "Bản tin"), mustContent(t, db, "Nhạc hiệu")
	const gone = "5c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
	for _, tc := range []struct {
		name             string
		opening, closing string
		want             string
	}{
		{"opening chime", gone, chime, "opening_chime " + gone + " does not exist; upload the chime with POST /api/v1/content first."},
		{"closing chime", chime, gone, "closing_chime " + gone + " does not exist; upload the chime with POST /api/v1/content first."},
	} {
		a := &loaxa.Announcement{Title: "Bản tin", ContentID: content, OpeningChime: tc.opening, ClosingChime: tc.closing,
			Targets: loaxa.Targets{Areas: []string{"hp"}}, Priority: protocol.PriorityNormal, Start: t0.Add(time.Hour)}
		err := s.CreateAnnouncement(ctx, a)
		if loaxa.ErrorCode(err) != loaxa.EInvalid || loaxa.ErrorMessage(err) != tc.want {
			t.Errorf("%s not in the library: %v, want EInvalid %q", tc.name, err, tc.want)
		}
	}
	if as, err := s.FindAnnouncements(ctx, loaxa.AnnouncementFilter{}); err != nil || len(as) != 0 {
		t.Errorf("announcements after the refusals: %v, %v; want none", as, err)
	}
	ok := &loaxa.Announcement{Title: "Bản tin", ContentID: content, OpeningChime: chime, ClosingChime: chime,
		Targets: loaxa.Targets{Areas: []string{"hp"}}, Priority: protocol.PriorityNormal, Start: t0.Add(time.Hour)}
	must(t, s.CreateAnnouncement(ctx, ok))
}
