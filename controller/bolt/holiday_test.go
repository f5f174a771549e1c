package bolt_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"loaxa.vn/controller/bolt"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/internal/clock"
)

// TestDeletedHolidayIsKeptForSessionsUnderWay: a holiday deleted during
// the session it fell on was forgotten at once, and the scheduler repacked
// that session as if the day had never been one, moving the item on air.
// A deleted holiday leaves the calendar (not listed, 404 to delete again,
// the date free for a new one) but is kept, with when it went, for
// loaxa.HolidayDeletedKept, and listed with DeletedSince; then it is purged.
func TestDeletedHolidayIsKeptForSessionsUnderWay(t *testing.T) {
	db, clk := MustOpenDB(t)
	ctx := context.Background()
	mustArea(t, db, "hp", "")
	s := bolt.NewHolidayService(db)
	h := &loaxa.Holiday{Area: "hp", Date: "2026-09-02", Name: "Quốc khánh"}
	must(t, s.CreateHoliday(ctx, h))

	clk.Advance(time.Hour)
	deleted := clk.Now()
	must(t, s.DeleteHoliday(ctx, h.ID))
	if hs, err := s.FindHolidays(ctx, loaxa.HolidayFilter{}); err != nil || len(hs) != 0 {
		t.Errorf("calendar after the delete: %v, %v; want nothing", hs, err)
	}
	if err := s.DeleteHoliday(ctx, h.ID); loaxa.ErrorCode(err) != loaxa.ENotFound {
		t.Errorf("deleting it again: %v, want %s", err, loaxa.ENotFound)
	}
	again := &loaxa.Holiday{Area: "hp", Date: "2026-09-02", Name: "Quốc khánh"}
	must(t, s.CreateHoliday(ctx, again))
	hs, err := s.FindHolidays(ctx, loaxa.HolidayFilter{DeletedSince: deleted})
	must(t, err)
	if len(hs) != 2 || !hs[0].DeletedAt.Equal(deleted) && !hs[1].DeletedAt.Equal(deleted) {
		t.Errorf("with the deleted ones: %+v; want the new one and the deleted one, deleted at %s", hs, deleted)
	}
	if hs, err := s.FindHolidays(ctx, loaxa.HolidayFilter{DeletedSince: deleted.Add(time.Second)}); err != nil || len(hs) != 1 || hs[0].ID != again.ID {
		t.Errorf("deleted since after it went: %+v, %v; want only the new one", hs, err)
	}

	clk.Advance(loaxa.HolidayDeletedKept + time.Second)
	must(t, s.DeleteHoliday(ctx, again.ID)) // purges the first
	hs, err = s.FindHolidays(ctx, loaxa.HolidayFilter{DeletedSince: deleted})
	must(t, err)
	if len(hs) != 1 || hs[0].ID != again.ID {
		t.Errorf("after %s: %+v; want only the one deleted just now", loaxa.HolidayDeletedKept, hs)
	}
}

// TestHolidayThatStoodOnItsDayIsKept: a deleted holiday was purged 8 days
// after its delete, however it had stood, and the programme of its day
// then showed the bulletins it had kept off the air. One deleted during
// or after its day is kept for good (listed with DeletedSince, never on
// the calendar); one deleted before its day began changed nothing that
// played and still goes after 8 days.
func TestHolidayThatStoodOnItsDayIsKept(t *testing.T) {
	db, clk := MustOpenDB(t) // 1 March 2025
	ctx := context.Background()
	mustArea(t, db, "hp", "")
	s := bolt.NewHolidayService(db)
	stood := &loaxa.Holiday{Area: "hp", Date: "2025-03-02", Name: "Nghỉ bù"}
	never := &loaxa.Holiday{Area: "hp", Date: "2025-09-02", Name: "Quốc khánh (nhầm)"}
	must(t, s.CreateHoliday(ctx, stood))
	must(t, s.CreateHoliday(ctx, never))
	must(t, s.DeleteHoliday(ctx, never.ID))
	clk.Advance(3 * 24 * time.Hour)
	must(t, s.DeleteHoliday(ctx, stood.ID))
	clk.Advance(loaxa.HolidayDeletedKept + 24*time.Hour)
	must(t, s.CreateHoliday(ctx, &loaxa.Holiday{Area: "hp", Date: "2025-04-30", Name: "Giải phóng miền Nam"})) // purges
	hs, err := s.FindHolidays(ctx, loaxa.HolidayFilter{DeletedSince: t0.Add(-time.Hour)})
	must(t, err)
	var ids []string
	for _, h := range hs {
		ids = append(ids, h.ID+" "+h.Date)
	}
	if want := []string{stood.ID + " 2025-03-02", "h000003 2025-04-30"}; !slices.Equal(ids, want) {
		t.Errorf("holidays with the deleted ones, %s after: %v, want %v", loaxa.HolidayDeletedKept, ids, want)
	}
	if hs, err := s.FindHolidays(ctx, loaxa.HolidayFilter{}); err != nil || len(hs) != 1 {
		t.Errorf("calendar: %+v, %v; want only the standing one", hs, err)
	}
}

// TestHolidayAddedAndDeletedInALoopStaysSmall: a script adding and
// deleting a holiday in a loop during its own day (here 500 times, each
// pair 10 ms, 20 ms apart) kept every pair for good, as each stood on its
// day. A pair that stood at no whole second, where the scheduler judges
// holidays (plays of recurring bulletins and session instances start at
// whole seconds), changed no programme and is removed as it is deleted;
// one that stood across a second is kept, as is one that stood its day.
func TestHolidayAddedAndDeletedInALoopStaysSmall(t *testing.T) {
	db, clk := MustOpenDB(t) // 1 March 2025, 05:30 UTC
	ctx := context.Background()
	mustArea(t, db, "hp", "")
	s := bolt.NewHolidayService(db)
	clk.Set(time.Date(2025, 3, 2, 3, 0, 0, int(time.Millisecond), time.UTC)) // 10:00:00.001 on the 2nd in Vietnam
	for range 500 {
		h := &loaxa.Holiday{Area: "hp", Date: "2025-03-02", Name: "Nghỉ bù"}
		must(t, s.CreateHoliday(ctx, h))
		clk.Advance(10 * time.Millisecond)
		must(t, s.DeleteHoliday(ctx, h.ID))
		clk.Advance(10 * time.Millisecond)
	}
	// One across a whole second: 10:00:10.995 to 10:00:11.005.
	clk.Set(time.Date(2025, 3, 2, 3, 0, 10, 995*int(time.Millisecond), time.UTC))
	across := &loaxa.Holiday{Area: "hp", Date: "2025-03-02", Name: "Nghỉ bù"}
	must(t, s.CreateHoliday(ctx, across))
	clk.Advance(10 * time.Millisecond)
	must(t, s.DeleteHoliday(ctx, across.ID))
	// One added at a whole second and deleted at once stood at none.
	clk.Set(time.Date(2025, 3, 2, 3, 0, 20, 0, time.UTC))
	instant := &loaxa.Holiday{Area: "hp", Date: "2025-03-02", Name: "Nghỉ bù"}
	must(t, s.CreateHoliday(ctx, instant))
	must(t, s.DeleteHoliday(ctx, instant.ID))
	// Past the purge: only what stood at a whole second is left.
	clk.Advance(loaxa.HolidayDeletedKept + 24*time.Hour)
	must(t, s.CreateHoliday(ctx, &loaxa.Holiday{Area: "hp", Date: "2025-04-30", Name: "Giải phóng miền Nam"}))
	hs, err := s.FindHolidays(ctx, loaxa.HolidayFilter{DeletedSince: t0})
	must(t, err)
	var ids []string
	for _, h := range hs {
		ids = append(ids, h.ID+" "+h.Date)
	}
	if want := []string{across.ID + " 2025-03-02", "h000503 2025-04-30"}; !slices.Equal(ids, want) {
		t.Errorf("holidays kept after 500 pairs in 10 s, one across a second and one of no time: %d %v, want %v", len(ids), ids[:min(5, len(ids))], want)
	}
}

// BenchmarkHolidayAddAndDelete: an officer (or a script) adding a holiday
// and deleting it again, one pair per iteration, in a province's calendar:
// 100 communes, each with 20 holidays a year for 10 years, those of the
// past years deleted after they stood (kept for good, for their days'
// programme): 20,000 records.
func BenchmarkHolidayAddAndDelete(b *testing.B) {
	db, clk, communes := provinceCalendar(b)
	s := bolt.NewHolidayService(db)
	ctx := context.Background()
	clk.Set(time.Date(2026, 3, 2, 3, 0, 0, 0, time.UTC))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		h := &loaxa.Holiday{Area: communes[i%len(communes)], Date: "2026-09-03", Name: "Nghỉ bù Quốc khánh"}
		must(b, s.CreateHoliday(ctx, h))
		clk.Advance(time.Second)
		must(b, s.DeleteHoliday(ctx, h.ID))
		clk.Advance(time.Second)
	}
}

// BenchmarkFindHolidays: the whole calendar of BenchmarkHolidayAddAndDelete,
// deleted ones of the last 8 days included, as each scheduler pass reads
// it (and the delete of one holiday did, to find it).
func BenchmarkFindHolidays(b *testing.B) {
	db, clk, _ := provinceCalendar(b)
	s := bolt.NewHolidayService(db)
	ctx := context.Background()
	clk.Set(time.Date(2026, 3, 2, 3, 0, 0, 0, time.UTC))
	b.ReportAllocs()
	for b.Loop() {
		hs, err := s.FindHolidays(ctx, loaxa.HolidayFilter{DeletedSince: clk.Now().Add(-loaxa.HolidayDeletedKept)})
		if err != nil || len(hs) != 2000 {
			b.Fatalf("%d holidays, %v; want the 2,000 of this year", len(hs), err)
		}
	}
}

// provinceCalendar is a store with a province's calendar: 100 communes,
// each with 20 holidays a year for 10 years, those of the past years
// deleted after they stood (kept for good, for their days' programme):
// 20,000 records.
func provinceCalendar(b *testing.B) (*bolt.DB, *clock.Fake, []string) {
	db, clk := MustOpenDB(b)
	mustArea(b, db, "31", "")
	var communes []string
	for i := range 100 {
		id := fmt.Sprintf("1%04d", i)
		mustArea(b, db, id, "31")
		communes = append(communes, id)
	}
	var hs []*loaxa.Holiday
	for y := 2016; y < 2026; y++ {
		for _, c := range communes {
			for d := range 20 {
				h := &loaxa.Holiday{Area: c, Date: fmt.Sprintf("%d-%02d-%02d", y, 1+d/2, 1+d), Name: "Lễ hội làng", CreatedBy: "xa",
					CreatedAt: time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)}
				if y < 2025 {
					h.DeletedAt = time.Date(y, 12, 31, 0, 0, 0, 0, time.UTC)
				}
				hs = append(hs, h)
			}
		}
	}
	must(b, bolt.SeedHolidays(db, hs))
	return db, clk, communes
}
