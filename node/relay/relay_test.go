package relay

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"loaxa.vn/internal/clock"
	"loaxa.vn/protocol/nodeaudio"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// station returns an MP3 (lame, from a 440 Hz tone of secs seconds at
// 22.05 kHz stereo) to serve as a live stream.
func station(t *testing.T, secs float64) []byte {
	t.Helper()
	bin, err := exec.LookPath("lame")
	if err != nil {
		t.Fatal("lame is not installed; scripts/test.sh installs it (apt-get install lame)")
	}
	const rate = 22050
	n := int(secs * rate)
	var pcm bytes.Buffer
	for i := range n {
		v := int16(8000 * math.Sin(2*math.Pi*440*float64(i)/rate))
		binary.Write(&pcm, binary.LittleEndian, [2]int16{v, v})
	}
	dir := t.TempDir()
	raw := filepath.Join(dir, "tone.raw")
	os.WriteFile(raw, pcm.Bytes(), 0o600)
	out := filepath.Join(dir, "tone.mp3")
	cmd := exec.Command(bin, "--quiet", "-r", "-s", "22.05", "--bitwidth", "16", "--signed", "--little-endian", "-m", "j", "-b", "64", raw, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("lame: %v %s", err, b)
	}
	mp3, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return mp3
}

// serve streams mp3 over and over, in real time-ish chunks, until the
// client leaves or cut bytes were sent (0: never).
func serve(mp3 []byte, cut int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "audio/mpeg")
		sent := 0
		for {
			for off := 0; off < len(mp3); off += 2048 {
				chunk := mp3[off:min(off+2048, len(mp3))]
				if _, err := w.Write(chunk); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				sent += len(chunk)
				if cut > 0 && sent >= cut {
					return
				}
			}
		}
	}
}

// readPCM reads d of audio from s.
func readPCM(t *testing.T, s io.Reader, d time.Duration) ([]byte, error) {
	buf := make([]byte, nodeaudio.Bytes(d))
	_, err := io.ReadFull(s, buf)
	return buf, err
}

func rms(pcm []byte) float64 {
	var sum float64
	for i := 0; i+1 < len(pcm); i += 2 {
		v := float64(int16(binary.LittleEndian.Uint16(pcm[i:])))
		sum += v * v
	}
	return math.Sqrt(sum / float64(len(pcm)/2))
}

func TestRelayPlaysAStation(t *testing.T) {
	ts := httptest.NewServer(serve(station(t, 2), 0))
	defer ts.Close()
	s := Open(ts.URL, Options{})
	defer s.Close()
	pcm, err := readPCM(t, s, 5*time.Second) // longer than the file: it loops like a live station
	if err != nil {
		t.Fatal(err)
	}
	// A 440 Hz tone at amplitude 8000 has an RMS of about 5,657.
	if got := rms(pcm[len(pcm)/2:]); got < 4000 || got > 7000 {
		t.Fatalf("relayed audio has RMS %.0f, want the tone's ~5657", got)
	}
}

func TestRelayReconnects(t *testing.T) {
	mp3 := station(t, 1)
	var conns atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conns.Add(1)
		serve(mp3, len(mp3)/2)(w, r) // the link drops every half second of audio
	}))
	defer ts.Close()
	s := Open(ts.URL, Options{Retries: 2, Backoff: 10 * time.Millisecond, Healthy: 200 * time.Millisecond})
	defer s.Close()
	if _, err := readPCM(t, s, 3*time.Second); err != nil {
		t.Fatalf("relay gave up: %v", err)
	}
	if conns.Load() < 4 {
		t.Fatalf("%d connections for 3 s of audio cut every 0.5 s", conns.Load())
	}
}

func TestRelayGivesUp(t *testing.T) {
	for name, h := range map[string]http.HandlerFunc{
		"refused": func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no such mount", http.StatusNotFound) },
		"not mp3": func(w http.ResponseWriter, r *http.Request) { w.Write(bytes.Repeat([]byte("<html>"), 4000)) },
	} {
		t.Run(name, func(t *testing.T) {
			ts := httptest.NewServer(h)
			defer ts.Close()
			s := Open(ts.URL, Options{Retries: 2, Backoff: 10 * time.Millisecond})
			defer s.Close()
			done := make(chan error, 1)
			go func() { _, err := readPCM(t, s, time.Second); done <- err }()
			select {
			case err := <-done:
				if !errors.Is(err, ErrFailed) {
					t.Fatalf("got %v, want ErrFailed", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("relay hung")
			}
		})
	}
}

// stalledStations are stations that connect and then never bring an MP3
// frame: only the stall watchdog ends their attempts.
var stalledStations = map[string]http.HandlerFunc{
	// Headers, then nothing: a stalled station.
	"silent": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "audio/mpeg")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	},
	// A station that streams without end in another format (AAC frames,
	// as many radio stations serve) never yields an MP3 frame.
	"endless and not mp3": func(w http.ResponseWriter, r *http.Request) {
		frame := make([]byte, 256)
		copy(frame, []byte{0xFF, 0xF1, 0x50, 0x80}) // an ADTS header, then payload
		w.Header().Set("Content-Type", "audio/aacp")
		for {
			if _, err := w.Write(frame); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(5 * time.Millisecond): // bytes keep coming
			}
		}
	},
}

// TestRelayGivesUpOnAStalledStation: a station that sends no audio is
// tried again after Backoff and then given up (docs/scheduling.md), its
// watchdog waiting for audio, not bytes: on a stream that is not MP3 the
// relay read on for ever, bytes coming, neither playing nor failing. The
// stall and the backoff are timed on the relay's clock (a fake one here,
// with the default 10 s stall and 2 s backoff); they ran on the real
// clock, whatever clock the node gave it.
func TestRelayGivesUpOnAStalledStation(t *testing.T) {
	for name, h := range stalledStations {
		t.Run(name, func(t *testing.T) {
			conns := make(chan struct{}, 10)
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				conns <- struct{}{}
				h(w, r)
			}))
			defer ts.Close()
			fake := clock.NewFake(time.Date(2026, 9, 14, 5, 30, 0, 0, time.UTC))
			s := Open(ts.URL, Options{Retries: 2, Clock: fake, Logger: slog.New(slog.DiscardHandler)})
			defer s.Close()
			done := make(chan error, 1)
			go func() {
				_, err := io.ReadFull(s, make([]byte, 3200))
				done <- err
			}()
			var err error
			for attempt := 1; ; attempt++ {
				// The request is made after its watchdog is set.
				select {
				case <-conns:
				case err = <-done:
					t.Fatalf("attempt %d: the relay ended before it connected: %v", attempt, err)
				case <-time.After(30 * time.Second):
					t.Fatalf("attempt %d: the relay never connected", attempt)
				}
				fake.Advance(DefaultStallTimeout)
				if err = awaitBackoff(t, fake, done); err != nil {
					if attempt != 3 {
						t.Fatalf("gave up after %d attempts, want 3: %v", attempt, err)
					}
					break
				}
				fake.Advance(DefaultBackoff)
			}
			// Stalled before the answer's headers reached it, or after.
			if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "no answer within 10s") && !strings.Contains(err.Error(), "no MP3 frame within 10s") {
				t.Fatalf("got %v, want ErrFailed saying no answer or no MP3 frame came within the stall timeout", err)
			}
		})
	}
}

// awaitBackoff waits until the relay waits on the fake clock to try again
// (nil), or has ended (its error).
func awaitBackoff(t *testing.T, fake *clock.Fake, done <-chan error) error {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for fake.Timers() == 0 {
		select {
		case err := <-done:
			return err
		case <-deadline:
			t.Fatal("the relay neither waited to try again nor ended")
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// TestRelayCarriesAStationsCredentialsNowhereElse: a relay follows the
// station's redirects wherever they lead (a station's stream moves
// between its servers), so it must carry no credential there: a stream
// address with a user and password (http://user:pass@icecast/…, which
// Go's client sends as Basic authorisation) reaches the server it
// redirects to, on another port of the same host, without them.
func TestRelayCarriesAStationsCredentialsNowhereElse(t *testing.T) {
	var mirrorAuth, stationAuth atomic.Value
	stream := serve(station(t, 2), 0)
	mirror := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mirrorAuth.Store(r.Header.Get("Authorization"))
		stream(w, r)
	}))
	defer mirror.Close()
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stationAuth.Store(r.Header.Get("Authorization"))
		http.Redirect(w, r, mirror.URL+"/live.mp3", http.StatusFound)
	}))
	defer front.Close()
	s := Open(strings.Replace(front.URL, "http://", "http://dai:mat-khau@", 1)+"/live.mp3", Options{})
	defer s.Close()
	if _, err := readPCM(t, s, time.Second); err != nil {
		t.Fatal(err)
	}
	if got, want := stationAuth.Load(), "Basic "+base64.StdEncoding.EncodeToString([]byte("dai:mat-khau")); got != want {
		t.Errorf("the station's own address was asked with Authorization %q, want %q", got, want)
	}
	if got := mirrorAuth.Load(); got != "" {
		t.Errorf("the server the station redirected to was asked with Authorization %q, want none", got)
	}
}
