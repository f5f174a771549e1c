package rig

import (
	"bytes"
	"encoding/binary"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// StationMP3 returns secs seconds of a 440 Hz tone as a 64 kbit/s MP3
// (lame, installed by scripts/test.sh): a radio station's stream for relay
// tests.
func StationMP3(t testing.TB, secs float64) []byte {
	t.Helper()
	bin, err := exec.LookPath("lame")
	if err != nil {
		t.Fatal("lame is not installed; scripts/test.sh installs it (apt-get install lame)")
	}
	const rate = 22050
	var pcm bytes.Buffer
	for i := range int(secs * rate) {
		v := int16(8000 * math.Sin(2*math.Pi*440*float64(i)/rate))
		binary.Write(&pcm, binary.LittleEndian, [2]int16{v, v})
	}
	dir := t.TempDir()
	raw, out := filepath.Join(dir, "tone.raw"), filepath.Join(dir, "tone.mp3")
	if err := os.WriteFile(raw, pcm.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
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

// Station serves mp3 over and over as one endless HTTP stream, like an
// Icecast mount.
func Station(mp3 []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "audio/mpeg")
		for {
			for off := 0; off < len(mp3); off += 2048 {
				if _, err := w.Write(mp3[off:min(off+2048, len(mp3))]); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
		}
	}
}
