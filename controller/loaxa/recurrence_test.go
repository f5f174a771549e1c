package loaxa_test

import (
	"strings"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
)

// TestRecurrence expands rules the way stations use them, in Vietnam (no
// DST) and in New York (DST changes on 2025-03-09 and 2025-11-02): the
// local time of day stays put across a DST change, so the UTC instant moves.
func TestRecurrence(t *testing.T) {
	for _, tc := range []struct {
		name    string
		zone    string
		start   string // local, 2006-01-02 15:04
		rule    string
		until   string
		count   int
		exdates []string
		from    string // local day the window starts (00:00)
		days    int
		want    string // local times, space separated
	}{
		{name: "every day at 05:30", zone: "Asia/Ho_Chi_Minh", start: "2025-03-01 05:30", rule: "FREQ=DAILY",
			from: "2025-03-01", days: 3, want: "03-01 05:30 03-02 05:30 03-03 05:30"},
		{name: "05:30 and 17:00 are two rules", zone: "Asia/Ho_Chi_Minh", start: "2025-03-01 05:30",
			rule: "FREQ=DAILY;BYHOUR=5;BYMINUTE=30\nRRULE:FREQ=DAILY;BYHOUR=17;BYMINUTE=0",
			from: "2025-03-01", days: 2, want: "03-01 05:30 03-01 17:00 03-02 05:30 03-02 17:00"},
		{name: "Mon-Fri 06:00 until 31 Dec", zone: "Asia/Ho_Chi_Minh", start: "2025-12-25 06:00", rule: "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR",
			until: "2025-12-31T23:59:59+07:00", from: "2025-12-25", days: 14, want: "12-25 06:00 12-26 06:00 12-29 06:00 12-30 06:00 12-31 06:00"},
		{name: "first Monday of the month", zone: "Asia/Ho_Chi_Minh", start: "2025-01-06 07:00", rule: "FREQ=MONTHLY;BYDAY=1MO",
			from: "2025-01-01", days: 100, want: "01-06 07:00 02-03 07:00 03-03 07:00 04-07 07:00"},
		{name: "count counts from the first play", zone: "Asia/Ho_Chi_Minh", start: "2025-03-01 05:30", rule: "FREQ=DAILY", count: 3,
			from: "2025-03-02", days: 10, want: "03-02 05:30 03-03 05:30"},
		{name: "exception date and exception instant", zone: "Asia/Ho_Chi_Minh", start: "2025-09-01 05:30", rule: "FREQ=DAILY",
			exdates: []string{"2025-09-02", "2025-09-04T05:30:00+07:00"}, from: "2025-09-01", days: 5,
			want: "09-01 05:30 09-03 05:30 09-05 05:30"},
		{name: "one-off", zone: "Asia/Ho_Chi_Minh", start: "2025-03-01 05:30",
			from: "2025-03-01", days: 3, want: "03-01 05:30"},
		{name: "DST starts: 05:30 stays 05:30", zone: "America/New_York", start: "2025-03-07 05:30", rule: "FREQ=DAILY",
			from: "2025-03-07", days: 4, want: "03-07 05:30 03-08 05:30 03-09 05:30 03-10 05:30"},
		{name: "DST ends: 05:30 stays 05:30", zone: "America/New_York", start: "2025-10-31 05:30", rule: "FREQ=DAILY",
			from: "2025-10-31", days: 4, want: "10-31 05:30 11-01 05:30 11-02 05:30 11-03 05:30"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loc, err := loaxa.Location(tc.zone)
			if err != nil {
				t.Fatal(err)
			}
			start, _ := time.ParseInLocation("2006-01-02 15:04", tc.start, loc)
			a := &loaxa.Announcement{Start: start, RRule: tc.rule, Count: tc.count, ExDates: tc.exdates}
			if tc.until != "" {
				a.Until, _ = time.Parse(time.RFC3339, tc.until)
			}
			r, err := loaxa.NewRecurrence(a, loc)
			if err != nil {
				t.Fatal(err)
			}
			from, _ := time.ParseInLocation(loaxa.DateLayout, tc.from, loc)
			var got []string
			for _, ts := range r.Between(from, from.AddDate(0, 0, tc.days)) {
				got = append(got, ts.In(loc).Format("01-02 15:04"))
			}
			if s := strings.Join(got, " "); s != tc.want {
				t.Errorf("got  %s\nwant %s", s, tc.want)
			}
		})
	}
}

// TestRecurrenceDSTInstants checks the instants, not just the wall clock:
// in New York 05:30 is 10:30 UTC before DST and 09:30 UTC after.
func TestRecurrenceDSTInstants(t *testing.T) {
	loc, _ := loaxa.Location("America/New_York")
	start := time.Date(2025, 3, 8, 5, 30, 0, 0, loc)
	r, err := loaxa.NewRecurrence(&loaxa.Announcement{Start: start, RRule: "FREQ=DAILY"}, loc)
	if err != nil {
		t.Fatal(err)
	}
	got := r.Between(start.Add(-time.Second), start.Add(25*time.Hour))
	if len(got) != 2 || got[0].UTC().Hour() != 10 || got[1].UTC().Hour() != 9 {
		t.Errorf("instants %v, want 10:30Z then 09:30Z", got)
	}
}

func TestRecurrenceRefuses(t *testing.T) {
	loc, _ := loaxa.Location("")
	start := time.Date(2025, 3, 1, 5, 30, 0, 0, loc)
	for rule, want := range map[string]string{
		"FREQ=SOMETIMES":                       "is not an RFC 5545 rule",
		"BYHOUR=5":                             "is not an RFC 5545 rule",
		"FREQ=SECONDLY":                        "every second",
		"FREQ=MINUTELY;INTERVAL=5":             "at most 48 a day",
		"DTSTART:20250101T000000Z\nFREQ=DAILY": "is not an RFC 5545 rule",
		"\n \n":                                "blank",
		// rrule-go panicked on these in December (-8: in January).
		"FREQ=MONTHLY;BYDAY=8MO":           "a month has at most 5 of each weekday",
		"FREQ=YEARLY;BYMONTH=1;BYDAY=-8MO": "a month has at most 5 of each weekday",
		// rrule-go's extension from python-dateutil, refused in sessions'
		// days too (CheckDays).
		"FREQ=YEARLY;BYEASTER=0":       `"FREQ=YEARLY;BYEASTER=0" uses BYEASTER, which is not RFC 5545; choose the days with BYDAY, BYMONTHDAY, BYMONTH, BYYEARDAY or BYWEEKNO`,
		"RRULE:FREQ=DAILY;BYEASTER=-2": "uses BYEASTER, which is not RFC 5545",
	} {
		_, err := loaxa.NewRecurrence(&loaxa.Announcement{Start: start, RRule: rule}, loc)
		if loaxa.ErrorCode(err) != loaxa.EInvalid || !strings.Contains(loaxa.ErrorMessage(err), want) {
			t.Errorf("rule %q: error %v, want EInvalid containing %q", rule, err, want)
		}
	}
	if _, err := loaxa.Location("Local"); loaxa.ErrorCode(err) != loaxa.EInvalid {
		t.Errorf("Location(Local) = %v, want EInvalid", err)
	}
}

// FuzzRecurrence feeds rules from outside (the API) to the parser and the
// expansion: they must either be refused with EInvalid or expand to
// instants in order within the window, never panic.
func FuzzRecurrence(f *testing.F) {
	for _, s := range []string{"FREQ=DAILY", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "FREQ=MONTHLY;BYDAY=1MO", "FREQ=DAILY;COUNT=3\nFREQ=DAILY;BYHOUR=17", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"} {
		f.Add(s)
	}
	loc, _ := loaxa.Location("")
	start := time.Date(2025, 3, 1, 5, 30, 0, 0, loc)
	f.Fuzz(func(t *testing.T, rule string) {
		r, err := loaxa.NewRecurrence(&loaxa.Announcement{Start: start, RRule: rule}, loc)
		if err != nil {
			if loaxa.ErrorCode(err) != loaxa.EInvalid {
				t.Fatalf("rule %q: %v is not EInvalid", rule, err)
			}
			return
		}
		from, to := start.Add(-time.Hour), start.AddDate(0, 0, 14)
		ts := r.Between(from, to)
		for i, x := range ts {
			if !x.After(from) || x.After(to) || i > 0 && !x.After(ts[i-1]) {
				t.Fatalf("rule %q: instants out of order or window: %v", rule, ts)
			}
		}
	})
}

// FuzzExDates feeds exception dates from outside (the API): each is refused
// with EInvalid, or the expansion skips what it names (a local day, or an
// instant) and nothing else.
func FuzzExDates(f *testing.F) {
	for _, s := range []string{"2025-03-03", "2025-03-03T05:30:00+07:00", "2025-03-02T22:30:00Z", "02/09/2025", "2025-02-30", "", "2025-03-03T05:30:00"} {
		f.Add(s)
	}
	loc, _ := loaxa.Location("")
	start := time.Date(2025, 3, 1, 5, 30, 0, 0, loc)
	all, err := loaxa.NewRecurrence(&loaxa.Announcement{Start: start, RRule: "FREQ=DAILY"}, loc)
	if err != nil {
		f.Fatal(err)
	}
	from, to := start.Add(-time.Hour), start.AddDate(0, 0, 14)
	every := all.Between(from, to)
	f.Fuzz(func(t *testing.T, ex string) {
		r, err := loaxa.NewRecurrence(&loaxa.Announcement{Start: start, RRule: "FREQ=DAILY", ExDates: []string{ex}}, loc)
		if err != nil {
			if loaxa.ErrorCode(err) != loaxa.EInvalid || !strings.Contains(loaxa.ErrorMessage(err), "exdates") {
				t.Fatalf("exdate %q: %v is not EInvalid about exdates", ex, err)
			}
			return
		}
		got := r.Between(from, to)
		if len(every)-len(got) > 1 {
			t.Fatalf("exdate %q skipped %d plays", ex, len(every)-len(got))
		}
		for _, x := range got {
			if x.In(loc).Format(loaxa.DateLayout) == ex {
				t.Fatalf("exdate %q: still plays on %v", ex, x)
			}
		}
	})
}

// TestRecurrenceNext: the first play after an instant, or none when the
// rule, its bounds and exceptions leave nothing (how the API refuses a
// bulletin that would never sound).
func TestRecurrenceNext(t *testing.T) {
	loc, err := loaxa.Location(loaxa.DefaultTimeZone)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 3, 2, 6, 0, 0, 0, loc)
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, loc)
	for _, tc := range []struct {
		name string
		a    loaxa.Announcement
		want time.Time // zero: none
	}{
		{"daily", loaxa.Announcement{RRule: "FREQ=DAILY"}, time.Date(2026, 3, 11, 6, 0, 0, 0, loc)},
		{"UNTIL passed", loaxa.Announcement{RRule: "FREQ=DAILY;UNTIL=20251231T165959Z"}, time.Time{}},
		{"count used up", loaxa.Announcement{RRule: "FREQ=DAILY", Count: 3}, time.Time{}},
		{"until field passed", loaxa.Announcement{RRule: "FREQ=DAILY", Until: now.Add(-time.Hour)}, time.Time{}},
		{"no such day", loaxa.Announcement{RRule: "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"}, time.Time{}},
		{"leap day", loaxa.Announcement{RRule: "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29"}, time.Date(2028, 2, 29, 6, 0, 0, 0, loc)},
		{"next one excepted", loaxa.Announcement{RRule: "FREQ=DAILY", ExDates: []string{"2026-03-11"}}, time.Date(2026, 3, 12, 6, 0, 0, 0, loc)},
		{"one-off ahead", loaxa.Announcement{Start: now.Add(time.Hour)}, now.Add(time.Hour)},
		{"one-off past", loaxa.Announcement{Start: now.Add(-time.Hour)}, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.a
			if a.Start.IsZero() {
				a.Start = start
			}
			r, err := loaxa.NewRecurrence(&a, loc)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := r.Next(now)
			if ok != !tc.want.IsZero() || !got.Equal(tc.want) {
				t.Errorf("Next(%s) = %s, %v; want %s", now, got, ok, tc.want)
			}
		})
	}
}
