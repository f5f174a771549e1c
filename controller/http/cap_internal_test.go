package http

import (
	"testing"
	"time"
)

// TestCapInstantFoundInAnyZone: a note that states an instant is found in
// a reason however its zone said it (an offset, or Z for UTC), with its
// words before and after; another instant, other words, or a note cut off
// are not it.
func TestCapInstantFoundInAnyZone(t *testing.T) {
	at := time.Date(2026, 3, 2, 3, 10, 0, 123456789, time.UTC) // kept to the nanosecond; said to the second
	n := capInstant{head: "withdrawn by a later Cancel nchmf.gov.vn,c1 at ", at: at, tail: ": it no longer sounds"}
	for _, c := range []struct {
		reason, want string
	}{
		{"withdrawn by a later Cancel nchmf.gov.vn,c1 at 2026-03-02T10:10:00+07:00: it no longer sounds",
			"withdrawn by a later Cancel nchmf.gov.vn,c1 at 2026-03-02T10:10:00+07:00: it no longer sounds"},
		{`event "Bão" is not on the auto-start list; withdrawn by a later Cancel nchmf.gov.vn,c1 at 2026-03-02T03:10:00Z: it no longer sounds`,
			"withdrawn by a later Cancel nchmf.gov.vn,c1 at 2026-03-02T03:10:00Z: it no longer sounds"},
		{"withdrawn by a later Cancel nchmf.gov.vn,c1 at 2026-03-02T12:10:00+09:00: it no longer sounds; approved by admin at 2026-03-02T05:00:00+07:00",
			"withdrawn by a later Cancel nchmf.gov.vn,c1 at 2026-03-02T12:10:00+09:00: it no longer sounds"},
		// The same words at another instant first, then at its own.
		{"withdrawn by a later Cancel nchmf.gov.vn,c1 at 2026-03-02T10:11:00+07:00: it no longer sounds; withdrawn by a later Cancel nchmf.gov.vn,c1 at 2026-03-02T10:10:00+07:00: it no longer sounds",
			"withdrawn by a later Cancel nchmf.gov.vn,c1 at 2026-03-02T10:10:00+07:00: it no longer sounds"},
		{"withdrawn by a later Cancel nchmf.gov.vn,c1 at 2026-03-02T10:11:00+07:00: it no longer sounds", ""},
		{"withdrawn by a later Cancel nchmf.gov.vn,c2 at 2026-03-02T10:10:00+07:00: it no longer sounds", ""},
		{"withdrawn by a later Cancel nchmf.gov.vn,c1 at 2026-03-02T10:10:00+07:00", ""},
		{"withdrawn by a later Cancel nchmf.gov.vn,c1 at 2026-03-02T10:10", ""},
		{"", ""},
	} {
		if got := n.in(c.reason); got != c.want {
			t.Errorf("in %q: found %q, want %q", c.reason, got, c.want)
		}
	}
	if got := (capInstant{}).in("approved by admin at 2026-03-02T10:10:00+07:00"); got != "" {
		t.Errorf("no note found as %q", got)
	}
}
