package main

import (
	"bytes"
	"encoding/binary"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"loaxa.vn/controller/liveclient"
	"loaxa.vn/protocol/nodeaudio"
)

// TestLiveSource: "controller live" speaks a node-format WAV file (its
// header taken off), raw PCM from a file, or raw PCM from standard input
// for a local microphone (arecord … -t raw | controller live --pcm -),
// whose length is not known.
func TestLiveSource(t *testing.T) {
	pcm := make([]byte, 2*nodeaudio.SampleRate/2) // half a second
	for i := 0; i < len(pcm)/2; i++ {
		binary.LittleEndian.PutUint16(pcm[2*i:], uint16(int16(i*37)))
	}
	dir := t.TempDir()
	header, err := nodeaudio.PCMHeader(int64(len(pcm)))
	if err != nil {
		t.Fatal(err)
	}
	wavPath, rawPath := filepath.Join(dir, "loi-noi.wav"), filepath.Join(dir, "loi-noi.raw")
	if err := os.WriteFile(wavPath, append(header, pcm...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rawPath, pcm, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, wav, raw string
		stdin          io.Reader
		length         time.Duration
	}{
		{"WAV file", wavPath, "", nil, 500 * time.Millisecond},
		{"raw file", "", rawPath, nil, 500 * time.Millisecond},
		{"microphone on stdin", "", "-", bytes.NewReader(pcm), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, length, closeSource, err := liveSource(tc.wav, tc.raw, tc.stdin)
			if err != nil {
				t.Fatal(err)
			}
			defer closeSource()
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, pcm) || length != tc.length {
				t.Errorf("%d bytes of PCM (equal %v), length %v; want the %d bytes written, %v", len(got), bytes.Equal(got, pcm), length, len(pcm), tc.length)
			}
		})
	}
	// A file that is not a node-format WAV says how to convert it.
	if _, _, _, err := liveSource(rawPath, "", nil); err == nil || !bytes.Contains([]byte(err.Error()), []byte("sox")) {
		t.Errorf("raw PCM given as --wav: %v, want an error saying how to convert it", err)
	}
}

// TestLiveFailingAreasTold: "controller live" tells the speaker when an
// area of the call is not reached, and when it is again; the statuses of
// a call that reaches every area say nothing.
func TestLiveFailingAreasTold(t *testing.T) {
	var out bytes.Buffer
	on := failingAreas(&out)
	on(liveclient.Status{State: "on_air", Call: "live-1"})
	on(liveclient.Status{State: "on_air", Call: "live-1", FailingAreas: []string{"12347"}, Detail: "area 12347: 17 frames in a row not published"})
	on(liveclient.Status{State: "on_air", Call: "live-1"})
	on(liveclient.Status{State: "ended", Call: "live-1", Reason: "speaker stopped"})
	want := "Not reaching area 12347: area 12347: 17 frames in a row not published. The call goes on for the other areas.\nEvery area is reached again.\n"
	if out.String() != want {
		t.Errorf("told the speaker %q, want %q", out.String(), want)
	}
}

// TestLiveHeldBehindAlertsTold: "controller live" tells the speaker, as
// the controller's statuses say it, which alert holds the call back on how
// many clusters, and when they join the call or miss it; it said nothing,
// and the speaker could not know that part of the commune did not hear
// them yet.
func TestLiveHeldBehindAlertsTold(t *testing.T) {
	var out bytes.Buffer
	on := heldBehindAlerts(&out)
	on(liveclient.Status{State: "on_air", Call: "live-1"})
	on(liveclient.Status{State: "on_air", Call: "live-1", Held: []liveclient.Hold{{Alert: "e000007", Waiting: 3}}})
	on(liveclient.Status{State: "on_air", Call: "live-1", Held: []liveclient.Hold{{Alert: "e000007", Waiting: 1, Joined: 2}}})
	on(liveclient.Status{State: "on_air", Call: "live-1", Held: []liveclient.Hold{{Alert: "e000007", Joined: 2, Missed: 1}}})
	on(liveclient.Status{State: "ended", Call: "live-1", Reason: "speaker stopped"})
	want := "Đang chờ bản tin khẩn cấp phát xong: alert e000007 still plays on 3 clusters; they play the call if it ends within 5 s of the call's start.\n" +
		"Đang chờ bản tin khẩn cấp phát xong: alert e000007 still plays on 1 clusters; they play the call if it ends within 5 s of the call's start.\n" +
		"2 clusters held behind alert e000007 joined the call after it (2 in all).\n" +
		"1 clusters held behind alert e000007 missed the call: the alert outlasted the call's 5 s start window (1 in all).\n"
	if out.String() != want {
		t.Errorf("told the speaker\n%s\nwant\n%s", out.String(), want)
	}
}

// TestLiveHeldBehindAlertsNamed: the speaker read that alert e000012
// held their call back, an id no one on duty knows; the alert is named by
// its title (a drill's carries its mark), its id beside it.
func TestLiveHeldBehindAlertsNamed(t *testing.T) {
	var out bytes.Buffer
	on := heldBehindAlerts(&out)
	on(liveclient.Status{State: "on_air", Call: "live-1", Held: []liveclient.Hold{{Alert: "e000012", Title: "Cảnh báo bão số 3", Waiting: 3}}})
	on(liveclient.Status{State: "on_air", Call: "live-1", Held: []liveclient.Hold{{Alert: "e000012", Title: "Cảnh báo bão số 3", Joined: 3}}})
	want := "Đang chờ bản tin khẩn cấp phát xong: alert \"Cảnh báo bão số 3\" (e000012) still plays on 3 clusters; they play the call if it ends within 5 s of the call's start.\n" +
		"3 clusters held behind alert \"Cảnh báo bão số 3\" (e000012) joined the call after it (3 in all).\n"
	if out.String() != want {
		t.Errorf("told the speaker\n%s\nwant\n%s", out.String(), want)
	}
}

// TestLiveHelp: "controller live --help", as README's walk-through
// leads a technician to type, listed the flags and the usage and exited
// 2 ("exit status 2" under go run), as if something were wrong.
func TestLiveHelp(t *testing.T) {
	var stderr strings.Builder
	if code := runLive([]string{"--help"}, nil, io.Discard, &stderr); code != 0 || !strings.Contains(stderr.String(), "usage: controller live") {
		t.Errorf("exit %d, stderr %q; want 0 and the usage", code, stderr.String())
	}
}

// TestLiveNeedsAToken: "controller live" typed in a new terminal, without
// LOAXA_TOKEN, reached the controller and printed its answer to a request
// without an Authorization header ("send Authorization: Bearer …"). It
// now says, before dialling anything, to sign in and set LOAXA_TOKEN;
// --token comes before the environment.
func TestLiveNeedsAToken(t *testing.T) {
	var dialled atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dialled.Add(1)
		http.Error(w, `{"error":{"code":"unauthorized","message":"Sign in first"}}`, http.StatusUnauthorized)
	}))
	defer srv.Close()
	wav := silentWAV(t)
	t.Setenv("LOAXA_TOKEN", "")
	if code := runLive([]string{"--url", srv.URL, "--areas", "12346", "--wav", wav}, nil, io.Discard, io.Discard); code != 2 || dialled.Load() != 0 {
		t.Errorf("without a token: exit %d after %d requests; want 2 before any request", code, dialled.Load())
	}

	env := func(tok string) func(string) string {
		return func(k string) string {
			if k == "LOAXA_TOKEN" {
				return tok
			}
			return ""
		}
	}
	if _, err := liveToken("", env("")); err == nil || !strings.Contains(err.Error(), "LOAXA_TOKEN") || !strings.Contains(err.Error(), "/api/v1/auth/token") {
		t.Errorf("no token: %v; want an error saying to sign in and set LOAXA_TOKEN", err)
	}
	if tok, err := liveToken("", env("from-env")); err != nil || tok != "from-env" {
		t.Errorf("LOAXA_TOKEN: %q, %v", tok, err)
	}
	if tok, err := liveToken("from-flag", env("from-env")); err != nil || tok != "from-flag" {
		t.Errorf("--token and LOAXA_TOKEN: %q, %v; want the flag's", tok, err)
	}
}

// TestLivePrintsTheAreasTheControllerTook: "controller live --areas
// '31, 3101,31'" printed "On air to 31, 3101,31" while the controller,
// which leaves out an area inside another and repeats, spoke to 31 alone.
// It prints the areas of the controller's on-air answer.
func TestLivePrintsTheAreasTheControllerTook(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := r.Context()
		if err := c.Write(ctx, websocket.MessageText, []byte(`{"state":"on_air","call":"live-1","areas":["31"],"priority":"priority"}`)); err != nil {
			return
		}
		for {
			typ, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			if typ == websocket.MessageText && strings.Contains(string(b), `"end"`) {
				break
			}
		}
		c.Write(ctx, websocket.MessageText, []byte(`{"state":"ended","call":"live-1","frames":1,"reason":"speaker stopped"}`))
		c.Close(websocket.StatusNormalClosure, "")
	}))
	defer srv.Close()
	wav := silentWAV(t)
	var stdout, stderr bytes.Buffer
	if code := runLive([]string{"--url", srv.URL, "--token", "t", "--areas", "31, 3101,31", "--wav", wav}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if got := stdout.String(); !strings.HasPrefix(got, "On air to 31: ") {
		t.Errorf("printed %q, want the call on air to 31, the area the controller took", got)
	}
}

// silentWAV writes a WAV file of one silent 10 ms frame in the node's
// format for "controller live" to stream, and returns its path.
func silentWAV(t *testing.T) string {
	t.Helper()
	header, err := nodeaudio.PCMHeader(320)
	if err != nil {
		t.Fatal(err)
	}
	wav := filepath.Join(t.TempDir(), "loi-noi.wav")
	if err := os.WriteFile(wav, append(header, make([]byte, 320)...), 0o600); err != nil {
		t.Fatal(err)
	}
	return wav
}

// TestLiveCutOffByAnAlertTold: an alert that came during the call cut it
// off on every cluster of the commune, and "controller live" went on
// sending speech without a word; it now says, as the controller's
// statuses say it, on how many clusters the call was cut off, once per
// change.
func TestLiveCutOffByAnAlertTold(t *testing.T) {
	var out bytes.Buffer
	on := cutOffByAlerts(&out)
	on(liveclient.Status{State: "on_air", Call: "live-1"})
	on(liveclient.Status{State: "on_air", Call: "live-1", Preempted: 3})
	on(liveclient.Status{State: "on_air", Call: "live-1", Preempted: 3, FailingAreas: []string{"12347"}})
	on(liveclient.Status{State: "on_air", Call: "live-1", Preempted: 18})
	// Of the call's 20 clusters: 19, then every one, when nobody hears it.
	on(liveclient.Status{State: "on_air", Call: "live-1", Preempted: 19, Nodes: 20})
	on(liveclient.Status{State: "on_air", Call: "live-1", Preempted: 20, Nodes: 20})
	on(liveclient.Status{State: "ended", Call: "live-1", Reason: "speaker stopped"})
	want := "Cuộc gọi bị bản tin khẩn cấp cắt trên 3 cụm loa: an emergency alert cut the call off on 3 clusters; they do not play the rest of it.\n" +
		"Cuộc gọi bị bản tin khẩn cấp cắt trên 18 cụm loa: an emergency alert cut the call off on 18 clusters; they do not play the rest of it.\n" +
		"Cuộc gọi bị bản tin khẩn cấp cắt trên 19 cụm loa: an emergency alert cut the call off on 19 clusters; they do not play the rest of it.\n" +
		"Cuộc gọi bị bản tin khẩn cấp cắt trên cả 20 cụm loa: không còn ai nghe được, hãy kết thúc cuộc gọi (Ctrl-C); an emergency alert cut the call off on all 20 clusters: nobody hears it any more, end the call (Ctrl-C).\n"
	if out.String() != want {
		t.Errorf("told the speaker\n%s\nwant\n%s", out.String(), want)
	}
}
