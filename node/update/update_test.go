package update

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"loaxa.vn/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func archive(t testing.TB, members map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, body := range members {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(body))})
		tw.Write(body)
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func describe(raw []byte, path string) protocol.UpdateArchive {
	sum := sha256.Sum256(raw)
	return protocol.UpdateArchive{Arch: "arm64", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(raw)), Path: path}
}

func TestFetchChecksAndInstalls(t *testing.T) {
	good := archive(t, map[string][]byte{"loaxa-node-2.0.0-linux-arm64/install-node.sh": []byte("#!/bin/sh"), "loaxa-node-2.0.0-linux-arm64/node": []byte("new agent")})
	served := map[string][]byte{"/good": good, "/tampered": append(bytes.Clone(good[:len(good)-1]), good[len(good)-1]^1), "/short": good[:len(good)/2],
		"/nobinary": archive(t, map[string][]byte{"x/readme": []byte("hi")})}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, _ := r.BasicAuth(); u != "n1" || p != "secret" {
			http.Error(w, "who?", http.StatusUnauthorized)
			return
		}
		w.Write(served[r.URL.Path])
	}))
	defer ts.Close()
	dir := t.TempDir()
	exe := filepath.Join(dir, "loaxa-node")
	os.WriteFile(exe, []byte("old agent"), 0o755)
	dst := filepath.Join(dir, ".loaxa-node.new")
	ctx := context.Background()

	for name, tc := range map[string]struct {
		a    protocol.UpdateArchive
		want error
	}{
		"tampered":       {describe(good, "/tampered"), ErrTampered},
		"truncated":      {func() protocol.UpdateArchive { a := describe(good, "/short"); return a }(), ErrTampered},
		"wrong size":     {func() protocol.UpdateArchive { a := describe(good, "/good"); a.Size++; return a }(), ErrTampered},
		"without binary": {describe(served["/nobinary"], "/nobinary"), ErrNoBinary},
	} {
		t.Run(name, func(t *testing.T) {
			if err := Fetch(ctx, ts.Client(), ts.URL, "n1", "secret", tc.a, dst); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if _, err := os.Stat(dst); !os.IsNotExist(err) {
				t.Fatalf("left %s behind: %v", dst, err)
			}
		})
	}

	if err := Fetch(ctx, ts.Client(), ts.URL, "n1", "secret", describe(good, "/good"), dst); err != nil {
		t.Fatal(err)
	}
	if err := Install(dst, exe); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(exe); string(got) != "new agent" {
		t.Fatalf("installed %q", got)
	}
	if got, _ := os.ReadFile(Previous(exe)); string(got) != "old agent" {
		t.Fatalf("kept %q", got)
	}
	if fi, _ := os.Stat(exe); fi.Mode().Perm()&0o100 == 0 {
		t.Fatalf("installed binary not executable: %v", fi.Mode())
	}
}

func FuzzExtract(f *testing.F) {
	f.Add(archive(f, map[string][]byte{"d/node": []byte("agent")}))
	f.Add(archive(f, map[string][]byte{"a/b/c/node": []byte("deep")}))
	f.Add([]byte("not gzip"))
	dst := filepath.Join(f.TempDir(), "node")
	f.Fuzz(func(t *testing.T, raw []byte) {
		os.Remove(dst)
		if err := extract(bytes.NewReader(raw), dst); err == nil {
			if _, err := os.Stat(dst); err != nil {
				t.Fatalf("no error but no binary: %v", err)
			}
		}
	})
}
