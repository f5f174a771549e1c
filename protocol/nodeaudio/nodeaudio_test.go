package nodeaudio_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"loaxa.vn/protocol/nodeaudio"
)

func mustHeader(t testing.TB, size int64) []byte {
	t.Helper()
	h, err := nodeaudio.Header(size)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHeader(t *testing.T) {
	tests := []struct {
		size int64
		ok   bool
	}{
		{0, true},
		{2, true},
		{32000, true},
		{nodeaudio.MaxDataSize - 1, true}, // MaxDataSize is odd: the largest whole-sample size is one less
		{-2, false},
		{1, false},
		{32001, false},
		{nodeaudio.MaxDataSize + 1, false},
		{1 << 40, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.size), func(t *testing.T) {
			h, err := nodeaudio.Header(tt.size)
			if (err == nil) != tt.ok {
				t.Fatalf("Header(%d) error = %v, want ok=%v", tt.size, err, tt.ok)
			}
			if !tt.ok {
				return
			}
			if len(h) != nodeaudio.HeaderSize {
				t.Fatalf("header is %d bytes", len(h))
			}
			got, err := nodeaudio.ParseHeader(h)
			if err != nil || got != tt.size {
				t.Errorf("ParseHeader(Header(%d)) = %d, %v", tt.size, got, err)
			}
		})
	}
}

func TestHeaderBytes(t *testing.T) {
	// The canonical header for one second, written out field by field: if
	// this changes, every content id changes.
	want := []byte("RIFF" + "\x24\x7d\x00\x00" + "WAVE" +
		"fmt " + "\x10\x00\x00\x00" + "\x01\x00" + "\x01\x00" + "\x80\x3e\x00\x00" + "\x00\x7d\x00\x00" + "\x02\x00" + "\x10\x00" +
		"data" + "\x00\x7d\x00\x00")
	if got := mustHeader(t, 32000); !bytes.Equal(got, want) {
		t.Errorf("Header(32000) = %q\nwant            %q", got, want)
	}
}

func TestParseHeaderRejects(t *testing.T) {
	good := mustHeader(t, 3200)
	set := func(off int, v uint32, n int) []byte {
		h := bytes.Clone(good)
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
		{"short", good[:43]},
		{"RIFF size", set(4, 100, 4)},
		{"not WAVE", append(append(bytes.Clone(good[:8]), "AVI "...), good[12:]...)},
		{"fmt size", set(16, 18, 4)},
		{"float", set(20, 3, 2)},
		{"stereo", set(22, 2, 2)},
		{"8 kHz", set(24, 8000, 4)},
		{"byte rate", set(28, 16000, 4)},
		{"block align", set(32, 4, 2)},
		{"8-bit", set(34, 8, 2)},
		{"odd data size", func() []byte {
			h := mustHeader(t, 3200)
			binary.LittleEndian.PutUint32(h[40:], 3201)
			binary.LittleEndian.PutUint32(h[4:], 3201+36)
			return h
		}()},
		{"LIST instead of data", append(append(bytes.Clone(good[:36]), "LIST"...), good[40:]...)},
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

func TestReader(t *testing.T) {
	pcm := make([]byte, 1000)
	for i := range pcm {
		pcm[i] = byte(i)
	}
	file := append(mustHeader(t, int64(len(pcm))), pcm...)
	tests := []struct {
		name    string
		in      []byte
		want    []byte
		wantErr error
	}{
		{"whole", file, pcm, nil},
		{"trailing bytes are not audio", append(bytes.Clone(file), "junk"...), pcm, nil},
		{"truncated", file[:len(file)-10], pcm[:len(pcm)-10], io.ErrUnexpectedEOF},
		{"header only", file[:nodeaudio.HeaderSize], nil, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// 7-byte reads straddle the end of the data.
			r, err := nodeaudio.NewReader(bytes.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if r.Size() != int64(len(pcm)) || r.Duration() != nodeaudio.Duration(int64(len(pcm))) {
				t.Errorf("Size %d, Duration %v", r.Size(), r.Duration())
			}
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

func FuzzParseHeader(f *testing.F) {
	for _, n := range []int64{0, 2, 32000, nodeaudio.MaxDataSize - 1} {
		h, _ := nodeaudio.Header(n)
		f.Add(h)
	}
	f.Add([]byte("RIFF"))
	f.Fuzz(func(t *testing.T, h []byte) {
		size, err := nodeaudio.ParseHeader(h)
		if err != nil {
			if !errors.Is(err, nodeaudio.ErrFormat) {
				t.Fatalf("error %v is not ErrFormat", err)
			}
			return
		}
		// Accepted means canonical: the header for that size is exactly
		// what was given.
		want, err := nodeaudio.Header(size)
		if err != nil || !bytes.Equal(want, h[:nodeaudio.HeaderSize]) {
			t.Fatalf("accepted %q as size %d, but Header(%d) = %q, %v", h[:nodeaudio.HeaderSize], size, size, want, err)
		}
	})
}

func FuzzNewReader(f *testing.F) {
	h, _ := nodeaudio.Header(8)
	f.Add(append(h, 1, 2, 3, 4, 5, 6, 7, 8))
	f.Add(append(h, 1, 2, 3))
	f.Add(h[:20])
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := nodeaudio.NewReader(bytes.NewReader(in))
		if err != nil {
			return
		}
		pcm, err := io.ReadAll(r)
		there := int64(len(in) - nodeaudio.HeaderSize)
		switch {
		case int64(len(pcm)) > r.Size():
			t.Fatalf("read %d bytes past the %d the header promises", len(pcm), r.Size())
		case there >= r.Size() && (err != nil || int64(len(pcm)) != r.Size()):
			t.Fatalf("complete file: read %d of %d bytes, %v", len(pcm), r.Size(), err)
		case there < r.Size() && !errors.Is(err, io.ErrUnexpectedEOF):
			t.Fatalf("truncated file: error %v, want io.ErrUnexpectedEOF", err)
		}
	})
}

func Example() {
	pcm := make([]byte, 2*16000/4) // a quarter second of silence
	h, err := nodeaudio.Header(int64(len(pcm)))
	if err != nil {
		panic(err)
	}
	file := append(h, pcm...)

	r, err := nodeaudio.NewReader(bytes.NewReader(file))
	if err != nil {
		panic(err)
	}
	n, err := io.Copy(io.Discard, r)
	fmt.Println(nodeaudio.Format, len(file), r.Size(), n, r.Duration(), err)
	// Output:
	// wav/pcm16/16000/mono 8044 8000 8000 250ms <nil>
}
