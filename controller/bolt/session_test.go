package bolt_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/protocol"
)

// TestConcurrentTwinSessionsStoreOne: the check against a second session
// at the same start ran before the store's transaction, so two identical
// requests at one instant both passed it and stored twins. The check is in
// the transaction: of 8 identical creates at once exactly one is stored,
// and the others fail with a *loaxa.SessionOverlapError (EConflict) naming
// it.
func TestConcurrentTwinSessionsStoreOne(t *testing.T) {
	db, _ := MustOpenDB(t)
	ctx := context.Background()
	mustArea(t, db, "318", "")
	mustArea(t, db, "12346", "318")
	s := bolt.NewSessionService(db)

	const n = 8
	sessions := make([]*loaxa.Session, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		sessions[i] = &loaxa.Session{Area: "12346", Name: "Buổi sáng", Start: "05:30", MaxMinutes: 15}
		wg.Go(func() {
			<-start
			errs[i] = s.CreateSession(ctx, sessions[i])
		})
	}
	close(start)
	wg.Wait()

	var stored string
	for i, err := range errs {
		if err == nil {
			if stored != "" {
				t.Errorf("stored %s and %s: twins", stored, sessions[i].ID)
			}
			stored = sessions[i].ID
		}
	}
	if stored == "" {
		t.Fatalf("none stored: %v", errs)
	}
	for _, err := range errs {
		if err == nil {
			continue
		}
		var overlap *loaxa.SessionOverlapError
		if !errors.As(err, &overlap) || loaxa.ErrorCode(err) != loaxa.EConflict || overlap.Session.ID != stored {
			t.Errorf("refused with %v, want a conflict naming %s", err, stored)
		}
	}
	ss, err := s.FindSessions(ctx, loaxa.SessionFilter{})
	must(t, err)
	if len(ss) != 1 {
		t.Errorf("%d sessions stored, want 1", len(ss))
	}
}

// TestSessionOverlapIsCheckedPerArea: a session overlapping another of its
// own area is refused in the store; the same times in a neighbouring
// commune, or in the district above (whose sessions its own officers
// keep), are another station's.
func TestSessionOverlapIsCheckedPerArea(t *testing.T) {
	db, _ := MustOpenDB(t)
	ctx := context.Background()
	mustArea(t, db, "318", "")
	mustArea(t, db, "12346", "318")
	mustArea(t, db, "12347", "318")
	s := bolt.NewSessionService(db)
	must(t, s.CreateSession(ctx, &loaxa.Session{Area: "12346", Name: "Buổi chiều", Start: "17:00", MaxMinutes: 30}))
	err := s.CreateSession(ctx, &loaxa.Session{Area: "12346", Name: "Bản tin tối", Start: "17:15", MaxMinutes: 30})
	wantCode(t, err, loaxa.EConflict)
	must(t, s.CreateSession(ctx, &loaxa.Session{Area: "12347", Name: "Buổi chiều", Start: "17:15", MaxMinutes: 30}))
	must(t, s.CreateSession(ctx, &loaxa.Session{Area: "318", Name: "Buổi huyện", Start: "17:15", MaxMinutes: 30}))
}

// TestSessionsMeetingYearsAheadAreRefused: sessions whose days first meet
// more than a year ahead were compared over the coming year only, and two
// sessions of 29 February, 15 minutes apart, were stored as made, and a
// daily one changed to 29 February too; both are refused, naming the
// other and the day they meet (29 February 2028). 28 February is fine.
func TestSessionsMeetingYearsAheadAreRefused(t *testing.T) {
	db, _ := MustOpenDB(t)
	ctx := context.Background()
	mustArea(t, db, "12346", "")
	s := bolt.NewSessionService(db)
	leap := &loaxa.Session{Area: "12346", Name: "Ngày nhuận", Start: "05:30", MaxMinutes: 30, Days: "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29"}
	must(t, s.CreateSession(ctx, leap))
	refused := func(what string, err error) {
		t.Helper()
		var overlap *loaxa.SessionOverlapError
		if !errors.As(err, &overlap) || loaxa.ErrorCode(err) != loaxa.EConflict || overlap.Session.ID != leap.ID ||
			overlap.From.Format("2006-01-02 15:04") != "2028-02-29 05:45" || !strings.Contains(err.Error(), "2028-02-29") {
			t.Errorf("%s: %v, want a conflict naming %s on 2028-02-29 from 05:45", what, err, leap.ID)
		}
	}
	refused("a second 29 February", s.CreateSession(ctx, &loaxa.Session{Area: "12346", Name: "Ngày nhuận 2", Start: "05:45", MaxMinutes: 30, Days: leap.Days}))
	other := &loaxa.Session{Area: "12346", Name: "28 tháng 2", Start: "05:45", MaxMinutes: 30, Days: "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=28"}
	must(t, s.CreateSession(ctx, other))
	_, _, err := s.UpdateSession(ctx, other.ID, loaxa.SessionChange{Days: &leap.Days})
	refused("28 February changed to the 29th", err)
	if got, err := s.FindSessionByID(ctx, other.ID); err != nil || got.Days != other.Days {
		t.Errorf("after a refused change: %+v, %v; want it as it was", got, err)
	}
}

// TestSessionChangedInALoopStaysSmall: a session kept one entry of earlier
// times per change of its times, for good, so a script changing them in a
// loop (here 500 times, a second apart, one night) grew the stored record
// without bound. Changes made between two instances are dropped as they
// are stored: the night leaves only the times the session ran by until it
// began, and the morning's instance runs at its new times; the times of a
// day that ran by them are kept.
func TestSessionChangedInALoopStaysSmall(t *testing.T) {
	db, clk := MustOpenDB(t)
	ctx := context.Background()
	mustArea(t, db, "12346", "")
	s := bolt.NewSessionService(db)
	vn, err := loaxa.Location("")
	must(t, err)
	// Made at 05:00, it runs at 05:30 that day (made at t0, 12:30, its
	// first instance would be the next morning's).
	clk.Set(time.Date(t0.Year(), t0.Month(), t0.Day(), 5, 0, 0, 0, vn))
	morning := &loaxa.Session{Area: "12346", Name: "Buổi sáng", Start: "05:30", MaxMinutes: 15}
	must(t, s.CreateSession(ctx, morning))
	// t0 is 12:30 in Vietnam; the night after, from 01:00.
	clk.Set(time.Date(t0.Year(), t0.Month(), t0.Day()+1, 1, 0, 0, 0, vn))
	starts := []string{"06:00", "06:15", "05:45"}
	for i := range 500 {
		_, _, err := s.UpdateSession(ctx, morning.ID, loaxa.SessionChange{Start: &starts[i%len(starts)], By: "script"})
		must(t, err)
		clk.Advance(time.Second)
	}
	got, err := s.FindSessionByID(ctx, morning.ID)
	must(t, err)
	if len(got.Earlier) != 1 || got.Earlier[0].Start != "05:30" {
		t.Fatalf("after 500 changes in one night the session keeps %d earlier times (%+v), want the 05:30 it ran by", len(got.Earlier), got.Earlier[:min(3, len(got.Earlier))])
	}
	runs, err := got.Runs(vn, clk.Now().AddDate(0, 0, -2), clk.Now().AddDate(0, 0, 1))
	must(t, err)
	var days []string
	for _, r := range runs {
		days = append(days, r.Start.In(vn).Format("02 15:04"))
	}
	if want := []string{t0.In(vn).Format("02") + " 05:30", clk.Now().In(vn).Format("02") + " " + got.Start}; !slices.Equal(days, want) {
		t.Errorf("runs %v, want %v", days, want)
	}
}

// TestForcedSessionDeleteNeedsTheEmergencyRight: a forced session delete
// cancels the items placed in the session, and it cancelled an emergency
// one for anyone who may schedule there, where cancelling that item alone
// needs the emergency right too (docs/security.md: a role may be given
// one without the other). Without d.Emergency the delete is refused
// (EForbidden) in its transaction, naming the emergency item and the
// right, and nothing changes; with it, the item is cancelled with the
// session.
func TestForcedSessionDeleteNeedsTheEmergencyRight(t *testing.T) {
	db, clk := MustOpenDB(t)
	ctx := context.Background()
	mustArea(t, db, "12346", "")
	sessions, anns := bolt.NewSessionService(db), bolt.NewAnnouncementService(db)
	evening := &loaxa.Session{Area: "12346", Name: "Buổi chiều", Start: "17:00", MaxMinutes: 45}
	must(t, sessions.CreateSession(ctx, evening))
	content := mustContent(t, db, "Bản tin")
	item := func(title string, p protocol.Priority) *loaxa.Announcement {
		a := &loaxa.Announcement{Title: title, ContentID: content, Targets: loaxa.Targets{Areas: []string{"12346"}},
			Priority: p, Start: clk.Now(), RRule: "FREQ=DAILY", Repeat: 1, State: loaxa.AnnouncementActive, Session: evening.ID,
			CreatedBy: "can-bo-a", CreatedAt: clk.Now()}
		must(t, anns.CreateAnnouncement(ctx, a))
		return a
	}
	news, flood := item("Bản tin chiều", protocol.PriorityNormal), item("Cảnh báo lũ", protocol.PriorityEmergency)
	states := func() []string {
		var out []string
		for _, id := range []string{news.ID, flood.ID} {
			a, err := anns.FindAnnouncementByID(ctx, id)
			must(t, err)
			out = append(out, a.State)
		}
		return out
	}

	_, err := sessions.DeleteSession(ctx, evening.ID, loaxa.SessionDeletion{Force: true, By: "can-bo-a"})
	var held *loaxa.SessionItemsError
	if !errors.As(err, &held) || loaxa.ErrorCode(err) != loaxa.EForbidden || held.Right != loaxa.ActionEmergency ||
		len(held.Items) != 1 || held.Items[0].Announcement != flood.ID || !strings.Contains(loaxa.ErrorMessage(err), flood.ID+" (Cảnh báo lũ)") {
		t.Fatalf("forced delete without the emergency right: %v, want EForbidden naming %s and the right emergency", err, flood.ID)
	}
	if _, err := sessions.FindSessionByID(ctx, evening.ID); err != nil {
		t.Errorf("the refused delete took the session: %v", err)
	}
	if got := states(); !slices.Equal(got, []string{loaxa.AnnouncementActive, loaxa.AnnouncementActive}) {
		t.Errorf("after the refused delete the items are %v, want both active", got)
	}

	items, err := sessions.DeleteSession(ctx, evening.ID, loaxa.SessionDeletion{Force: true, By: "can-bo-a", Emergency: true})
	must(t, err)
	if len(items) != 2 {
		t.Errorf("forced delete with the right cancelled %+v, want both items", items)
	}
	if got := states(); !slices.Equal(got, []string{loaxa.AnnouncementCancelled, loaxa.AnnouncementCancelled}) {
		t.Errorf("after the forced delete the items are %v, want both cancelled", got)
	}
}

// TestSessionChangeIsCheckedAgainstTheOthers: an officer moves a session
// (PATCH) instead of deleting it and making it again. The change is
// checked as a new session is, against the area's other sessions, over
// the year from the change (a session made more than a year ago was
// compared only over its first year), never against itself; a refused
// change stores nothing. A change of its times keeps the times it had
// until then (for the instance under way, and the programme of the days
// before), for good; a new name alone keeps none.
func TestSessionChangeIsCheckedAgainstTheOthers(t *testing.T) {
	db, clk := MustOpenDB(t)
	ctx := context.Background()
	mustArea(t, db, "12346", "")
	mustArea(t, db, "12347", "")
	s := bolt.NewSessionService(db)
	morning := &loaxa.Session{Area: "12346", Name: "Buổi sáng", Start: "05:30", MaxMinutes: 15, CreatedAt: clk.Now().AddDate(-2, 0, 0)}
	evening := &loaxa.Session{Area: "12346", Name: "Buổi chiều", Start: "17:00", MaxMinutes: 30}
	must(t, s.CreateSession(ctx, morning))
	must(t, s.CreateSession(ctx, evening))
	must(t, s.CreateSession(ctx, &loaxa.Session{Area: "12347", Name: "Buổi sáng", Start: "06:00", MaxMinutes: 30}))
	ptr := func(v string) *string { return &v }
	minutes := func(v int) *int { return &v }

	_, _, err := s.UpdateSession(ctx, morning.ID, loaxa.SessionChange{Start: ptr("16:45"), MaxMinutes: minutes(30), By: "can-bo-a"})
	var overlap *loaxa.SessionOverlapError
	if !errors.As(err, &overlap) || loaxa.ErrorCode(err) != loaxa.EConflict || overlap.Session.ID != evening.ID {
		t.Fatalf("moved onto the evening session: %v, want a conflict naming %s", err, evening.ID)
	}
	if got, err := s.FindSessionByID(ctx, morning.ID); err != nil || got.Start != "05:30" || got.MaxMinutes != 15 || got.Earlier != nil {
		t.Errorf("after a refused change: %+v, %v; want it as it was", got, err)
	}
	_, _, err = s.UpdateSession(ctx, "s999999", loaxa.SessionChange{Start: ptr("06:00")})
	wantCode(t, err, loaxa.ENotFound)

	// Over its own old times, and at another commune's: fine.
	changed := clk.Now()
	before, after, err := s.UpdateSession(ctx, morning.ID, loaxa.SessionChange{Start: ptr("06:00"), MaxMinutes: minutes(30), By: "can-bo-a"})
	must(t, err)
	if before.Start != "05:30" || after.Start != "06:00" || after.MaxMinutes != 30 || after.UpdatedBy != "can-bo-a" || !after.UpdatedAt.Equal(changed) {
		t.Errorf("change gave %+v -> %+v", before, after)
	}
	if want := []loaxa.SessionTimes{{Start: "05:30", MaxMinutes: 15, Until: changed}}; !slices.EqualFunc(after.Earlier, want, sameTimes) {
		t.Errorf("earlier times %+v, want %+v", after.Earlier, want)
	}
	_, after, err = s.UpdateSession(ctx, morning.ID, loaxa.SessionChange{Name: ptr("Buổi sáng mùa đông")})
	must(t, err)
	if len(after.Earlier) != 1 || after.Name != "Buổi sáng mùa đông" {
		t.Errorf("after a new name: %+v, want one earlier times kept", after)
	}
	// A year on, the first times are still kept.
	clk.Advance(366 * 24 * time.Hour)
	_, after, err = s.UpdateSession(ctx, morning.ID, loaxa.SessionChange{Start: ptr("05:45")})
	must(t, err)
	want := []loaxa.SessionTimes{{Start: "05:30", MaxMinutes: 15, Until: changed}, {Start: "06:00", MaxMinutes: 30, Until: clk.Now()}}
	if !slices.EqualFunc(after.Earlier, want, sameTimes) {
		t.Errorf("earlier times a year on %+v, want %+v", after.Earlier, want)
	}
	stored, err := s.FindSessionByID(ctx, morning.ID)
	must(t, err)
	if stored.Start != "05:45" || !slices.EqualFunc(stored.Earlier, want, sameTimes) {
		t.Errorf("stored %+v", stored)
	}
}

func sameTimes(a, b loaxa.SessionTimes) bool {
	return a.Start == b.Start && a.MaxMinutes == b.MaxMinutes && a.Days == b.Days && a.Until.Equal(b.Until)
}

// TestConcurrentSessionChangesStoreOne: two officers at once move two
// sessions of a commune into the same free slot. Each change is checked
// in the transaction that stores it, so only one session gets the slot
// and the other's changes fail with a conflict naming it.
func TestConcurrentSessionChangesStoreOne(t *testing.T) {
	db, _ := MustOpenDB(t)
	ctx := context.Background()
	mustArea(t, db, "12346", "")
	s := bolt.NewSessionService(db)
	a := &loaxa.Session{Area: "12346", Name: "Buổi sáng", Start: "05:00", MaxMinutes: 15}
	b := &loaxa.Session{Area: "12346", Name: "Bản tin sáng", Start: "06:00", MaxMinutes: 15}
	must(t, s.CreateSession(ctx, a))
	must(t, s.CreateSession(ctx, b))

	const n = 8
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	slot := "07:00"
	for i := range n {
		id := []string{a.ID, b.ID}[i%2]
		wg.Go(func() {
			<-start
			_, _, errs[i] = s.UpdateSession(ctx, id, loaxa.SessionChange{Start: &slot})
		})
	}
	close(start)
	wg.Wait()

	moved := map[string]bool{}
	for i, err := range errs {
		id := []string{a.ID, b.ID}[i%2]
		var overlap *loaxa.SessionOverlapError
		switch {
		case err == nil:
			moved[id] = true
		case !errors.As(err, &overlap) || overlap.Session.ID == id:
			t.Errorf("change of %s refused with %v, want a conflict naming the other", id, err)
		}
	}
	if len(moved) != 1 {
		t.Fatalf("sessions moved to %s: %v, want exactly one", slot, moved)
	}
	ss, err := s.FindSessions(ctx, loaxa.SessionFilter{})
	must(t, err)
	var at []string
	for _, x := range ss {
		if x.Start == slot {
			at = append(at, x.ID)
		}
	}
	if len(at) != 1 {
		t.Errorf("sessions stored at %s: %v, want one", slot, at)
	}
}

// TestDeletedSessionIsKeptOnlyForThePastDays: a deleted session was
// removed, so the programme of the days it ran lost its bulletins. One
// that ran is kept marked deleted (when, by whom), listed only with
// DeletedSince, and found nowhere else: not by id, not to change or
// delete again, not in the area's overlap check, not to accept a proposal
// into. The proposal it declines keeps the session and when it was
// accepted into it. One that never ran is removed as before.
func TestDeletedSessionIsKeptOnlyForThePastDays(t *testing.T) {
	db, clk := MustOpenDB(t) // 1 March, 12:30 in Vietnam
	ctx := context.Background()
	mustArea(t, db, "31", "")
	mustArea(t, db, "12346", "31")
	sessions, anns, props := bolt.NewSessionService(db), bolt.NewAnnouncementService(db), bolt.NewProposalService(db)
	evening := &loaxa.Session{Area: "12346", Name: "Buổi chiều", Start: "17:00", MaxMinutes: 45}
	late := &loaxa.Session{Area: "12346", Name: "Buổi tối", Start: "20:00", MaxMinutes: 15}
	must(t, sessions.CreateSession(ctx, evening))
	must(t, sessions.CreateSession(ctx, late))
	down := &loaxa.Announcement{Title: "Tin huyện", ContentID: mustContent(t, db, "Tin huyện"), Targets: loaxa.Targets{Areas: []string{"12346"}},
		Priority: protocol.PriorityNormal, Start: clk.Now(), RRule: "FREQ=DAILY", Repeat: 1, State: loaxa.AnnouncementActive,
		Proposed: true, FromArea: "31", CreatedAt: clk.Now()}
	must(t, anns.CreateAnnouncement(ctx, down))
	ps := []*loaxa.Proposal{{Announcement: down.ID, Area: "12346"}}
	must(t, props.CreateProposals(ctx, ps))
	ps[0].State, ps[0].Session, ps[0].DecidedBy = loaxa.ProposalAccepted, evening.ID, "xa"
	must(t, props.DecideProposal(ctx, ps[0]))
	accepted := clk.Now()

	// The late session never ran: it goes.
	_, err := sessions.DeleteSession(ctx, late.ID, loaxa.SessionDeletion{By: "xa"})
	must(t, err)
	clk.Set(t0.Add(48 * time.Hour))
	deleted := clk.Now()
	_, err = sessions.DeleteSession(ctx, evening.ID, loaxa.SessionDeletion{Force: true, By: "xa"})
	must(t, err)

	if ss, err := sessions.FindSessions(ctx, loaxa.SessionFilter{}); err != nil || len(ss) != 0 {
		t.Errorf("sessions listed after both deletes: %v, %v; want none", ss, err)
	}
	ss, err := sessions.FindSessions(ctx, loaxa.SessionFilter{DeletedSince: t0})
	must(t, err)
	if len(ss) != 1 || ss[0].ID != evening.ID || !ss[0].DeletedAt.Equal(deleted) || ss[0].DeletedBy != "xa" {
		t.Errorf("deleted since 1 March: %+v, want only %s, deleted at %s by xa", ss, evening.ID, deleted)
	}
	if ss, err := sessions.FindSessions(ctx, loaxa.SessionFilter{DeletedSince: deleted.Add(time.Second)}); err != nil || len(ss) != 0 {
		t.Errorf("deleted since after the delete: %v, %v; want none", ss, err)
	}
	_, err = sessions.FindSessionByID(ctx, evening.ID)
	wantCode(t, err, loaxa.ENotFound)
	name := "Buổi chiều mới"
	_, _, err = sessions.UpdateSession(ctx, evening.ID, loaxa.SessionChange{Name: &name})
	wantCode(t, err, loaxa.ENotFound)
	_, err = sessions.DeleteSession(ctx, evening.ID, loaxa.SessionDeletion{Force: true})
	wantCode(t, err, loaxa.ENotFound)
	must(t, sessions.CreateSession(ctx, &loaxa.Session{Area: "12346", Name: "Buổi chiều", Start: "17:00", MaxMinutes: 45}))

	p, err := props.FindProposalByID(ctx, ps[0].ID)
	must(t, err)
	if p.State != loaxa.ProposalDeclined || p.Reason != loaxa.CancelSessionDeleted || p.Session != evening.ID || !p.AcceptedAt.Equal(accepted) {
		t.Errorf("proposal after the delete: %+v, want declined (%s), session %s accepted at %s", p, loaxa.CancelSessionDeleted, evening.ID, accepted)
	}
	again := &loaxa.Announcement{Title: "Tin huyện 2", ContentID: down.ContentID, Targets: down.Targets, Priority: protocol.PriorityNormal,
		Start: clk.Now(), Repeat: 1, State: loaxa.AnnouncementActive, Proposed: true, FromArea: "31", CreatedAt: clk.Now()}
	must(t, anns.CreateAnnouncement(ctx, again))
	ps = []*loaxa.Proposal{{Announcement: again.ID, Area: "12346"}}
	must(t, props.CreateProposals(ctx, ps))
	ps[0].State, ps[0].Session, ps[0].DecidedBy = loaxa.ProposalAccepted, evening.ID, "xa"
	wantCode(t, props.DecideProposal(ctx, ps[0]), loaxa.EInvalid)
}

// storeSessionUnchecked writes sess into db's store as it is, unchecked,
// as an older version, an old backup or a hand-mended store may have
// left it.
func storeSessionUnchecked(t *testing.T, db *bolt.DB, sess *loaxa.Session) {
	t.Helper()
	must(t, db.Close())
	raw, err := bbolt.Open(db.Path(), 0o600, nil)
	must(t, err)
	err = raw.Update(func(tx *bbolt.Tx) error {
		data, err := json.Marshal(sess)
		if err != nil {
			return err
		}
		return tx.Bucket([]byte("sessions")).Put([]byte(sess.ID), data)
	})
	must(t, errors.Join(err, raw.Close(), db.Open()))
}

// TestSessionWithRefusedDaysCanBeMended: a session whose stored days this
// version refuses (FREQ=HOURLY, from an older version) could not be given
// valid days: the change kept the old days as its earlier times, and
// checking those (Compact) refused the change with 400 of the old days,
// which the officer was replacing. The change is stored; the refused days
// stay as its earlier times (for what ran by them), which name no
// instance, so the session runs by the new days from the change on, and
// it can be deleted (kept, marked deleted: it ran by the old days).
func TestSessionWithRefusedDaysCanBeMended(t *testing.T) {
	db, clk := MustOpenDB(t) // 1 March, 12:30 in Vietnam
	ctx := context.Background()
	mustArea(t, db, "12346", "")
	s := bolt.NewSessionService(db)
	vn, err := loaxa.Location("")
	must(t, err)
	created := clk.Now().AddDate(0, 0, -10)
	storeSessionUnchecked(t, db, &loaxa.Session{ID: "s000009", Area: "12346", Name: "Buổi sáng", Start: "05:30", MaxMinutes: 30,
		Days: "FREQ=HOURLY", CreatedBy: "admin", CreatedAt: created})

	days := "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"
	_, after, err := s.UpdateSession(ctx, "s000009", loaxa.SessionChange{Days: &days, By: "can-bo-a"})
	must(t, err)
	if after.Days != days || len(after.Earlier) != 1 || after.Earlier[0].Days != "FREQ=HOURLY" || !after.Earlier[0].Until.Equal(clk.Now()) {
		t.Fatalf("after the change: days %q, earlier %+v; want %q, the refused days kept until %s", after.Days, after.Earlier, days, clk.Now())
	}
	got, err := s.FindSessionByID(ctx, "s000009")
	must(t, err)
	// 1 March 2025 is a Saturday: the next runs are Monday and Tuesday's.
	runs, err := got.Runs(vn, clk.Now(), clk.Now().AddDate(0, 0, 3))
	must(t, err)
	var starts []string
	for _, r := range runs {
		starts = append(starts, r.Start.In(vn).Format("2006-01-02 15:04"))
	}
	if want := []string{"2025-03-03 05:30", "2025-03-04 05:30"}; !slices.Equal(starts, want) {
		t.Errorf("runs after the change %v, want %v", starts, want)
	}
	// The days the refused rule governed name no instance: which ran is
	// unknown to this version.
	if runs, err := got.Runs(vn, created, clk.Now()); err != nil || len(runs) != 0 {
		t.Errorf("runs before the change: %v, %v; want none", runs, err)
	}

	clk.Advance(time.Hour)
	_, err = s.DeleteSession(ctx, "s000009", loaxa.SessionDeletion{By: "can-bo-a"})
	must(t, err)
	ss, err := s.FindSessions(ctx, loaxa.SessionFilter{DeletedSince: created})
	must(t, err)
	if len(ss) != 1 || ss[0].ID != "s000009" || !ss[0].Deleted() {
		t.Errorf("deleted sessions %+v; want s000009 kept marked deleted, for the days it ran by its old days", ss)
	}
}

// BenchmarkFindDeletedSessions times the read the programme routes make
// to name the deleted sessions its items were in (deleted_sessions): the
// whole sessions bucket of a province, 100 communes of 3 sessions, and
// as many deleted ones kept for past days.
func BenchmarkFindDeletedSessions(b *testing.B) {
	db, clk := MustOpenDB(b)
	ctx := context.Background()
	s := bolt.NewSessionService(db)
	mustArea(b, db, "31", "")
	for c := range 100 {
		area := fmt.Sprintf("%05d", 11000+c)
		mustArea(b, db, area, "31")
		for i, start := range []string{"05:30", "11:00", "17:00", "06:30", "12:00", "18:00"} {
			sess := &loaxa.Session{Area: area, Name: "Buổi " + start, Start: start, MaxMinutes: 30, CreatedBy: "admin", CreatedAt: clk.Now().AddDate(0, 0, -30)}
			must(b, s.CreateSession(ctx, sess))
			if i >= 3 {
				_, err := s.DeleteSession(ctx, sess.ID, loaxa.SessionDeletion{By: "admin"})
				must(b, err)
			}
		}
	}
	since := clk.Now().AddDate(0, 0, -7)
	b.ResetTimer()
	for b.Loop() {
		ss, err := s.FindSessions(ctx, loaxa.SessionFilter{DeletedSince: since})
		if err != nil || len(ss) != 600 {
			b.Fatalf("%d sessions, %v; want 600", len(ss), err)
		}
	}
}

// TestRenameOfASessionInAnOldOverlapIsStored: two sessions of an area
// overlapping in a store from an older version (or an old backup) are
// listed with their overlap so the officer can mend it; renaming one of
// them, its times left as they were, answered 409 with that overlap, as
// if the rename had made it. A change that leaves the times alone makes
// no overlap and is stored; a change of times is still checked.
func TestRenameOfASessionInAnOldOverlapIsStored(t *testing.T) {
	db, clk := MustOpenDB(t)
	ctx := context.Background()
	mustArea(t, db, "12346", "")
	s := bolt.NewSessionService(db)
	created := clk.Now().AddDate(0, 0, -10)
	storeSessionUnchecked(t, db, &loaxa.Session{ID: "s000001", Area: "12346", Name: "Buổi sáng", Start: "05:30", MaxMinutes: 30, CreatedBy: "admin", CreatedAt: created})
	storeSessionUnchecked(t, db, &loaxa.Session{ID: "s000002", Area: "12346", Name: "Tin sáng", Start: "05:45", MaxMinutes: 30, CreatedBy: "admin", CreatedAt: created})

	name := "Buổi sáng sớm"
	_, after, err := s.UpdateSession(ctx, "s000001", loaxa.SessionChange{Name: &name, By: "can-bo-a"})
	if err != nil {
		t.Fatalf("rename of a session in an overlap the store already held: %v", err)
	}
	if after.Name != name || after.Start != "05:30" || len(after.Earlier) != 0 {
		t.Errorf("after the rename: %+v; want the new name, the times as they were, nothing earlier", after)
	}
	start := "05:40"
	_, _, err = s.UpdateSession(ctx, "s000001", loaxa.SessionChange{Start: &start, By: "can-bo-a"})
	var overlap *loaxa.SessionOverlapError
	if !errors.As(err, &overlap) {
		t.Errorf("a change of times into the other session: %v, want the overlap refused", err)
	}
}

// TestSessionMadeAfterItsStartAndDeletedThatDayIsNotKept: a session made
// at 17:50 for 17:00 and 45 minutes had an instance at 17:00 that day by
// its rule, so deleted that evening it was kept for good as a session that
// had run, and the programme of that day named it; it never ran, and goes.
// One made at 17:40, within its window, ran the rest of it: it is kept.
func TestSessionMadeAfterItsStartAndDeletedThatDayIsNotKept(t *testing.T) {
	db, clk := MustOpenDB(t)
	ctx := context.Background()
	mustArea(t, db, "12346", "")
	s := bolt.NewSessionService(db)
	vn, err := loaxa.Location("")
	must(t, err)
	clk.Set(time.Date(t0.Year(), t0.Month(), t0.Day(), 17, 40, 0, 0, vn))
	within := &loaxa.Session{Area: "12346", Name: "Buổi chiều", Start: "17:00", MaxMinutes: 45}
	must(t, s.CreateSession(ctx, within))
	clk.Set(time.Date(t0.Year(), t0.Month(), t0.Day(), 17, 46, 0, 0, vn))
	_, err = s.DeleteSession(ctx, within.ID, loaxa.SessionDeletion{By: "xa"})
	must(t, err)
	clk.Set(time.Date(t0.Year(), t0.Month(), t0.Day(), 17, 50, 0, 0, vn))
	evening := &loaxa.Session{Area: "12346", Name: "Buổi chiều", Start: "17:00", MaxMinutes: 45}
	must(t, s.CreateSession(ctx, evening))
	clk.Set(time.Date(t0.Year(), t0.Month(), t0.Day(), 20, 0, 0, 0, vn))
	_, err = s.DeleteSession(ctx, evening.ID, loaxa.SessionDeletion{By: "xa"})
	must(t, err)
	ss, err := s.FindSessions(ctx, loaxa.SessionFilter{DeletedSince: t0.AddDate(0, 0, -1)})
	if err != nil || len(ss) != 1 || ss[0].ID != within.ID {
		t.Errorf("deleted sessions kept: %+v, %v; want only %s, made within its window: the one made after it never ran", ss, err, within.ID)
	}
}
