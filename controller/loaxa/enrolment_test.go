package loaxa

import (
	"strings"
	"testing"
)

func TestEnrolmentCode(t *testing.T) {
	code := NewEnrolmentCode()
	if len(code) != 23 || strings.Count(code, "-") != 3 {
		t.Fatalf("code %q: want four groups of five", code)
	}
	norm, err := NormalizeEnrolmentCode(code)
	if err != nil || len(norm) != 20 {
		t.Fatalf("normalize %q: %q, %v", code, norm, err)
	}
	if NewEnrolmentCode() == code {
		t.Error("two codes alike")
	}
	tests := []struct {
		in, want, err string
	}{
		{"7KQ2M-XH9DP-03RTW-VN5CE", "7KQ2MXH9DP03RTWVN5CE", ""},
		{" 7kq2m xh9dp o3rtw vn5ce ", "7KQ2MXH9DP03RTWVN5CE", ""},
		{"IL000-00000-00000-00000", "11000000000000000000", ""},
		{"7KQ2M-XH9DP-03RTW-VN5C", "", "has 19 letters and digits, not 20"},
		{"7KQ2M-XH9DP-03RTW-VN5CU", "", `has 'U'`},
		{"7KQ2M-XH9DP-03RTW-VN5Cđ", "", `has 'Đ'`},
		{strings.Repeat("0", 200), "", "200 characters long"},
	}
	for _, tt := range tests {
		got, err := NormalizeEnrolmentCode(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(ErrorMessage(err), tt.err) || ErrorCode(err) != EInvalid {
				t.Errorf("%q: %v, want invalid containing %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q: %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// FuzzNormalizeEnrolmentCode: whatever a board sends, the answer is a
// 20-character code of the alphabet or an invalid-code error, and a code
// normalizes to itself.
func FuzzNormalizeEnrolmentCode(f *testing.F) {
	for _, s := range []string{"7KQ2M-XH9DP-03RTW-VN5CE", "", "----", "oooooooooooooooooooo", "\xff\xfe", "ıİ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := NormalizeEnrolmentCode(s)
		if err != nil {
			if ErrorCode(err) != EInvalid {
				t.Fatalf("%q: error %v is not invalid", s, err)
			}
			return
		}
		if len(got) != 20 || strings.Trim(got, EnrolmentCodeChars) != "" {
			t.Fatalf("%q normalized to %q", s, got)
		}
		if again, err := NormalizeEnrolmentCode(got); err != nil || again != got {
			t.Fatalf("%q does not normalize to itself: %q, %v", got, again, err)
		}
	})
}

func TestHashBrokerSecret(t *testing.T) {
	h := HashBrokerSecret("s3cret")
	parts := strings.Split(h, "$")
	if len(parts) != 5 || parts[1] != "7" || parts[2] != "101" || len(parts[3]) != 16 || len(parts[4]) != 88 {
		t.Errorf("hash %q is not in Mosquitto's $7$ format", h)
	}
	if HashBrokerSecret("s3cret") == h {
		t.Error("two hashes of one secret alike: no salt")
	}
}

// BenchmarkHashBrokerSecret measures what issuing one node secret adds for
// external brokers (PBKDF2-SHA512, Mosquitto's 101 iterations).
func BenchmarkHashBrokerSecret(b *testing.B) {
	for b.Loop() {
		HashBrokerSecret("s3cret-of-256-random-bits-in-base64url-xxxxxx")
	}
}
