package update

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"loaxa.vn/internal/clock"
	"loaxa.vn/node/content"
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
			if err := Fetch(ctx, ts.Client(), ts.URL, "n1", "secret", tc.a, dst, nil); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if _, err := os.Stat(dst); !os.IsNotExist(err) {
				t.Fatalf("left %s behind: %v", dst, err)
			}
		})
	}

	if err := Fetch(ctx, ts.Client(), ts.URL, "n1", "secret", describe(good, "/good"), dst, nil); err != nil {
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

// TestFetchMakesWayForAnAlertsMessage: a board was fetching a new agent
// over a thin 4G link when a typhoon warning came; the release kept the
// link and the warning's message came in behind it, so the warning
// sounded late. The release download must stop as soon as the content
// cache has the message to fetch, not ask again until the message is
// cached, and then go on from the byte it had reached (a Range request),
// not start over.
func TestFetchMakesWayForAnAlertsMessage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	agentBin := make([]byte, 256<<10)
	for i := range agentBin {
		agentBin[i] = byte(rng.Uint32()) // does not compress: the archive is as long
	}
	good := archive(t, map[string][]byte{"loaxa-node-2.0.0-linux-arm64/node": agentBin})
	half := len(good) / 2
	message := []byte(strings.Repeat("Bão số 3 sắp đổ bộ. ", 1000))
	sum := sha256.Sum256(message)
	alert := protocol.ContentRef{ID: hex.EncodeToString(sum[:]), Size: int64(len(message))}
	alert.Path = "/api/v1/content/" + alert.ID + "/audio"

	var (
		mu       sync.Mutex
		ranges   []string // the Range of each release request
		early    bool     // the release asked for again before the message was in
		cache    *content.Cache
		halfway  = make(chan struct{})
		cut      = make(chan struct{})
		unblock  = make(chan struct{}) // lets the first answer end, if it was not cut
		released sync.Once
	)
	defer released.Do(func() { close(unblock) })
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, _ := r.BasicAuth(); u != "n1" || p != "secret" {
			http.Error(w, "who?", http.StatusUnauthorized)
			return
		}
		if r.URL.Path == alert.Path {
			// As the controller answers: audio with its length (a 200
			// without either is taken for a captive portal's page).
			w.Header().Set("Content-Type", "audio/wav")
			w.Header().Set("Content-Length", strconv.Itoa(len(message)))
			w.Write(message)
			return
		}
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		first := len(ranges) == 1
		if !first && !cache.Has(alert.ID) {
			early = true
		}
		mu.Unlock()
		if !first {
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(good))
			return
		}
		// A thin link: half the archive, then nothing more for now.
		w.Header().Set("Content-Length", strconv.Itoa(len(good)))
		w.Write(good[:half])
		w.(http.Flusher).Flush()
		close(halfway)
		select {
		case <-r.Context().Done():
			close(cut)
		case <-unblock:
			w.Write(good[half:])
		}
	}))
	defer ts.Close()

	fc := clock.NewFake(time.Date(2026, 9, 6, 14, 0, 0, 0, time.UTC))
	var err error
	cache, err = content.Open(content.Config{Dir: t.TempDir(), BaseURL: ts.URL, Username: "n1", Secret: "secret", Client: ts.Client(), Clock: fc})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); cache.Run(ctx) }()
	defer func() { cancel(); <-ran }()

	dst := filepath.Join(t.TempDir(), ".loaxa-node.new")
	fetched := make(chan error, 1)
	go func() {
		fetched <- Fetch(ctx, ts.Client(), ts.URL, "n1", "secret", describe(good, "/release"), dst, cache)
	}()
	<-halfway
	// Under way: the node has the half it was sent.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if fi, err := os.Stat(partPath(dst, describe(good, "/release"))); err == nil && fi.Size() == int64(half) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the release download did not get the half it was sent")
		}
	}
	cache.Want([]content.Wanted{{ContentRef: alert, Need: fc.Now()}})
	select {
	case <-cut:
	case <-time.After(10 * time.Second):
		released.Do(func() { close(unblock) })
		<-fetched
		t.Fatal("the release download kept the link while the alert's message was to be fetched")
	}
	if err := <-fetched; err != nil {
		t.Fatal(err)
	}
	if !cache.Has(alert.ID) {
		t.Error("the alert's message is not cached")
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, agentBin) {
		t.Errorf("extracted %d bytes, want the new agent's %d", len(got), len(agentBin))
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"", "bytes=" + strconv.Itoa(half) + "-"}; !slices.Equal(ranges, want) {
		t.Errorf("release requests with Range %q, want %q: on from where it stopped", ranges, want)
	}
	if early {
		t.Error("the release was asked for again before the alert's message was cached")
	}
	if parts, _ := filepath.Glob(dst + ".*.part"); len(parts) > 0 {
		t.Errorf("left %v behind", parts)
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

// TestFetchOnlyFromTheController: an archive whose path would name another
// host, were it taken as a URL reference, is not fetched from anywhere,
// even when the command's Validate was skipped.
func TestFetchOnlyFromTheController(t *testing.T) {
	var requests atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.NotFound(w, r)
	}))
	defer ts.Close()
	dst := filepath.Join(t.TempDir(), ".loaxa-node.new")
	for _, path := range []string{"//other-host.example/x", "/\\other-host.example/x", "//n1:secret@other-host.example/x"} {
		a := describe([]byte("agent"), path)
		err := Fetch(context.Background(), ts.Client(), ts.URL, "n1", "secret", a, dst, nil)
		if err == nil || !strings.Contains(err.Error(), "archive path") {
			t.Errorf("%q: %v; want it refused as another host", path, err)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d requests made for archives that are not on the controller", n)
	}
}

// TestFetchFollowsNoRedirectAwayFromTheController: a controller (or a
// proxy in front of it) that answered a release download with a redirect
// to another host sent the node there: the node fetched its agent from a
// host nobody chose (its SHA-256 checked, its credentials dropped by Go,
// but the node downloading from anywhere). Such a redirect is refused,
// saying where it led, and that host is never asked; a redirect on the
// controller itself is still followed.
func TestFetchFollowsNoRedirectAwayFromTheController(t *testing.T) {
	good := archive(t, map[string][]byte{"loaxa-node-2.0.0-linux-arm64/node": []byte("new agent")})
	var away atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		away.Add(1)
		w.Write(good)
	}))
	defer other.Close()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, other.URL+"/good", http.StatusFound)
		case "/moved":
			http.Redirect(w, r, "/good", http.StatusMovedPermanently)
		case "/good":
			if u, p, _ := r.BasicAuth(); u != "n1" || p != "secret" {
				http.Error(w, "who?", http.StatusUnauthorized)
				return
			}
			w.Write(good)
		}
	}))
	defer ts.Close()
	dst := filepath.Join(t.TempDir(), ".loaxa-node.new")

	err := Fetch(context.Background(), ts.Client(), ts.URL, "n1", "secret", describe(good, "/away"), dst, nil)
	if !errors.Is(err, protocol.ErrRedirectAway) || !strings.Contains(err.Error(), strings.TrimPrefix(other.URL, "http://")) {
		t.Errorf("a release redirected to %s: %v; want it refused as away from the controller, naming where it led", other.URL, err)
	}
	if n := away.Load(); n != 0 {
		t.Errorf("the other host was asked %d time(s) for the release", n)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Errorf("left %s behind: %v", dst, err)
	}
	if err := Fetch(context.Background(), ts.Client(), ts.URL, "n1", "secret", describe(good, "/moved"), dst, nil); err != nil {
		t.Errorf("a release redirected on the controller itself: %v; want it fetched", err)
	}
}
