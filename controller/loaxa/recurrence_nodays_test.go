package loaxa

import (
	"testing"
	"time"
)

// TestRecurrenceNoDays: a rule choosing only days its months do not have
// (30 February, 31 April and June) is kept as no rule to walk: rrule-go
// walked it to the year 9999 to find nothing, 20 ms each time a session's
// days were read (a commune's list read a 30-February session's days
// once for each other session of the commune). Beside a rule that plays,
// only that one is walked, and it plays as alone.
func TestRecurrenceNoDays(t *testing.T) {
	vn, _ := Location("")
	start := time.Date(2023, 3, 2, 5, 30, 0, 0, vn)
	for rule, walked := range map[string]int{
		"FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30":                     0,
		"RRULE:FREQ=MONTHLY;BYMONTH=4,6;BYMONTHDAY=31;COUNT=4":    0,
		"FREQ=DAILY;BYMONTH=2;BYMONTHDAY=-30":                     0,
		"FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30\nFREQ=DAILY;COUNT=3": 1,
		"FREQ=YEARLY;BYMONTH=2,3;BYMONTHDAY=30":                   1,
	} {
		r, err := NewRecurrence(&Announcement{Start: start, RRule: rule}, vn)
		if err != nil {
			t.Fatalf("%q: %v", rule, err)
		}
		if len(r.rules) != walked {
			t.Errorf("%q: %d rules to walk, want %d", rule, len(r.rules), walked)
		}
		got := r.Between(start.Add(-time.Hour), start.AddDate(5, 0, 0))
		switch {
		case walked == 0 && len(got) != 0:
			t.Errorf("%q plays %v", rule, got)
		case walked == 1 && len(got) == 0:
			t.Errorf("%q plays nothing", rule)
		}
	}
	r, err := NewRecurrence(&Announcement{Start: start, RRule: "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30\nFREQ=DAILY;COUNT=3"}, vn)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Between(start.Add(-time.Second), start.AddDate(1, 0, 0)); len(got) != 3 {
		t.Errorf("30 February beside three days plays %d times, want 3: %v", len(got), got)
	}
}
