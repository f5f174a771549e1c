package schedule_test

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/controller/schedule"
	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol"
)

type fixture struct {
	t     *testing.T
	ctx   context.Context
	s     *schedule.Scheduler
	clock *clock.Fake
	anns  *bolt.AnnouncementService
	sess  *bolt.SessionService
	hols  *bolt.HolidayService
	props *bolt.ProposalService
	ids   map[string]string // content name → id
}

var vn = time.FixedZone("+07", 7*3600)

// newFixture stores commune 12346 (in district 318 of province 31) with one
// node, and content of 1, 2, 4 and 6 minutes, on a real bbolt file.
func newFixture(t *testing.T) *fixture {
	ctx := context.Background()
	fc := clock.NewFake(time.Date(2025, 3, 1, 4, 0, 0, 0, vn))
	db := bolt.NewDB(filepath.Join(t.TempDir(), "loaxa.db"))
	db.Now = fc.Now
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &fixture{t: t, ctx: ctx, clock: fc, ids: map[string]string{},
		anns: bolt.NewAnnouncementService(db), sess: bolt.NewSessionService(db), hols: bolt.NewHolidayService(db), props: bolt.NewProposalService(db)}
	areas, nodes, contents := bolt.NewAreaService(db), bolt.NewNodeService(db), bolt.NewContentService(db)
	for _, a := range []*loaxa.Area{{ID: "31", Name: "Hải Phòng"}, {ID: "318", Name: "Tiên Lãng", Parent: "31"}, {ID: "12346", Name: "Tiên Thắng", Parent: "318"}} {
		if err := areas.CreateArea(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := nodes.CreateNode(ctx, &loaxa.Node{ID: "n1", Name: "n1", Area: "12346", SecretHash: loaxa.HashSecret(loaxa.NewSecret())}); err != nil {
		t.Fatal(err)
	}
	for i, m := range []int{1, 2, 4, 6} {
		id := strings.Repeat(fmt.Sprint(i+1), 64)
		if _, err := contents.CreateContent(ctx, &loaxa.Content{ID: id, Title: "c", DurationMS: int64(m) * 60_000, Size: 1}); err != nil {
			t.Fatal(err)
		}
		f.ids[fmt.Sprintf("%dm", m)] = id
	}
	s := schedule.NewScheduler()
	s.AreaService, s.NodeService, s.AnnouncementService, s.ContentService = areas, nodes, f.anns, contents
	s.SessionService, s.HolidayService, s.ProposalService = f.sess, f.hols, f.props
	s.Clock = fc
	f.s = s
	return f
}

func (f *fixture) announce(a loaxa.Announcement) *loaxa.Announcement {
	f.t.Helper()
	if a.Priority == "" {
		a.Priority = protocol.PriorityNormal
	}
	if len(a.Targets.Areas) == 0 {
		a.Targets.Areas = []string{"12346"}
	}
	if err := f.anns.CreateAnnouncement(f.ctx, &a); err != nil {
		f.t.Fatal(err)
	}
	return &a
}

// programme renders n1's programme for the first day as "HH:MM id+len".
func (f *fixture) programme(days int) string {
	f.t.Helper()
	from := f.clock.Now()
	items, err := f.s.NodeProgramme(f.ctx, "n1", from, from.AddDate(0, 0, days))
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, it := range items {
		out = append(out, fmt.Sprintf("%s %s %s", it.Start.In(vn).Format("02 15:04"), it.Announcement, it.End.Sub(it.Start)))
	}
	return strings.Join(out, "; ")
}

// TestSessionPacking: items placed in the evening session play back to
// back from its start, priority first, then in creation order; a recurring
// item skips the holiday; an item past the session's length is a conflict.
func TestSessionPacking(t *testing.T) {
	f := newFixture(t)
	evening := &loaxa.Session{Area: "12346", Name: "Buổi chiều", Start: "17:00", MaxMinutes: 15, CreatedAt: f.clock.Now()}
	if err := f.sess.CreateSession(f.ctx, evening); err != nil {
		t.Fatal(err)
	}
	day := func(d int) time.Time { return time.Date(2025, 3, d, 12, 0, 0, 0, vn) }
	f.announce(loaxa.Announcement{ContentID: f.ids["4m"], Start: day(1), Session: evening.ID, RRule: "FREQ=DAILY"})             // a000001
	f.announce(loaxa.Announcement{ContentID: f.ids["2m"], Start: day(1), Session: evening.ID, Repeat: 2, GapMS: 60_000})        // a000002: 2+1+2 = 5m, day 1 only
	f.announce(loaxa.Announcement{ContentID: f.ids["1m"], Start: day(1), Session: evening.ID, Priority: protocol.PriorityHigh}) // a000003: first
	f.announce(loaxa.Announcement{ContentID: f.ids["1m"], Start: time.Date(2025, 3, 1, 6, 0, 0, 0, vn)})                        // a000004: fixed time
	if err := f.hols.CreateHoliday(f.ctx, &loaxa.Holiday{Date: "2025-03-02", Name: "test holiday"}); err != nil {
		t.Fatal(err)
	}
	want := "01 06:00 a000004 1m0s; 01 17:00 a000003 1m0s; 01 17:01 a000001 4m0s; 01 17:05 a000002 5m0s; 03 17:00 a000001 4m0s"
	if got := f.programme(3); got != want {
		t.Errorf("programme\n got  %s\n want %s", got, want)
	}

	// Another 6 minutes on day 1 runs past 15 minutes: a conflict.
	conflicts, err := f.s.CheckAnnouncement(f.ctx, &loaxa.Announcement{ContentID: f.ids["6m"], Start: day(1), Session: evening.ID,
		Priority: protocol.PriorityNormal, Targets: loaxa.Targets{Areas: []string{"12346"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(conflicts) != 1 || conflicts[0].Kind != loaxa.ConflictSessionOverflow || !strings.Contains(conflicts[0].Message, "runs 16m0s, over its maximum of 15 minutes") {
		t.Errorf("conflicts = %+v", conflicts)
	}
	// Two normal items at one fixed time overlap.
	conflicts, err = f.s.CheckAnnouncement(f.ctx, &loaxa.Announcement{ContentID: f.ids["1m"], Start: time.Date(2025, 3, 1, 6, 0, 30, 0, vn),
		Priority: protocol.PriorityNormal, Targets: loaxa.Targets{Areas: []string{"12346"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(conflicts) != 1 || conflicts[0].Kind != loaxa.ConflictOverlap {
		t.Errorf("conflicts = %+v (programme %s)", conflicts, f.programme(1))
	}
	// A priority item at that time preempts instead: no conflict.
	conflicts, _ = f.s.CheckAnnouncement(f.ctx, &loaxa.Announcement{ContentID: f.ids["1m"], Start: time.Date(2025, 3, 1, 6, 0, 30, 0, vn),
		Priority: protocol.PriorityHigh, Targets: loaxa.Targets{Areas: []string{"12346"}}})
	if len(conflicts) != 0 {
		t.Errorf("priority over normal reported %+v", conflicts)
	}
}

// TestProposalsAndHead: a normal bulletin from the province plays on the
// commune's nodes only once accepted, in the session the officer chose; a
// priority one from the district opens the next session.
func TestProposalsAndHead(t *testing.T) {
	f := newFixture(t)
	morning := &loaxa.Session{Area: "12346", Name: "Buổi sáng", Start: "05:30", MaxMinutes: 30, CreatedAt: f.clock.Now()}
	if err := f.sess.CreateSession(f.ctx, morning); err != nil {
		t.Fatal(err)
	}
	f.announce(loaxa.Announcement{ContentID: f.ids["4m"], Start: time.Date(2025, 3, 1, 5, 0, 0, 0, vn), Session: morning.ID}) // a000001, local
	down := f.announce(loaxa.Announcement{ContentID: f.ids["2m"], Start: time.Date(2025, 3, 1, 9, 0, 0, 0, vn), Proposed: true, FromArea: "31"})
	prop := []*loaxa.Proposal{{Announcement: down.ID, Area: "12346"}}
	if err := f.props.CreateProposals(f.ctx, prop); err != nil {
		t.Fatal(err)
	}
	f.announce(loaxa.Announcement{ContentID: f.ids["1m"], Start: time.Date(2025, 3, 1, 5, 0, 0, 0, vn), Priority: protocol.PriorityHigh, FromArea: "318"}) // a000003
	if got, want := f.programme(1), "01 05:30 a000003 1m0s; 01 05:31 a000001 4m0s"; got != want {
		t.Errorf("pending proposal:\n got  %s\n want %s", got, want)
	}
	prop[0].State, prop[0].Session, prop[0].DecidedBy = loaxa.ProposalAccepted, morning.ID, "xa"
	if err := f.props.DecideProposal(f.ctx, prop[0]); err != nil {
		t.Fatal(err)
	}
	if got, want := f.programme(1), "01 05:30 a000003 1m0s; 01 05:31 a000001 4m0s; 01 05:35 a000002 2m0s"; got != want {
		t.Errorf("accepted into the morning session:\n got  %s\n want %s", got, want)
	}
}

// TestDailyBulletinFromBeforeItsSessionIsNoConflict: the README's evening
// session example, typed on a machine on UTC at 03:58 in Vietnam, dated a
// daily bulletin in a session created that minute with the day before
// (the machine's date), and it was refused: the session "does not run on"
// that day. The day was over and its occurrence could never play; a day
// gone is no conflict, and the bulletin plays from the session's first day.
func TestDailyBulletinFromBeforeItsSessionIsNoConflict(t *testing.T) {
	f := newFixture(t) // 2025-03-01 04:00 in Vietnam
	evening := &loaxa.Session{Area: "12346", Name: "Buổi chiều", Start: "17:00", MaxMinutes: 30, CreatedAt: f.clock.Now()}
	if err := f.sess.CreateSession(f.ctx, evening); err != nil {
		t.Fatal(err)
	}
	a := loaxa.Announcement{ContentID: f.ids["1m"], Start: time.Date(2025, 2, 28, 17, 0, 0, 0, vn), RRule: "FREQ=DAILY", Session: evening.ID,
		Priority: protocol.PriorityNormal, Targets: loaxa.Targets{Areas: []string{"12346"}}}
	conflicts, err := f.s.CheckAnnouncement(f.ctx, &a)
	if err != nil {
		t.Fatal(err)
	}
	if len(conflicts) != 0 {
		t.Errorf("conflicts %+v; want none: 2025-02-28 is over", conflicts)
	}
	f.announce(a)
	if got, want := f.programme(2), "01 17:00 a000001 1m0s; 02 17:00 a000001 1m0s"; got != want {
		t.Errorf("programme:\n got  %s\n want %s", got, want)
	}
}

// TestOneOffInTodaysEndedSessionIsAConflict: at 10:00 an officer schedules
// a one-off bulletin for 12:00 today in the morning session (05:30). It is
// packed into today's instance, which is over, so it would play nowhere:
// the check says so (no-session), as for a day the session does not run.
// It said nothing.
func TestOneOffInTodaysEndedSessionIsAConflict(t *testing.T) {
	f := newFixture(t)
	morning := &loaxa.Session{Area: "12346", Name: "Buổi sáng", Start: "05:30", MaxMinutes: 30, CreatedAt: f.clock.Now()}
	if err := f.sess.CreateSession(f.ctx, morning); err != nil {
		t.Fatal(err)
	}
	f.clock.Set(time.Date(2025, 3, 1, 10, 0, 0, 0, vn))
	a := loaxa.Announcement{ContentID: f.ids["1m"], Start: time.Date(2025, 3, 1, 12, 0, 0, 0, vn), Session: morning.ID,
		Priority: protocol.PriorityNormal, Targets: loaxa.Targets{Areas: []string{"12346"}}}
	conflicts, err := f.s.CheckAnnouncement(f.ctx, &a)
	if err != nil {
		t.Fatal(err)
	}
	f.announce(a)
	if got := f.programme(2); got == "" && (len(conflicts) == 0 || conflicts[0].Kind != loaxa.ConflictNoSession || !strings.Contains(conflicts[0].Message, "is over")) {
		t.Errorf("the bulletin plays nowhere in the next two days (programme %q) and the check says %+v; want a no-session conflict saying the session is over", got, conflicts)
	}
}

// TestProgrammeOfAPastDayKeepsWhatWasPlanned: the programme of a past day
// is what was planned that day. A bulletin cancelled since was missing
// from every day it had played (though its deliveries said it played),
// and a holiday deleted more than 8 days after its day was purged, so
// that day showed the bulletins it had kept off the air. Here, on 1–4
// March: a daily bulletin at 08:00 and a daily one in the 17:00 session,
// both cancelled on the 4th at 12:00, a 6-minute one at 09:00 on the 4th
// cancelled on air at 09:02, a 4-minute one in the 4th's session
// cancelled on air at 17:01, a daily one at 06:00 left as it is, and a
// holiday on the 2nd deleted on the 5th. Looked at on the 20th, after the
// purge, each day is as it was planned: the 4th has 06:00, 08:00, the
// 09:00 cut off at 09:02 (cancelled_at says so) and its session's item cut
// off at 17:01, not the daily news it would have had; the 2nd has only
// what the holiday did not stop: nothing.
func TestProgrammeOfAPastDayKeepsWhatWasPlanned(t *testing.T) {
	f := newFixture(t)
	evening := &loaxa.Session{Area: "12346", Name: "Buổi chiều", Start: "17:00", MaxMinutes: 15, CreatedAt: f.clock.Now()}
	if err := f.sess.CreateSession(f.ctx, evening); err != nil {
		t.Fatal(err)
	}
	at := func(d, h, m int) time.Time { return time.Date(2025, 3, d, h, m, 0, 0, vn) }
	morning := f.announce(loaxa.Announcement{ContentID: f.ids["1m"], Start: at(1, 8, 0), RRule: "FREQ=DAILY"})
	news := f.announce(loaxa.Announcement{ContentID: f.ids["2m"], Start: at(1, 12, 0), RRule: "FREQ=DAILY", Session: evening.ID})
	long := f.announce(loaxa.Announcement{ContentID: f.ids["6m"], Start: at(4, 9, 0)})
	f.announce(loaxa.Announcement{ContentID: f.ids["1m"], Start: at(1, 6, 0), RRule: "FREQ=DAILY"}) // a000004, not cancelled
	onAir := f.announce(loaxa.Announcement{ContentID: f.ids["4m"], Start: at(4, 12, 0), Session: evening.ID})
	holiday := &loaxa.Holiday{Date: "2025-03-02", Name: "Ngày nghỉ"}
	if err := f.hols.CreateHoliday(f.ctx, holiday); err != nil {
		t.Fatal(err)
	}
	show := func() string {
		t.Helper()
		items, err := f.s.AreaProgramme(f.ctx, "12346", at(1, 0, 0), at(6, 0, 0))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, it := range items {
			s := fmt.Sprintf("%s %s–%s", it.Start.In(vn).Format("02 15:04"), it.Announcement, it.End.In(vn).Format("15:04"))
			if !it.CancelledAt.IsZero() {
				s += " cancelled " + it.CancelledAt.In(vn).Format("02 15:04")
			}
			out = append(out, s)
		}
		return strings.Join(out, "; ")
	}
	planned := show()

	f.clock.Set(at(4, 9, 2))
	if err := f.anns.CancelAnnouncement(f.ctx, long.ID); err != nil {
		t.Fatal(err)
	}
	f.clock.Set(at(4, 12, 0))
	for _, a := range []*loaxa.Announcement{morning, news} {
		if err := f.anns.CancelAnnouncement(f.ctx, a.ID); err != nil {
			t.Fatal(err)
		}
	}
	f.clock.Set(at(4, 17, 1))
	if err := f.anns.CancelAnnouncement(f.ctx, onAir.ID); err != nil {
		t.Fatal(err)
	}
	f.clock.Set(at(5, 10, 0))
	if err := f.hols.DeleteHoliday(f.ctx, holiday.ID); err != nil {
		t.Fatal(err)
	}
	want := "01 06:00 a000004–06:01; 01 08:00 a000001–08:01 cancelled 04 12:00; 01 17:00 a000002–17:02 cancelled 04 12:00; " +
		"03 06:00 a000004–06:01; 03 08:00 a000001–08:01 cancelled 04 12:00; 03 17:00 a000002–17:02 cancelled 04 12:00; " +
		"04 06:00 a000004–06:01; 04 08:00 a000001–08:01 cancelled 04 12:00; 04 09:00 a000003–09:02 cancelled 04 09:02; " +
		"04 17:00 a000005–17:01 cancelled 04 17:01; " +
		"05 06:00 a000004–06:01"
	if got := show(); got != want {
		t.Errorf("programme of 1–5 March on the 5th\n got  %s\n want %s\n (as planned before the cancels: %s)", got, want, planned)
	}
	// On the 20th, after a holiday change purged the deleted ones.
	f.clock.Set(at(20, 10, 0))
	if err := f.hols.CreateHoliday(f.ctx, &loaxa.Holiday{Date: "2025-04-30", Name: "Giải phóng miền Nam"}); err != nil {
		t.Fatal(err)
	}
	if got := show(); got != want {
		t.Errorf("programme of 1–5 March on the 20th\n got  %s\n want %s", got, want)
	}
}

// TestSessionDeletionCompilesAreasOnceButCountsEachNode: the check of a
// session delete compiles each area's programme once for the nodes of the
// area that no bulletin names (it compiled every node: 3.5-4.7 s for a
// province's session, BENCHMARKS.md), which must not change what it
// answers: a bulletin from above sent to one node alone is held on that
// node, and one sent to a commune whose only board has not redeemed its
// code yet is held nowhere.
func TestSessionDeletionCompilesAreasOnceButCountsEachNode(t *testing.T) {
	r := newRig(t) // 12:00 in Hải Phòng, Saturday; tt-01, tt-02 in 12346, tm-01 in 12347
	sessions := bolt.NewSessionService(r.db)
	r.s.SessionService = sessions
	r.must(t, r.s.AreaService.CreateArea(r.ctx, &loaxa.Area{ID: "12348", Name: "Tiên Cường", Parent: "318"}))
	r.must(t, r.s.NodeService.CreateNode(r.ctx, &loaxa.Node{ID: "tc-01", Name: "tc-01", Area: "12348"})) // no secret: waits for its code
	evening := &loaxa.Session{Area: "318", Name: "Buổi chiều", Start: "17:00", MaxMinutes: 45, CreatedAt: t0.AddDate(0, 0, -7)}
	r.must(t, sessions.CreateSession(r.ctx, evening))
	fromAbove := func(title string, targets loaxa.Targets, hour int) *loaxa.Announcement {
		a := &loaxa.Announcement{Title: title, ContentID: contentID, FromArea: "31", Targets: targets, Priority: protocol.PriorityHigh,
			Start: t0.Add(time.Duration(hour-12) * time.Hour), RRule: "FREQ=DAILY;COUNT=2", Repeat: 1}
		r.must(t, r.s.AnnouncementService.CreateAnnouncement(r.ctx, a))
		return a
	}
	district := fromAbove("Cả huyện", loaxa.Targets{Areas: []string{"318"}}, 11)
	oneNode := fromAbove("Riêng cụm tt-02", loaxa.Targets{Nodes: []string{"tt-02"}}, 10)
	fromAbove("Xã chưa có cụm", loaxa.Targets{Areas: []string{"12348"}}, 9)

	got, err := r.s.CheckSessionDeletion(r.ctx, evening.ID)
	r.must(t, err)
	var plays []string
	for _, b := range got {
		where := "lost"
		if !b.Lost {
			where = "at " + b.MovesTo.In(vn).Format("02 15:04")
		}
		plays = append(plays, fmt.Sprintf("%s due %s, %s", b.Title, b.Due.In(vn).Format("02 15:04"), where))
	}
	// Today's plays (due before noon) are lost; tomorrow's play at their
	// own times. Every play is in the same instance on every node, so
	// each is one entry.
	want := []string{
		"Riêng cụm tt-02 due 28 10:00, lost", "Cả huyện due 28 11:00, lost",
		"Riêng cụm tt-02 due 29 10:00, at 29 10:00", "Cả huyện due 29 11:00, at 29 11:00",
	}
	if strings.Join(plays, "; ") != strings.Join(want, "; ") {
		t.Errorf("plays from above held by the district's session:\n%s\nwant\n%s", strings.Join(plays, "\n"), strings.Join(want, "\n"))
	}
	for _, b := range got {
		if b.Announcement != district.ID && b.Announcement != oneNode.ID {
			t.Errorf("play %+v of a bulletin whose only board has not redeemed its code", b)
		}
	}
}

// TestProgrammeOfAPastDayKeepsADeletedSession: a session deleted with its
// items cancelled and its accepted bulletin from above declined took its
// past plays out of the programme of the days before (the record was
// removed, and the plan found no session for them), though their
// deliveries said they played. Those days show them as planned; the
// session runs no day after its delete, and a new session of the area may
// take its times.
func TestProgrammeOfAPastDayKeepsADeletedSession(t *testing.T) {
	f := newFixture(t) // 1 March 2025, 04:00
	at := func(d, h, m int) time.Time { return time.Date(2025, 3, d, h, m, 0, 0, vn) }
	morning := &loaxa.Session{Area: "12346", Name: "Buổi sáng", Start: "05:30", MaxMinutes: 30, CreatedAt: f.clock.Now()}
	if err := f.sess.CreateSession(f.ctx, morning); err != nil {
		t.Fatal(err)
	}
	f.announce(loaxa.Announcement{ContentID: f.ids["4m"], Start: at(1, 5, 0), RRule: "FREQ=DAILY", Session: morning.ID}) // a000001: cancelled with it
	f.announce(loaxa.Announcement{ContentID: f.ids["1m"], Start: at(1, 5, 0), Session: morning.ID})                      // a000002: over by then
	down := f.announce(loaxa.Announcement{ContentID: f.ids["2m"], Start: at(1, 9, 0), RRule: "FREQ=DAILY", Proposed: true, FromArea: "31"})
	prop := []*loaxa.Proposal{{Announcement: down.ID, Area: "12346"}} // a000003: declined with it
	if err := f.props.CreateProposals(f.ctx, prop); err != nil {
		t.Fatal(err)
	}
	prop[0].State, prop[0].Session, prop[0].DecidedBy = loaxa.ProposalAccepted, morning.ID, "xa"
	if err := f.props.DecideProposal(f.ctx, prop[0]); err != nil {
		t.Fatal(err)
	}
	// a000004: a priority bulletin from above, at the head of the 2nd's.
	f.announce(loaxa.Announcement{ContentID: f.ids["1m"], Start: at(2, 4, 0), Priority: protocol.PriorityHigh, FromArea: "318"})
	show := func() string {
		t.Helper()
		items, err := f.s.AreaProgramme(f.ctx, "12346", at(1, 0, 0), at(6, 0, 0))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, it := range items {
			s := fmt.Sprintf("%s %s–%s %s", it.Start.In(vn).Format("02 15:04"), it.Announcement, it.End.In(vn).Format("15:04"), it.Session)
			if !it.CancelledAt.IsZero() {
				s += " cancelled " + it.CancelledAt.In(vn).Format("02 15:04")
			}
			out = append(out, s)
		}
		return strings.Join(out, "; ")
	}
	planned := show()

	f.clock.Set(at(3, 12, 0))
	items, err := f.sess.DeleteSession(f.ctx, morning.ID, loaxa.SessionDeletion{Force: true, By: "xa"})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 {
		t.Fatalf("delete cancelled %v, want a000001 and the proposal of a000003", items)
	}
	f.clock.Set(at(4, 10, 0))
	want := "01 05:30 a000001–05:34 s000001@20250301 cancelled 03 12:00; 01 05:34 a000002–05:35 s000001@20250301; 01 05:35 a000003–05:37 s000001@20250301; " +
		"02 05:30 a000004–05:31 s000001@20250302; 02 05:31 a000001–05:35 s000001@20250302 cancelled 03 12:00; 02 05:35 a000003–05:37 s000001@20250302; " +
		"03 05:30 a000001–05:34 s000001@20250303 cancelled 03 12:00; 03 05:34 a000003–05:36 s000001@20250303"
	if got := show(); got != want {
		t.Errorf("programme of 1–5 March after the delete on the 3rd\n got  %s\n want %s\n (before the delete: %s)", got, want, planned)
	}

	// The area may have a new session at the same times; the deleted one
	// is in no list, and does not come back into the days after.
	again := &loaxa.Session{Area: "12346", Name: "Buổi sáng", Start: "05:30", MaxMinutes: 30}
	if err := f.sess.CreateSession(f.ctx, again); err != nil {
		t.Fatalf("a new session at the deleted one's times: %v", err)
	}
	f.announce(loaxa.Announcement{ContentID: f.ids["1m"], Start: at(5, 5, 0), Session: again.ID}) // a000005
	if got, want := show(), want+"; 05 05:30 a000005–05:31 s000002@20250305"; got != want {
		t.Errorf("with a new session from the 5th\n got  %s\n want %s", got, want)
	}
	if ss, err := f.sess.FindSessions(f.ctx, loaxa.SessionFilter{}); err != nil || len(ss) != 1 || ss[0].ID != again.ID {
		t.Errorf("sessions listed: %v, %v; want only %s", ss, err, again.ID)
	}
}

// TestProgrammeAfterAStationsLastSessionWasDeleted: the programme shown
// reads a session deleted since the week before its span, so the area is
// still a station there, and a priority bulletin from above is expanded a
// week back to find the session it waits for. With none ahead after the
// delete, its plays of the days before the span were shown in it as well.
func TestProgrammeAfterAStationsLastSessionWasDeleted(t *testing.T) {
	f := newFixture(t) // 1 March 2025, 04:00
	at := func(d, h, m int) time.Time { return time.Date(2025, 3, d, h, m, 0, 0, vn) }
	morning := &loaxa.Session{Area: "12346", Name: "Buổi sáng", Start: "05:30", MaxMinutes: 30, CreatedAt: f.clock.Now()}
	if err := f.sess.CreateSession(f.ctx, morning); err != nil {
		t.Fatal(err)
	}
	f.announce(loaxa.Announcement{ContentID: f.ids["1m"], Start: at(1, 9, 0), RRule: "FREQ=DAILY", Priority: protocol.PriorityHigh, FromArea: "318"})
	f.clock.Set(at(2, 12, 0))
	if _, err := f.sess.DeleteSession(f.ctx, morning.ID, loaxa.SessionDeletion{Force: true, By: "xa"}); err != nil {
		t.Fatal(err)
	}
	f.clock.Set(at(6, 0, 0))
	if got, want := f.programme(2), "06 09:00 a000001 1m0s; 07 09:00 a000001 1m0s"; got != want {
		t.Errorf("programme of 6-7 March\n got  %s\n want %s", got, want)
	}
}

// groupedRig is a district of nodes that are not all alike, for the
// answers compiled once per group of alike nodes (an area's programme, a
// conflict check) to be compared with those compiled node by node: in
// commune 12346 (its station the district's 17:00 session, a holiday on
// Monday 30 November), tt-01 and tt-02 (named by id by a bulletin), tt-03
// enrolled at 18:00 tomorrow and tt-04 waiting for its code; in commune
// 12347, with its own weekday session at 17:30 of 2 minutes, tm-01 and
// tm-02. The district sends a bulletin every day at 06:00, tt-02 has one of
// its own then, the province a priority one every day at 10:00 (which
// waits for each node's nearest session), and 12347 places one in its
// session every weekday (each a minute long). eachNode is the same controller
// compiling node by node.
type groupedRig struct {
	*rig
	eachNode      *schedule.Scheduler
	district, own *loaxa.Session
	proposed      *loaxa.Announcement
	nodes         []string
	sessions      *bolt.SessionService
	proposals     *bolt.ProposalService
}

func newGroupedRig(t *testing.T) *groupedRig {
	r := newRig(t) // 12:00 in Hải Phòng, Saturday 28 November; tt-01, tt-02 in 12346, tm-01 in 12347
	g := &groupedRig{rig: r, sessions: bolt.NewSessionService(r.db), proposals: bolt.NewProposalService(r.db)}
	r.s.SessionService, r.s.HolidayService, r.s.ProposalService = g.sessions, bolt.NewHolidayService(r.db), g.proposals
	node := func(id, area string, secret bool) {
		n := &loaxa.Node{ID: id, Name: id, Area: area}
		if secret {
			n.SecretHash = loaxa.HashSecret("s")
		}
		r.must(t, r.s.NodeService.CreateNode(r.ctx, n))
	}
	r.clock.Set(t0.Add(30 * time.Hour)) // tt-03's board comes up tomorrow at 18:00
	node("tt-03", "12346", true)
	r.clock.Set(t0)
	node("tt-04", "12346", false)
	node("tm-02", "12347", true)
	g.nodes = []string{"tm-01", "tm-02", "tt-01", "tt-02", "tt-03", "tt-04"}
	week := t0.AddDate(0, 0, -7)
	g.district = &loaxa.Session{Area: "318", Name: "Buổi chiều", Start: "17:00", MaxMinutes: 45, CreatedAt: week}
	r.must(t, g.sessions.CreateSession(r.ctx, g.district))
	g.own = &loaxa.Session{Area: "12347", Name: "Buổi chiều xã", Start: "17:30", MaxMinutes: 2, Days: "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", CreatedAt: week}
	r.must(t, g.sessions.CreateSession(r.ctx, g.own))
	r.must(t, r.s.HolidayService.CreateHoliday(r.ctx, &loaxa.Holiday{Area: "12346", Date: "2026-11-30", Name: "Lễ hội làng"}))
	at := func(hour int) time.Time { return t0.Add(time.Duration(hour-12) * time.Hour) }
	create := func(a *loaxa.Announcement) *loaxa.Announcement {
		a.ContentID, a.Repeat = contentID, 1
		if a.Priority == "" {
			a.Priority = protocol.PriorityNormal
		}
		r.must(t, r.s.AnnouncementService.CreateAnnouncement(r.ctx, a))
		return a
	}
	create(&loaxa.Announcement{Title: "Huyện sáng", FromArea: "318", Targets: loaxa.Targets{Areas: []string{"318"}}, Start: at(6), RRule: "FREQ=DAILY"})
	create(&loaxa.Announcement{Title: "Riêng tt-02", FromArea: "12346", Targets: loaxa.Targets{Nodes: []string{"tt-02"}}, Start: at(6), RRule: "FREQ=DAILY"})
	create(&loaxa.Announcement{Title: "Tỉnh ưu tiên", FromArea: "31", Targets: loaxa.Targets{Areas: []string{"318"}}, Start: at(10), RRule: "FREQ=DAILY",
		Priority: protocol.PriorityHigh})
	create(&loaxa.Announcement{Title: "Xã chiều", FromArea: "12347", Targets: loaxa.Targets{Areas: []string{"12347"}}, Start: at(12), RRule: "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR",
		Session: g.own.ID})
	g.proposed = create(&loaxa.Announcement{Title: "Tỉnh đề nghị", FromArea: "31", Targets: loaxa.Targets{Areas: []string{"318"}}, Start: at(16), RRule: "FREQ=DAILY",
		Proposed: true})
	r.must(t, g.proposals.CreateProposals(r.ctx, []*loaxa.Proposal{{Announcement: g.proposed.ID, Area: "318"}}))

	each := schedule.NewScheduler()
	each.AreaService, each.NodeService, each.AnnouncementService, each.ContentService = r.s.AreaService, r.s.NodeService, r.s.AnnouncementService, r.s.ContentService
	each.SessionService, each.HolidayService, each.ProposalService = r.s.SessionService, r.s.HolidayService, r.s.ProposalService
	each.Clock = r.clock
	schedule.CompileEachNode(each)
	g.eachNode = each
	return g
}

// showConflicts renders conflicts one a line, in the order given.
func showConflicts(cs []loaxa.Conflict) string {
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s %s %s %v: %s", c.Kind, c.Node, c.Session, c.Occurrences, c.Message))
	}
	return strings.Join(out, "\n")
}

// TestConflictChecksCompileAlikeNodesOnce: a new bulletin's and a
// proposal's conflict checks compile the programme of alike nodes (those
// of an area no bulletin names by id) once, not node by node (0.24 s and
// 360 MB for a bulletin to a province of 10,000 nodes, BENCHMARKS.md),
// which must not change what they answer on any node: the overlaps a
// node named by id has of its own, none before a node's enrolment (tt-03,
// tomorrow 18:00), the session conflicts of a commune's own session, and
// the holiday of one commune.
func TestConflictChecksCompileAlikeNodesOnce(t *testing.T) {
	g := newGroupedRig(t)
	at := func(hour int) time.Time { return t0.Add(time.Duration(hour-12) * time.Hour) }
	kinds := map[string]int{}
	perNode := map[string]int{}
	for _, c := range []struct {
		name string
		a    loaxa.Announcement
	}{
		{"the district's every morning at 06:00", loaxa.Announcement{Targets: loaxa.Targets{Areas: []string{"318"}}, Start: at(6).Add(24 * time.Hour), RRule: "FREQ=DAILY"}},
		{"commune 12347's in its own weekday session every day", loaxa.Announcement{Targets: loaxa.Targets{Areas: []string{"12347"}}, Start: at(13), RRule: "FREQ=DAILY",
			Session: g.own.ID}},
		{"to tt-02 and 12347 on Monday at 06:00", loaxa.Announcement{Targets: loaxa.Targets{Nodes: []string{"tt-02"}, Areas: []string{"12347"}}, Start: at(6).AddDate(0, 0, 2)}},
		{"the province's priority at 10:00 every day", loaxa.Announcement{Targets: loaxa.Targets{Areas: []string{"31"}}, Start: at(10).Add(24 * time.Hour), RRule: "FREQ=DAILY",
			Priority: protocol.PriorityHigh, FromArea: "31"}},
	} {
		a := c.a
		a.Title, a.ContentID, a.Repeat = c.name, contentID, 1
		if a.Priority == "" {
			a.Priority = protocol.PriorityNormal
		}
		got, err := g.s.CheckAnnouncement(g.ctx, &a)
		g.must(t, err)
		want, err := g.eachNode.CheckAnnouncement(g.ctx, &a)
		g.must(t, err)
		if showConflicts(got) != showConflicts(want) {
			t.Errorf("%s: conflicts compiled once per group of alike nodes\n%s\nnode by node\n%s", c.name, showConflicts(got), showConflicts(want))
		}
		for _, cf := range want {
			kinds[cf.Kind]++
			perNode[cf.Node]++
		}
	}
	// The answers compared hold what grouping could get wrong.
	if kinds[loaxa.ConflictOverlap] == 0 || kinds[loaxa.ConflictNoSession] == 0 || kinds[loaxa.ConflictSessionOverflow] == 0 {
		t.Errorf("conflicts by kind %v; want overlaps, sessions not running and a session run over", kinds)
	}
	if perNode["tt-02"] <= perNode["tt-01"] || perNode["tt-03"] >= perNode["tt-01"] || perNode["tt-04"] != 0 {
		t.Errorf("conflicts by node %v; want more on tt-02 (its own bulletin), fewer on tt-03 (enrolled tomorrow) than on tt-01, none on tt-04 (no code yet)", perNode)
	}

	// The district accepts the province's proposal into its session at
	// 17:00, where the province's priority bulletin opens it on 12346's
	// nodes.
	p := &loaxa.Proposal{Announcement: g.proposed.ID, Area: "318", State: loaxa.ProposalAccepted, Session: g.district.ID, DecidedBy: "huyen"}
	got, err := g.s.CheckProposal(g.ctx, p)
	g.must(t, err)
	want, err := g.eachNode.CheckProposal(g.ctx, p)
	g.must(t, err)
	if showConflicts(got) != showConflicts(want) {
		t.Errorf("proposal: conflicts compiled once per group of alike nodes\n%s\nnode by node\n%s", showConflicts(got), showConflicts(want))
	}
}

// TestAreaProgrammeCompilesAlikeNodesOnce: the programme of an area
// compiles alike nodes once (0.24 s and 360 MB for a province of 10,000
// nodes, BENCHMARKS.md), and shows on each occurrence the nodes that play
// it, as the programme of each node does: a node named by id, one
// enrolled tomorrow at 18:00 (from its first play on), one waiting for its
// code (none), a commune with its own session and one with a holiday.
func TestAreaProgrammeCompilesAlikeNodesOnce(t *testing.T) {
	g := newGroupedRig(t)
	from := t0.Add(-36 * time.Hour) // from the day before yesterday
	to := from.AddDate(0, 0, 7)
	show := func(items []loaxa.ProgrammeItem) string {
		var out []string
		for _, it := range items {
			out = append(out, fmt.Sprintf("%s %s %s %v", it.Start.In(vn).Format("02 15:04"), it.ID, it.Session, it.Nodes))
		}
		return strings.Join(out, "\n")
	}
	for _, area := range []string{"31", "318", "12346", "12347"} {
		got, err := g.s.AreaProgramme(g.ctx, area, from, to)
		g.must(t, err)
		want, err := g.eachNode.AreaProgramme(g.ctx, area, from, to)
		g.must(t, err)
		if show(got) != show(want) {
			t.Errorf("programme of %s compiled once per group of alike nodes\n%s\nnode by node\n%s", area, show(got), show(want))
		}
	}
	// And each occurrence is on the nodes whose own programme has it.
	got, err := g.s.AreaProgramme(g.ctx, "31", from, to)
	g.must(t, err)
	on := map[string][]string{}
	for _, id := range g.nodes {
		items, err := g.s.NodeProgramme(g.ctx, id, from, to)
		g.must(t, err)
		for _, it := range items {
			on[it.ID] = append(on[it.ID], id)
		}
	}
	plays := map[string]int{}
	for _, it := range got {
		if fmt.Sprint(it.Nodes) != fmt.Sprint(on[it.ID]) {
			t.Errorf("%s on %v in the area's programme; the nodes' own programmes have it on %v", it.ID, it.Nodes, on[it.ID])
		}
		delete(on, it.ID)
		for _, n := range it.Nodes {
			plays[n]++
		}
	}
	for id, nodes := range on {
		t.Errorf("%s on %v is missing from the area's programme", id, nodes)
	}
	if plays["tt-02"] <= plays["tt-01"] || plays["tt-03"] == 0 || plays["tt-03"] >= plays["tt-01"] || plays["tt-04"] != 0 {
		t.Errorf("plays by node %v; want more on tt-02 (its own bulletin), fewer but some on tt-03 (enrolled tomorrow) than on tt-01, none on tt-04 (no code yet)", plays)
	}
}

// readNodes records the filters the scheduler reads nodes with.
type readNodes struct {
	loaxa.NodeService
	filters []loaxa.NodeFilter
}

func (r *readNodes) FindNodes(ctx context.Context, f loaxa.NodeFilter) ([]*loaxa.Node, error) {
	r.filters = append(r.filters, f)
	return r.NodeService.FindNodes(ctx, f)
}

// TestConflictCheckReadsOnlyTheBulletinsNodes: a commune's conflict check
// read every node of the controller to find those its bulletin reaches
// (FindNodes with no filter: about 18 ms of a commune's 21 ms of CPU at
// 10,000 nodes, BENCHMARKS.md). It reads the nodes of the bulletin's
// target areas and those it names by id, and still finds, on each of them
// once, the conflicts with the bulletins from above that play there.
func TestConflictCheckReadsOnlyTheBulletinsNodes(t *testing.T) {
	g := newGroupedRig(t)
	read := &readNodes{NodeService: g.s.NodeService}
	g.s.NodeService = read
	at := func(hour int) time.Time { return t0.Add(time.Duration(hour-12) * time.Hour) }
	// Commune 12346's bulletin tomorrow at 06:00, over the district's
	// daily 06:00 ("Huyện sáng"); tt-01 is named by id as well, and a
	// target area no longer in the store reaches no node.
	a := loaxa.Announcement{Title: "Xã sáng mai", FromArea: "12346", ContentID: contentID, Repeat: 1, Priority: protocol.PriorityNormal,
		Targets: loaxa.Targets{Areas: []string{"12346", "99999"}, Nodes: []string{"tt-01"}}, Start: at(6).Add(24 * time.Hour)}
	got, err := g.s.CheckAnnouncement(g.ctx, &a)
	g.must(t, err)
	for _, f := range read.filters {
		if f.Within == "" && f.IDs == nil {
			t.Errorf("the check read every node of the controller (FindNodes %+v); filters %+v", f, read.filters)
		}
	}
	want, err := g.eachNode.CheckAnnouncement(g.ctx, &a)
	g.must(t, err)
	if showConflicts(got) != showConflicts(want) {
		t.Errorf("conflicts\n%s\nnode by node\n%s", showConflicts(got), showConflicts(want))
	}
	anns, err := g.s.AnnouncementService.FindAnnouncements(g.ctx, loaxa.AnnouncementFilter{})
	g.must(t, err)
	district := anns[slices.IndexFunc(anns, func(x *loaxa.Announcement) bool { return x.Title == "Huyện sáng" })].ID
	fromAbove := map[string]int{}
	for _, c := range got {
		if slices.ContainsFunc(c.Occurrences, func(o string) bool { return strings.HasPrefix(o, district+"@") }) {
			fromAbove[c.Node]++
		}
	}
	if want := map[string]int{"tt-01": 1, "tt-02": 1}; !maps.Equal(fromAbove, want) {
		t.Errorf("conflicts with the district's 06:00 by node %v, want %v (tt-03 is enrolled at 18:00, tt-04 has no code):\n%s", fromAbove, want, showConflicts(got))
	}
}
