package plural

import "testing"

func TestCount(t *testing.T) {
	for _, c := range []struct {
		n    int
		want string
	}{{0, "0 minutes"}, {1, "1 minute"}, {2, "2 minutes"}, {-1, "-1 minutes"}} {
		if got := Count(c.n, "minute", "minutes"); got != c.want {
			t.Errorf("Count(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}
