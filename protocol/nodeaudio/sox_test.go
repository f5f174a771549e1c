package nodeaudio_test

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"loaxa.vn/protocol/nodeaudio"
)

// TestSoxDecodesTheSameSamples checks that node audio is standard IMA
// ADPCM WAV: sox (installed by scripts/test.sh) decodes a file to exactly
// the samples NewReader does. sox, like ffmpeg, ignores the fact chunk and
// plays the silence that pads the last block (under 128 ms); nodes stop at
// the sample count.
func TestSoxDecodesTheSameSamples(t *testing.T) {
	sox, err := exec.LookPath("sox")
	if err != nil {
		t.Fatal("sox is not installed; scripts/test.sh installs it (apt-get install sox)")
	}
	in := speech(3*16000+123, 6)
	file := mustEncode(t, in)
	dir := t.TempDir()
	path := filepath.Join(dir, "node.wav")
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(dir, "out.raw")
	if out, err := exec.Command(sox, path, "-t", "raw", "-e", "signed-integer", "-b", "16", "-L", raw).CombinedOutput(); err != nil {
		t.Fatalf("sox: %v\n%s", err, out)
	}
	got, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := decodeAll(t, file)
	wantBytes := make([]byte, 2*len(want))
	for i, v := range want {
		binary.LittleEndian.PutUint16(wantBytes[2*i:], uint16(v))
	}
	if blocks := nodeaudio.Blocks(int64(len(want))); int64(len(got)) != 2*blocks*nodeaudio.SamplesPerBlock {
		t.Fatalf("sox decoded %d samples, want %d blocks of %d", len(got)/2, blocks, nodeaudio.SamplesPerBlock)
	}
	if !bytes.Equal(got[:len(wantBytes)], wantBytes) {
		for i := range want {
			if g := int16(binary.LittleEndian.Uint16(got[2*i:])); g != want[i] {
				t.Fatalf("sample %d: sox %d, NewReader %d", i, g, want[i])
			}
		}
	}
}
