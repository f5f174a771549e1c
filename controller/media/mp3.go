package media

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/hajimehoshi/go-mp3"

	"loaxa.vn/controller/loaxa"
)

// MP3 frame header fields (ISO/IEC 11172-3 and 13818-3, Layer III only).
const (
	mpeg25 = 0
	mpeg2  = 2
	mpeg1  = 3
)

var (
	mp3Rates = map[int][3]int{
		mpeg1:  {44100, 48000, 32000},
		mpeg2:  {22050, 24000, 16000},
		mpeg25: {11025, 12000, 8000},
	}
	// Layer III bit rates in kbit/s by bit rate index (0: free format).
	mp3Kbps1 = [15]int{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320}
	mp3Kbps2 = [15]int{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160}
)

// maxMP3Gaps bounds how many stretches of junk between frames a file may
// have: a real file has none or a few (a tag in the middle of a stream
// cut together), and each one costs a segment in memory.
const maxMP3Gaps = 64

// mp3Frame is what a frame header says.
type mp3Frame struct {
	version, rate, kbps int
	mono                bool
	size                int64 // bytes, header included
	samples             int   // per channel
}

// parseMP3Header reads a Layer III frame header; ok is false for anything
// that is not one.
func parseMP3Header(h []byte) (f mp3Frame, ok bool, why string) {
	if len(h) < 4 || h[0] != 0xFF || h[1]&0xE0 != 0xE0 {
		return f, false, ""
	}
	f.version = int(h[1]>>3) & 3
	layer := int(h[1]>>1) & 3
	bitrate := int(h[2] >> 4)
	rateIdx := int(h[2]>>2) & 3
	padding := int64(h[2]>>1) & 1
	f.mono = h[3]>>6 == 3
	switch {
	case f.version == 1 || layer == 0 || bitrate == 15 || rateIdx == 3 || h[3]&3 == 2:
		return f, false, "" // reserved values: not a header
	case layer != 1:
		return f, false, fmt.Sprintf("MPEG Layer %s audio (MP%d)", []string{"", "III", "II", "I"}[layer], 4-layer)
	case bitrate == 0:
		return f, false, "free-format MP3"
	}
	f.rate = mp3Rates[f.version][rateIdx]
	if f.version == mpeg1 {
		f.kbps = mp3Kbps1[bitrate]
		f.samples = 1152
		f.size = int64(144000*f.kbps/f.rate) + padding
	} else {
		f.kbps = mp3Kbps2[bitrate]
		f.samples = 576
		f.size = int64(72000*f.kbps/f.rate) + padding
	}
	return f, true, ""
}

// mp3Info is what the frame walk learns about an MP3 upload.
type mp3Info struct {
	rate     int
	channels int
	frames   int64
	samples  int64     // per channel, frames × samples per frame
	bytes    int64     // of audio frames
	segments []segment // the frames, as runs of contiguous bytes
}

type segment struct{ off, n int64 }

// probeMP3 walks the frames of the MP3 upload in f (size bytes): after an
// ID3v2 tag, every Layer III frame to the end, skipping a trailing ID3v1
// or APE tag and resynchronising over junk between frames the way players
// do. It reads only headers, never allocating by a size taken from the
// file. The frames it found are what the decoder sees (see mp3View), so
// the decoder is never handed a false sync word inside junk.
func probeMP3(f io.ReaderAt, size int64, name string) (*mp3Info, error) {
	if size == 0 {
		return nil, &loaxa.Error{Code: loaxa.EInvalid, Reason: loaxa.ReasonAudioSilent, Message: fmt.Sprintf("%s is empty", name)}
	}
	off, err := skipID3v2(f, size, name)
	if err != nil {
		return nil, err
	}
	var (
		info    = mp3Info{}
		first   *mp3Frame
		win     = &window{f: f, size: size}
		seg     = segment{off: off}
		skipped int64 // junk bytes since the last frame
		gaps    int
		xing    bool
	)
	end := size - trailingTags(f, size)
	for off < end {
		if end-off < 4 {
			if b, err := win.at(off, 1); err == nil && b[0] == 0xFF && skipped == 0 && info.frames > 0 {
				return nil, truncated("it ends inside an MP3 frame header, %d bytes from the end", end-off)
			}
			skipped += end - off
			break
		}
		hdr, err := win.at(off, 4)
		if err != nil {
			return nil, fmt.Errorf("read mp3 frame header at %d: %w", off, err)
		}
		fr, ok, why := parseMP3Header(hdr)
		if !ok && why != "" && info.frames == 0 {
			return nil, loaxa.Errorf(loaxa.EUnsupported, "%s holds %s, not MP3 (MPEG Layer III); export it as MP3 or WAV", name, why)
		}
		if ok && first != nil && (fr.version != first.version || fr.rate != first.rate) {
			// A header that disagrees with the stream is a false sync inside
			// junk, unless the stream really changes: resynchronise.
			ok = false
		}
		if !ok {
			if seg.n > 0 {
				info.segments = append(info.segments, seg)
				seg = segment{}
			}
			skipped++
			off++
			continue
		}
		if fr.size > end-off {
			return nil, truncated("its last MP3 frame needs %d bytes, only %d are there", fr.size, end-off)
		}
		if skipped > 0 {
			if info.frames > 0 {
				gaps++
				if gaps > maxMP3Gaps {
					return nil, loaxa.Errorf(loaxa.EInvalid, "%s has junk between its MP3 frames in more than %d places; the file is damaged, export it again", name, maxMP3Gaps)
				}
			}
			skipped = 0
		}
		if first == nil {
			first = &fr
			info.rate = fr.rate
			info.channels = 2
			if fr.mono {
				info.channels = 1
			}
			if fr.version == mpeg25 {
				return nil, loaxa.Errorf(loaxa.EUnsupported, "%s is an MPEG-2.5 MP3 sampled at %d Hz, which is not supported; export it as MP3 at 16 kHz or more, or as WAV", name, fr.rate)
			}
			// A Xing/Info/VBRI frame first carries the encoder's tag, not
			// audio: players skip it, and so does the view.
			if xing, err = isXingFrame(f, off, fr); err != nil {
				return nil, err
			}
			if xing {
				off += fr.size
				seg = segment{off: off}
				continue
			}
		}
		if seg.n == 0 {
			seg.off = off
		}
		seg.n += fr.size
		info.frames++
		info.samples += int64(fr.samples)
		info.bytes += fr.size
		off += fr.size
	}
	if seg.n > 0 {
		info.segments = append(info.segments, seg)
	}
	if info.frames == 0 {
		if first != nil {
			return nil, &loaxa.Error{Code: loaxa.EInvalid, Reason: loaxa.ReasonAudioSilent, Message: fmt.Sprintf("%s holds no audio: it has only an MP3 tag frame", name)}
		}
		return nil, loaxa.Errorf(loaxa.EInvalid, "%s has no MP3 frames: it is not an MP3 file, or it is damaged", name)
	}
	if skipped > 0 && skipped >= info.bytes/info.frames {
		// More than a frame of junk at the end: most likely the rest of a
		// frame whose header was cut or damaged.
		return nil, loaxa.Errorf(loaxa.EInvalid, "the file is truncated or damaged: %d bytes after its last whole MP3 frame are not audio", skipped)
	}
	return &info, nil
}

// window reads small pieces of a file through a 64 KB buffer, so that
// resynchronising byte by byte over junk costs no system call per byte.
type window struct {
	f    io.ReaderAt
	size int64
	buf  []byte
	off  int64 // file offset of buf[0]
}

// at returns n bytes at off (n ≤ 64 KB, off+n ≤ size), valid until the next
// call.
func (w *window) at(off int64, n int) ([]byte, error) {
	if off < w.off || off+int64(n) > w.off+int64(len(w.buf)) {
		if w.buf == nil {
			w.buf = make([]byte, 64<<10)
		}
		w.buf = w.buf[:cap(w.buf)]
		k, err := w.f.ReadAt(w.buf[:min(int64(len(w.buf)), w.size-off)], off)
		if err != nil && !(err == io.EOF && k >= n) {
			return nil, err
		}
		w.buf, w.off = w.buf[:k], off
	}
	return w.buf[off-w.off : off-w.off+int64(n)], nil
}

// skipID3v2 returns the offset after the ID3v2 tags at the start, if any.
func skipID3v2(f io.ReaderAt, size int64, name string) (int64, error) {
	off := int64(0)
	h := make([]byte, 10)
	for range 4 { // a few tags in a row happen; more are not music
		if size-off < 10 {
			return off, nil
		}
		if _, err := f.ReadAt(h, off); err != nil {
			return 0, fmt.Errorf("read id3 tag: %w", err)
		}
		if string(h[:3]) != "ID3" {
			return off, nil
		}
		if (h[6]|h[7]|h[8]|h[9])&0x80 != 0 {
			return 0, loaxa.Errorf(loaxa.EInvalid, "%s has a damaged ID3 tag at byte %d", name, off)
		}
		n := int64(h[6])<<21 | int64(h[7])<<14 | int64(h[8])<<7 | int64(h[9])
		n += 10
		if h[5]&0x10 != 0 {
			n += 10 // footer
		}
		if n > size-off {
			return 0, truncated("its ID3 tag promises %d bytes, only %d are there", n, size-off)
		}
		off += n
	}
	return off, nil
}

// trailingTags returns the size of ID3v1 and APEv2 tags at the end.
func trailingTags(f io.ReaderAt, size int64) int64 {
	var n int64
	if size >= 128 {
		b := make([]byte, 3)
		if _, err := f.ReadAt(b, size-128); err == nil && string(b) == "TAG" {
			n = 128
		}
	}
	if size-n >= 32 {
		b := make([]byte, 32)
		if _, err := f.ReadAt(b, size-n-32); err == nil && string(b[:8]) == "APETAGEX" {
			tag := int64(binary.LittleEndian.Uint32(b[12:])) // footer and items
			if b[23]&0x80 != 0 {
				tag += 32 // header too
			}
			if tag <= size-n {
				n += tag
			}
		}
	}
	return n
}

// isXingFrame reports whether the frame at off holds a Xing, Info or VBRI
// tag instead of audio.
func isXingFrame(f io.ReaderAt, off int64, fr mp3Frame) (bool, error) {
	side := 32
	switch {
	case fr.version == mpeg1 && fr.mono, fr.version != mpeg1 && !fr.mono:
		side = 17
	case fr.version != mpeg1 && fr.mono:
		side = 9
	}
	b := make([]byte, 4+side+4)
	if int64(len(b)) > fr.size {
		return false, nil
	}
	if _, err := f.ReadAt(b, off); err != nil {
		return false, fmt.Errorf("read mp3 frame: %w", err)
	}
	tag := b[4+side:]
	if bytes.Equal(tag, []byte("Xing")) || bytes.Equal(tag, []byte("Info")) {
		return true, nil
	}
	if fr.size >= 4+32+4 {
		v := make([]byte, 4)
		if _, err := f.ReadAt(v, off+4+32); err != nil {
			return false, fmt.Errorf("read mp3 frame: %w", err)
		}
		return string(v) == "VBRI", nil
	}
	return false, nil
}

// mp3View reads the frames the walk found, one segment after another. It
// is a plain io.Reader on purpose: go-mp3 given an io.Seeker scans the
// whole file and keeps every frame's offset; given a reader, it streams.
type mp3View struct {
	f    io.ReaderAt
	segs []segment
	off  int64 // within segs[0]
}

func (v *mp3View) Read(p []byte) (int, error) {
	for len(v.segs) > 0 && v.off == v.segs[0].n {
		v.segs, v.off = v.segs[1:], 0
	}
	if len(v.segs) == 0 {
		return 0, io.EOF
	}
	s := v.segs[0]
	if rest := s.n - v.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := v.f.ReadAt(p, s.off+v.off)
	v.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// errMP3Damaged marks MP3 frame data go-mp3 could not decode.
var errMP3Damaged = loaxa.Errorf(loaxa.EInvalid, "the MP3 data is damaged: some of its frames cannot be decoded; export the file again")

// mp3Decoder decodes the MP3 frames with go-mp3 into mono float samples.
type mp3Decoder struct {
	d    *mp3.Decoder
	raw  []byte
	mono []float32
	left []byte // a partial stereo frame carried to the next read
}

func newMP3Decoder(f io.ReaderAt, info *mp3Info) (dec *mp3Decoder, err error) {
	defer func() {
		if p := recover(); p != nil {
			dec, err = nil, fmt.Errorf("%w (decoder panic: %v)", errMP3Damaged, p)
		}
	}()
	d, err := mp3.NewDecoder(&mp3View{f: f, segs: info.segments})
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", errMP3Damaged, err)
	}
	if d.SampleRate() != info.rate {
		return nil, fmt.Errorf("mp3 decoder sees %d Hz, the frames say %d Hz", d.SampleRate(), info.rate)
	}
	return &mp3Decoder{d: d, raw: make([]byte, 4*chunkSamples/2)}, nil
}

// next returns the next mono samples (averaging go-mp3's two channels,
// which are equal for a mono file) or io.EOF. Frames whose headers were
// sound may still hold corrupt data: go-mp3's complaints, and its panics
// (it indexes tables by values read from the file), are the upload's
// fault and say so.
func (m *mp3Decoder) next() (mono []float32, err error) {
	defer func() {
		if p := recover(); p != nil {
			mono, err = nil, fmt.Errorf("%w (decoder panic: %v)", errMP3Damaged, p)
		}
	}()
	k := copy(m.raw, m.left)
	n, err := m.d.Read(m.raw[k:])
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("%w (%v)", errMP3Damaged, err)
	}
	n += k
	if n == 0 && err != nil {
		return nil, err
	}
	whole := n &^ 3
	m.left = append(m.left[:0], m.raw[whole:n]...)
	m.mono = m.mono[:0]
	for i := 0; i < whole; i += 4 {
		l := int16(binary.LittleEndian.Uint16(m.raw[i:]))
		r := int16(binary.LittleEndian.Uint16(m.raw[i+2:]))
		m.mono = append(m.mono, float32((float64(l)+float64(r))/65536))
	}
	if err == io.EOF {
		err = nil // the caller asks again and hears EOF then
	}
	return m.mono, err
}
