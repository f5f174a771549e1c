package loaxa

import (
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestHashPasswordCost: a controller configured with no cost hashes
// passwords at bcrypt's default; tests lower it (bcrypt is slow under the
// race detector), and a hash of any cost is checked all the same.
func TestHashPasswordCost(t *testing.T) {
	for _, tc := range []struct{ cost, want int }{{0, bcrypt.DefaultCost}, {bcrypt.MinCost, bcrypt.MinCost}} {
		h, err := HashPassword("mật khẩu của cán bộ", tc.cost)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := bcrypt.Cost(h); err != nil || got != tc.want {
			t.Errorf("HashPassword at cost %d: hash of cost %d (%v), want %d", tc.cost, got, err, tc.want)
		}
		if !PasswordMatches(h, "mật khẩu của cán bộ") || PasswordMatches(h, "mật khẩu khác") {
			t.Errorf("a hash of cost %d does not check its password alone", tc.want)
		}
	}
}
