package http

import (
	"slices"
	"testing"
)

// TestAuditDetailIDs: the ids an audit entry's detail names, by kind, as
// the controller writes its details.
func TestAuditDetailIDs(t *testing.T) {
	for _, c := range []struct {
		detail string
		want   []string
	}{
		{"priority=normal start=2026-03-02T00:00:00Z areas=12346 nodes=n-a,n-b content=5c5c, 0 conflicts forced, 0 proposals",
			[]string{"node n-a", "node n-b", "content 5c5c"}},
		{"priority=normal start=2026-03-02T00:00:00Z areas=12346 nodes= content=5c5c", []string{"content 5c5c"}},
		{"drill=true by all-clear", nil},
		{`follows=e000001 drill=false kind=all-clear content=ab repeat=1 volume=15 title="Nước đã rút"`, []string{"emergency e000001", "content ab"}},
		{"session=s000002, 2 conflicts forced", []string{"session s000002"}},
		{"session=s000002 conflicts=2", []string{"session s000002"}},
		{`name="Buổi chiều" forced=true cancelled=a000001,a000002 lost=a000003`, []string{"announcement a000001", "announcement a000002", "announcement a000003"}},
		{`name="x node=n-a" start_before=05:30 start=06:00`, nil},
		{`name="say \"node=n-a\" " node=n-b`, []string{"node n-b"}},
		{"kind=speaker-line-cut node=lap-le-01", []string{"node lap-le-01"}},
		{`cap=c000003 drill=false kind=alert content=ab repeat=1 volume=15 title="Lũ quét"`, []string{"cap c000003", "content ab"}},
		{"subcontent=x nodesx=y", nil},
		{"wrong password", nil},
		{"", nil},
	} {
		var got []string
		auditDetailIDs(c.detail, func(kind, id string) {
			if id != "" {
				got = append(got, kind+" "+id)
			}
		})
		if !slices.Equal(got, c.want) {
			t.Errorf("%q names %q, want %q", c.detail, got, c.want)
		}
	}
}
