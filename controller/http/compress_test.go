package http_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	kgzip "github.com/klauspost/compress/gzip"

	"loaxa.vn/controller/loaxa"
)

// gunzip decompresses b or fails the test.
func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gzip body: %v", err)
	}
	return out
}

// TestAnswersCompressed: a JSON answer of more than 1 KiB comes
// compressed to a client that accepts gzip, and decompresses to the very
// answer a client that does not gets; a small answer and the audio (in
// full or a range of it, which boards resume downloads with) are never
// compressed.
func TestAnswersCompressed(t *testing.T) {
	e := newEnv(t)
	e.tree()
	for i := range 40 {
		e.call("POST", "/api/v1/nodes", e.admin, map[string]any{"id": fmt.Sprintf("cum-%02d", i), "name": "Cụm loa thôn " + fmt.Sprint(i), "area": "12346"},
			http.StatusCreated, nil)
	}
	plain := e.request("GET", "/api/v1/nodes", e.admin, "", nil, "Accept-Encoding", "identity")
	zipped := e.request("GET", "/api/v1/nodes", e.admin, "", nil, "Accept-Encoding", "gzip")
	if plain.status != http.StatusOK || zipped.status != http.StatusOK {
		t.Fatalf("status %d and %d", plain.status, zipped.status)
	}
	if len(plain.body) < 4096 || plain.header.Get("Content-Encoding") != "" {
		t.Fatalf("the plain answer: %d bytes, Content-Encoding %q; want several KiB, none", len(plain.body), plain.header.Get("Content-Encoding"))
	}
	if zipped.header.Get("Content-Encoding") != "gzip" || !strings.Contains(zipped.header.Get("Vary"), "Accept-Encoding") {
		t.Fatalf("answer to a gzip client: Content-Encoding %q, Vary %q", zipped.header.Get("Content-Encoding"), zipped.header.Get("Vary"))
	}
	if got := gunzip(t, zipped.body); !bytes.Equal(got, plain.body) {
		t.Errorf("decompressed answer differs from the plain one:\n%s\n%s", got, plain.body)
	}
	if len(zipped.body)*3 > len(plain.body) {
		t.Errorf("compressed to %d of %d bytes, want under a third", len(zipped.body), len(plain.body))
	}

	if small := e.request("GET", "/api/v1/health", "", "", nil, "Accept-Encoding", "gzip"); small.header.Get("Content-Encoding") != "" || !json.Valid(small.body) {
		t.Errorf("a small answer: Content-Encoding %q, body %q", small.header.Get("Content-Encoding"), small.body)
	}

	c := e.upload(e.admin, "tin.wav", wav(16000, 1, 32000), "Tin tức", http.StatusCreated)
	path := "/api/v1/content/" + c.ID + "/audio"
	full := e.request("GET", path, e.admin, "", nil, "Accept-Encoding", "gzip")
	if full.status != http.StatusOK || full.header.Get("Content-Encoding") != "" || int64(len(full.body)) != c.Size {
		t.Errorf("audio to a gzip client: status %d, Content-Encoding %q, %d bytes; want 200, none, %d", full.status, full.header.Get("Content-Encoding"), len(full.body), c.Size)
	}
	part := e.request("GET", path, e.admin, "", nil, "Accept-Encoding", "gzip", "Range", "bytes=1000-")
	if part.status != http.StatusPartialContent || part.header.Get("Content-Encoding") != "" || !bytes.Equal(part.body, full.body[1000:]) {
		t.Errorf("a range of the audio to a gzip client: status %d, Content-Encoding %q, %d bytes", part.status, part.header.Get("Content-Encoding"), len(part.body))
	}
}

// TestStreamCompressed: an emergency's live stream comes compressed to a
// client that accepts gzip (each burst on its own) and plain to one that
// does not; either way its first events arrive while the stream stays
// open: each burst is flushed through the compressor, the compressing
// handler and the request log.
func TestStreamCompressed(t *testing.T) {
	e := newEnv(t)
	e.tree()
	ct := e.upload(e.admin, "bao.wav", wav(16000, 1, 16000), "Báo bão", http.StatusCreated)
	em := e.drill(ct.ID, "318")

	for _, accept := range []string{"gzip", "gzip;q=0, identity", "identity"} {
		t.Run(accept, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, "GET", e.ts.URL+"/api/v1/emergency/"+em.ID+"/stream", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+e.admin)
			req.Header.Set("Accept-Encoding", accept)
			resp, err := e.ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			want := ""
			if accept == "gzip" {
				want = "gzip"
			}
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != want {
				t.Fatalf("stream: status %d, Content-Encoding %q; want 200, %q", resp.StatusCode, resp.Header.Get("Content-Encoding"), want)
			}
			var body io.Reader = resp.Body
			if want == "gzip" {
				if body, err = gzip.NewReader(resp.Body); err != nil {
					t.Fatalf("stream not gzip: %v", err)
				}
			}
			seen := map[string]int{}
			lines := bufio.NewScanner(body)
			for seen["summary"] == 0 && lines.Scan() {
				if ev, ok := strings.CutPrefix(lines.Text(), "event: "); ok {
					seen[ev]++
				}
			}
			if seen["summary"] == 0 || seen["node"] < 2 {
				t.Errorf("events read from the open stream: %v (%v), want the summary and both clusters", seen, lines.Err())
			}
		})
	}
}

// BenchmarkCompressReport compresses the JSON of an emergency report of
// 10,000 clusters in 100 communes, half of them through the alert (as the
// board reads it mid-alert), at gzip's fastest level, which the
// controller uses, and at its default: the bytes an officer's link
// carries and the controller's time per answer.
//
//	go test -run '^$' -bench CompressReport -benchmem ./controller/http
func BenchmarkCompressReport(b *testing.B) {
	rep := loaxa.EmergencyReport{Emergency: &loaxa.Emergency{ID: "e000001", Title: "[DIỄN TẬP] Bão số 3", Drill: true}}
	for i := range 10000 {
		n := loaxa.EmergencyNode{Node: fmt.Sprintf("cum-%05d", i), Area: fmt.Sprintf("31%03d", i%100), State: "offline"}
		if i%2 == 0 {
			received, sound := int64(300+i%700), int64(1400+i%20)
			n.State, n.ReceivedMS, n.SoundMS, n.ContentReady, n.ContentReadyMS, n.Online = "started", &received, &sound, true, &received, true
		}
		rep.Nodes = append(rep.Nodes, n)
	}
	body, err := json.Marshal(rep)
	if err != nil {
		b.Fatal(err)
	}
	for _, level := range []struct {
		name  string
		level int
	}{{"fastest", gzip.BestSpeed}, {"default", gzip.DefaultCompression}} {
		b.Run(level.name, func(b *testing.B) {
			var out bytes.Buffer
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				out.Reset()
				zw, err := kgzip.NewWriterLevel(&out, level.level)
				if err != nil {
					b.Fatal(err)
				}
				zw.Write(body)
				zw.Close()
			}
			b.ReportMetric(float64(len(body))/1e6, "plain-MB")
			b.ReportMetric(float64(out.Len())/1e6, "gzip-MB")
		})
	}
}
