package fleet

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDamageCache: the largest cached file, or the one named, gets one bit
// changed in its middle; the rest of the cache and of the file stay as
// they were; a box with nothing (or not that) cached says so.
func TestDamageCache(t *testing.T) {
	s := &Sim{ID: "sim-0001", Dir: t.TempDir()}
	dir := filepath.Join(s.Dir, "content")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DamageCache(""); !errors.Is(err, ErrNothingCached) {
		t.Errorf("empty cache: %v, want ErrNothingCached", err)
	}
	small, large := strings.Repeat("a", 64), strings.Repeat("b", 64)
	files := map[string][]byte{
		small: bytes.Repeat([]byte{1}, 100), large: bytes.Repeat([]byte{2}, 1000),
		large + ".chunks": bytes.Repeat([]byte{3}, 5000), // not content: never damaged
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	changed := func(name string) []int {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		var at []int
		for i := range got {
			if got[i] != files[name][i] {
				at = append(at, i)
			}
		}
		return at
	}
	if id, err := s.DamageCache(""); err != nil || id != large {
		t.Fatalf("DamageCache: %s, %v; want the largest, %s", id, err, large)
	}
	if at := changed(large); len(at) != 1 || at[0] != 500 {
		t.Errorf("bytes changed at %v, want one, in the middle (500)", at)
	}
	if id, err := s.DamageCache(small); err != nil || id != small || len(changed(small)) != 1 {
		t.Errorf("DamageCache(%s): %s, %v, bytes changed at %v", small, id, err, changed(small))
	}
	if at := changed(large + ".chunks"); len(at) != 0 {
		t.Errorf("the chunk list changed at %v", at)
	}
	if _, err := s.DamageCache(strings.Repeat("c", 64)); !errors.Is(err, ErrNothingCached) {
		t.Errorf("content not cached: %v, want ErrNothingCached", err)
	}
}
