package nodeaudio_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"loaxa.vn/protocol/nodeaudio"
)

func mustHeader(t testing.TB, samples int64) []byte {
	t.Helper()
	h, err := nodeaudio.Header(samples)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mustPCMHeader(t testing.TB, size int64) []byte {
	t.Helper()
	h, err := nodeaudio.PCMHeader(size)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mustEncode(t testing.TB, s []int16) []byte {
	t.Helper()
	b, err := nodeaudio.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// speech is a deterministic speech-like test signal: a few harmonics of a
// gliding pitch under a syllable-rate envelope, with a little noise.
func speech(n int, seed uint64) []int16 {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]int16, n)
	phase := 0.0
	for i := range out {
		t := float64(i) / nodeaudio.SampleRate
		f0 := 140 + 40*math.Sin(2*math.Pi*0.7*t)
		phase += 2 * math.Pi * f0 / nodeaudio.SampleRate
		v := 0.0
		for h, a := range []float64{1, 0.6, 0.45, 0.3, 0.2, 0.12, 0.08} {
			v += a * math.Sin(float64(h+1)*phase)
		}
		env := 0.5 + 0.5*math.Sin(2*math.Pi*4*t)
		v = 0.12*v*env + 0.01*rng.NormFloat64()
		out[i] = int16(math.Round(max(-1, min(v, 32767.0/32768)) * 32768))
	}
	return out
}

func decodeAll(t testing.TB, file []byte) []int16 {
	t.Helper()
	r, err := nodeaudio.NewReader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int16, len(raw)/2)
	for i := range out {
		out[i] = int16(binary.LittleEndian.Uint16(raw[2*i:]))
	}
	return out
}

// snr returns the signal-to-noise ratio of got against want in dB.
func snr(want, got []int16) float64 {
	var s, n float64
	for i := range want {
		d := float64(got[i]) - float64(want[i])
		s += float64(want[i]) * float64(want[i])
		n += d * d
	}
	return 10 * math.Log10(s/n)
}

func TestHeader(t *testing.T) {
	tests := []struct {
		samples int64
		ok      bool
	}{
		{0, true},
		{1, true},
		{nodeaudio.SamplesPerBlock, true},
		{nodeaudio.SamplesPerBlock + 1, true},
		{16000 * 3600 * 2, true}, // two hours
		{nodeaudio.MaxSamples, true},
		{nodeaudio.MaxSamples + 1, false},
		{-1, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.samples), func(t *testing.T) {
			h, err := nodeaudio.Header(tt.samples)
			if (err == nil) != tt.ok {
				t.Fatalf("Header(%d) error = %v, want ok=%v", tt.samples, err, tt.ok)
			}
			if !tt.ok {
				return
			}
			info, err := nodeaudio.ParseHeader(h)
			want := nodeaudio.Info{Format: nodeaudio.Format, HeaderSize: nodeaudio.HeaderSize,
				DataSize: nodeaudio.Blocks(tt.samples) * nodeaudio.BlockAlign, Samples: tt.samples}
			if err != nil || info != want {
				t.Errorf("ParseHeader(Header(%d)) = %+v, %v; want %+v", tt.samples, info, err, want)
			}
			if info.Size() != nodeaudio.Size(tt.samples) {
				t.Errorf("Info.Size %d, Size %d", info.Size(), nodeaudio.Size(tt.samples))
			}
		})
	}
}

func TestHeaderBytes(t *testing.T) {
	// The canonical headers for one second, written out field by field: if
	// these change, every content id changes.
	t.Run("IMA ADPCM", func(t *testing.T) {
		// 16000 samples are 8 blocks (7.84 rounded up): 8192 data bytes.
		want := []byte("RIFF" + "\x34\x20\x00\x00" + "WAVE" +
			"fmt " + "\x14\x00\x00\x00" + "\x11\x00" + "\x01\x00" + "\x80\x3e\x00\x00" + "\x5b\x1f\x00\x00" + "\x00\x04" + "\x04\x00" +
			"\x02\x00" + "\xf9\x07" +
			"fact" + "\x04\x00\x00\x00" + "\x80\x3e\x00\x00" +
			"data" + "\x00\x20\x00\x00")
		if got := mustHeader(t, 16000); !bytes.Equal(got, want) {
			t.Errorf("Header(16000) = %q\nwant           %q", got, want)
		}
	})
	t.Run("legacy PCM", func(t *testing.T) {
		want := []byte("RIFF" + "\x24\x7d\x00\x00" + "WAVE" +
			"fmt " + "\x10\x00\x00\x00" + "\x01\x00" + "\x01\x00" + "\x80\x3e\x00\x00" + "\x00\x7d\x00\x00" + "\x02\x00" + "\x10\x00" +
			"data" + "\x00\x7d\x00\x00")
		if got := mustPCMHeader(t, 32000); !bytes.Equal(got, want) {
			t.Errorf("PCMHeader(32000) = %q\nwant              %q", got, want)
		}
	})
}

func TestPCMHeader(t *testing.T) {
	tests := []struct {
		size int64
		ok   bool
	}{
		{0, true},
		{2, true},
		{32000, true},
		{nodeaudio.MaxPCMDataSize - 1, true}, // MaxPCMDataSize is odd
		{-2, false},
		{1, false},
		{32001, false},
		{nodeaudio.MaxPCMDataSize + 1, false},
	}
	for _, tt := range tests {
		h, err := nodeaudio.PCMHeader(tt.size)
		if (err == nil) != tt.ok {
			t.Fatalf("PCMHeader(%d) error = %v, want ok=%v", tt.size, err, tt.ok)
		}
		if !tt.ok {
			continue
		}
		info, err := nodeaudio.ParseHeader(h)
		if err != nil || info.Format != nodeaudio.FormatPCM || info.DataSize != tt.size || info.Samples != tt.size/2 || info.HeaderSize != 44 {
			t.Errorf("ParseHeader(PCMHeader(%d)) = %+v, %v", tt.size, info, err)
		}
	}
}

func TestParseHeaderRejects(t *testing.T) {
	adpcm := mustHeader(t, 5000)
	pcm := mustPCMHeader(t, 3200)
	set := func(h []byte, off int, v uint32, n int) []byte {
		h = bytes.Clone(h)
		if n == 2 {
			binary.LittleEndian.PutUint16(h[off:], uint16(v))
		} else {
			binary.LittleEndian.PutUint32(h[off:], v)
		}
		return h
	}
	tests := []struct {
		name string
		h    []byte
	}{
		{"empty", nil},
		{"short", pcm[:43]},
		{"ADPCM cut in the header", adpcm[:50]},
		{"ADPCM RIFF size", set(adpcm, 4, 100, 4)},
		{"ADPCM fmt size", set(adpcm, 16, 22, 4)},
		{"ADPCM stereo", set(adpcm, 22, 2, 2)},
		{"ADPCM 8 kHz", set(adpcm, 24, 8000, 4)},
		{"ADPCM byte rate", set(adpcm, 28, 8000, 4)},
		{"ADPCM block align 256", set(adpcm, 32, 256, 2)},
		{"ADPCM 3 bits", set(adpcm, 34, 3, 2)},
		{"ADPCM samples per block", set(adpcm, 38, 505, 2)},
		{"ADPCM fact missing", append(append(bytes.Clone(adpcm[:40]), "LIST"...), adpcm[44:]...)},
		{"ADPCM data size disagrees with fact", set(adpcm, 56, 4096, 4)},
		{"ADPCM too many samples", set(adpcm, 48, 0xFFFFFFFF, 4)},
		{"PCM RIFF size", set(pcm, 4, 100, 4)},
		{"not WAVE", append(append(bytes.Clone(pcm[:8]), "AVI "...), pcm[12:]...)},
		{"PCM fmt size", set(pcm, 16, 18, 4)},
		{"float", set(pcm, 20, 3, 2)},
		{"PCM stereo", set(pcm, 22, 2, 2)},
		{"PCM 8 kHz", set(pcm, 24, 8000, 4)},
		{"PCM byte rate", set(pcm, 28, 16000, 4)},
		{"PCM block align", set(pcm, 32, 4, 2)},
		{"PCM 8-bit", set(pcm, 34, 8, 2)},
		{"PCM odd data size", set(set(pcm, 40, 3201, 4), 4, 3201+36, 4)},
		{"PCM LIST instead of data", append(append(bytes.Clone(pcm[:36]), "LIST"...), pcm[40:]...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := nodeaudio.ParseHeader(tt.h); !errors.Is(err, nodeaudio.ErrFormat) {
				t.Errorf("ParseHeader error = %v, want ErrFormat", err)
			}
			if _, err := nodeaudio.NewReader(bytes.NewReader(tt.h)); !errors.Is(err, nodeaudio.ErrFormat) {
				t.Errorf("NewReader error = %v, want ErrFormat", err)
			}
		})
	}
}

func TestDurationAndBytes(t *testing.T) {
	tests := []struct {
		bytes int64
		d     time.Duration
	}{
		{0, 0},
		{2, time.Second / 16000},
		{32000, time.Second},
		{32000 * 3600, time.Hour},
		{3, time.Second / 16000}, // a trailing odd byte is no sample
	}
	for _, tt := range tests {
		if got := nodeaudio.Duration(tt.bytes); got != tt.d {
			t.Errorf("Duration(%d) = %v, want %v", tt.bytes, got, tt.d)
		}
		if tt.bytes%2 == 0 {
			if got := nodeaudio.Bytes(tt.d); got != tt.bytes {
				t.Errorf("Bytes(%v) = %d, want %d", tt.d, got, tt.bytes)
			}
		}
	}
	if got := nodeaudio.Bytes(time.Second/16000 - 1); got != 0 {
		t.Errorf("Bytes rounds a partial sample up to %d bytes", got)
	}
}

// TestEncodeQuality checks what ADPCM costs in fidelity: the decoded audio
// stays close to what went in, for speech and for tones across the band.
func TestEncodeQuality(t *testing.T) {
	tone := func(freq, amp float64) []int16 {
		s := make([]int16, 16000)
		for i := range s {
			s[i] = int16(math.Round(amp * 32767 * math.Sin(2*math.Pi*freq*float64(i)/16000)))
		}
		return s
	}
	tests := []struct {
		name  string
		in    []int16
		minDB float64
	}{
		{"speech", speech(5*16000, 1), 27},
		{"300 Hz at -6 dBFS", tone(300, 0.5), 33},
		{"1 kHz at -20 dBFS", tone(1000, 0.1), 26},
		{"3.4 kHz at -6 dBFS", tone(3400, 0.5), 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := mustEncode(t, tt.in)
			if int64(len(file)) != nodeaudio.Size(int64(len(tt.in))) {
				t.Errorf("file of %d bytes, Size says %d", len(file), nodeaudio.Size(int64(len(tt.in))))
			}
			got := decodeAll(t, file)
			if len(got) != len(tt.in) {
				t.Fatalf("decoded %d samples, encoded %d", len(got), len(tt.in))
			}
			r := snr(tt.in, got)
			t.Logf("SNR %.1f dB", r)
			if r < tt.minDB {
				t.Errorf("SNR %.1f dB, want at least %.0f dB", r, tt.minDB)
			}
		})
	}
}

func TestEncodeIsCanonical(t *testing.T) {
	in := speech(3*nodeaudio.SamplesPerBlock+17, 2)
	a, b := mustEncode(t, in), mustEncode(t, in)
	if !bytes.Equal(a, b) {
		t.Fatal("the same samples gave different bytes")
	}
	// Writing in odd pieces gives the same file as writing at once.
	var buf bytes.Buffer
	w, err := nodeaudio.NewWriter(&buf, int64(len(in)))
	if err != nil {
		t.Fatal(err)
	}
	for rest := in; len(rest) > 0; {
		k := min(len(rest), 333)
		if err := w.Write(rest[:k]); err != nil {
			t.Fatal(err)
		}
		rest = rest[k:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), a) {
		t.Error("streamed file differs from Encode's")
	}
}

func TestWriterCounts(t *testing.T) {
	var buf bytes.Buffer
	w, err := nodeaudio.NewWriter(&buf, 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(make([]int16, 9)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err == nil {
		t.Error("Close accepted 9 of 10 promised samples")
	}
	w, _ = nodeaudio.NewWriter(&buf, 10)
	if err := w.Write(make([]int16, 11)); err == nil {
		t.Error("Write accepted 11 of 10 promised samples")
	}
}

func TestReader(t *testing.T) {
	samples := speech(2*nodeaudio.SamplesPerBlock+100, 3)
	adpcm := mustEncode(t, samples)
	adpcmPCM := decodeAll(t, adpcm)
	pcmBytes := make([]byte, 1000)
	for i := range pcmBytes {
		pcmBytes[i] = byte(i)
	}
	pcmFile := append(mustPCMHeader(t, int64(len(pcmBytes))), pcmBytes...)
	toBytes := func(s []int16) []byte {
		b := make([]byte, 2*len(s))
		for i, v := range s {
			binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
		}
		return b
	}
	tests := []struct {
		name    string
		in      []byte
		size    int64
		want    []byte
		wantErr error
	}{
		{"ADPCM whole", adpcm, int64(2 * len(samples)), toBytes(adpcmPCM), nil},
		{"ADPCM trailing bytes are not audio", append(bytes.Clone(adpcm), "junk"...), int64(2 * len(samples)), toBytes(adpcmPCM), nil},
		{"ADPCM cut in the last block", adpcm[:len(adpcm)-10], int64(2 * len(samples)), toBytes(adpcmPCM[:2*nodeaudio.SamplesPerBlock]), io.ErrUnexpectedEOF},
		{"ADPCM header only", adpcm[:nodeaudio.HeaderSize], int64(2 * len(samples)), nil, io.ErrUnexpectedEOF},
		{"PCM whole", pcmFile, 1000, pcmBytes, nil},
		{"PCM trailing bytes are not audio", append(bytes.Clone(pcmFile), "junk"...), 1000, pcmBytes, nil},
		{"PCM truncated", pcmFile[:len(pcmFile)-10], 1000, pcmBytes[:len(pcmBytes)-10], io.ErrUnexpectedEOF},
		{"PCM header only", pcmFile[:nodeaudio.PCMHeaderSize], 1000, nil, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := nodeaudio.NewReader(bytes.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if r.Size() != tt.size || r.Duration() != nodeaudio.Duration(tt.size) {
				t.Errorf("Size %d, Duration %v; want %d", r.Size(), r.Duration(), tt.size)
			}
			// 7-byte reads straddle block ends and the end of the data.
			var got []byte
			buf := make([]byte, 7)
			for {
				n, err := r.Read(buf)
				got = append(got, buf[:n]...)
				if err == io.EOF {
					if tt.wantErr != nil {
						t.Errorf("clean EOF, want %v", tt.wantErr)
					}
					break
				}
				if err != nil {
					if !errors.Is(err, tt.wantErr) || tt.wantErr == nil {
						t.Errorf("Read error %v, want %v", err, tt.wantErr)
					}
					break
				}
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("read %d bytes, want %d", len(got), len(tt.want))
			}
		})
	}
}

func TestDecodeBlockRejectsBadStepIndex(t *testing.T) {
	block := make([]byte, nodeaudio.BlockAlign)
	block[2] = 89
	if err := nodeaudio.DecodeBlock(block, make([]int16, nodeaudio.SamplesPerBlock)); !errors.Is(err, nodeaudio.ErrFormat) {
		t.Errorf("DecodeBlock error = %v, want ErrFormat", err)
	}
}

func FuzzParseHeader(f *testing.F) {
	for _, n := range []int64{0, 1, 16000, nodeaudio.MaxSamples} {
		h, _ := nodeaudio.Header(n)
		f.Add(h)
	}
	for _, n := range []int64{0, 2, 32000} {
		h, _ := nodeaudio.PCMHeader(n)
		f.Add(h)
	}
	f.Add([]byte("RIFF"))
	f.Fuzz(func(t *testing.T, h []byte) {
		info, err := nodeaudio.ParseHeader(h)
		if err != nil {
			if !errors.Is(err, nodeaudio.ErrFormat) {
				t.Fatalf("error %v is not ErrFormat", err)
			}
			return
		}
		// Accepted means canonical: the header for that size is exactly
		// what was given.
		var want []byte
		switch info.Format {
		case nodeaudio.Format:
			want, err = nodeaudio.Header(info.Samples)
		case nodeaudio.FormatPCM:
			want, err = nodeaudio.PCMHeader(info.DataSize)
		default:
			t.Fatalf("unknown format %q", info.Format)
		}
		if err != nil || int64(len(want)) != info.HeaderSize || !bytes.Equal(want, h[:len(want)]) {
			t.Fatalf("accepted %q as %+v, but its canonical header is %q, %v", h, info, want, err)
		}
	})
}

func FuzzNewReader(f *testing.F) {
	h, _ := nodeaudio.PCMHeader(8)
	f.Add(append(h, 1, 2, 3, 4, 5, 6, 7, 8))
	f.Add(append(h, 1, 2, 3))
	f.Add(h[:20])
	a, _ := nodeaudio.Encode(speech(3000, 4))
	f.Add(a)
	f.Add(a[:len(a)-100])
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := nodeaudio.NewReader(bytes.NewReader(in))
		if err != nil {
			if !errors.Is(err, nodeaudio.ErrFormat) {
				t.Fatalf("error %v is not ErrFormat", err)
			}
			return
		}
		pcm, err := io.ReadAll(r)
		info := r.Info()
		there := int64(len(in)) - info.HeaderSize
		switch {
		case int64(len(pcm)) > r.Size():
			t.Fatalf("read %d bytes past the %d the header promises", len(pcm), r.Size())
		case there >= info.DataSize && err == nil && int64(len(pcm)) != r.Size():
			t.Fatalf("complete file: read %d of %d bytes", len(pcm), r.Size())
		case there >= info.DataSize && err != nil && !errors.Is(err, nodeaudio.ErrFormat):
			// A complete ADPCM file fails only on a corrupt block.
			t.Fatalf("complete file: %v", err)
		case there < info.DataSize && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, nodeaudio.ErrFormat):
			// ErrFormat: a corrupt block came before the cut.
			t.Fatalf("truncated file: error %v, want io.ErrUnexpectedEOF", err)
		}
	})
}

// FuzzDecodeBlock decodes arbitrary blocks: every input with a valid step
// index decodes, and a block the encoder wrote from the decoded samples
// decodes to them again within the codec's error.
func FuzzDecodeBlock(f *testing.F) {
	a, _ := nodeaudio.Encode(speech(nodeaudio.SamplesPerBlock, 5))
	f.Add(a[nodeaudio.HeaderSize:])
	f.Add(bytes.Repeat([]byte{0x77}, nodeaudio.BlockAlign))
	f.Add(bytes.Repeat([]byte{0x88, 0x0F}, nodeaudio.BlockAlign/2))
	f.Fuzz(func(t *testing.T, in []byte) {
		block := make([]byte, nodeaudio.BlockAlign)
		copy(block, in)
		out := make([]int16, nodeaudio.SamplesPerBlock)
		err := nodeaudio.DecodeBlock(block, out)
		if (err != nil) != (block[2] > 88) {
			t.Fatalf("step index %d: error %v", block[2], err)
		}
		if err != nil {
			return
		}
		if out[0] != int16(binary.LittleEndian.Uint16(block)) {
			t.Fatalf("first sample %d, header says %d", out[0], int16(binary.LittleEndian.Uint16(block)))
		}
		again := decodeAll(t, mustEncode(t, out))
		if len(again) != len(out) {
			t.Fatalf("re-encoded %d samples into %d", len(out), len(again))
		}
	})
}

func Example() {
	samples := make([]int16, 16000/4) // a quarter second of silence
	file, err := nodeaudio.Encode(samples)
	if err != nil {
		panic(err)
	}
	r, err := nodeaudio.NewReader(bytes.NewReader(file))
	if err != nil {
		panic(err)
	}
	n, err := io.Copy(io.Discard, r)
	fmt.Println(r.Info().Format, len(file), r.Size(), n, r.Duration(), err)
	// Output:
	// wav/ima-adpcm/16000/mono 2108 8000 8000 250ms <nil>
}
