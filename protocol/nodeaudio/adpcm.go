package nodeaudio

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"
)

// IMA ADPCM layout of the node format (see the package doc).
const (
	// HeaderSize is the size of the canonical header: RIFF, fmt (20), fact
	// (4) and the data chunk header.
	HeaderSize = 60
	// BlockAlign is the size of one ADPCM block: a 4-byte header (the first
	// sample and the step index) and 1020 bytes of 4-bit codes.
	BlockAlign = 1024
	// SamplesPerBlock is how many samples one block decodes to: the one in
	// its header and two per code byte.
	SamplesPerBlock = 1 + (BlockAlign-4)*2
	// MaxSamples is the most samples a canonical file may hold (74 hours):
	// the fact chunk counts them in 32 bits.
	MaxSamples = 1<<32 - 1
)

// formatIMAADPCM is the WAVE format code of IMA (DVI) ADPCM.
const formatIMAADPCM = 0x0011

// byteRate is the fmt chunk's average bytes a second, rounded down as
// ffmpeg and sox write it.
const byteRate = SampleRate * BlockAlign / SamplesPerBlock

// stepTable and indexTable are the IMA ADPCM tables (IMA Digital Audio
// Focus and Technical Working Groups, "Recommended Practices for Enhancing
// Digital Audio Compatibility in Multimedia Systems", 1992).
var stepTable = [89]int32{
	7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 19, 21, 23, 25, 28, 31, 34, 37, 41, 45,
	50, 55, 60, 66, 73, 80, 88, 97, 107, 118, 130, 143, 157, 173, 190, 209, 230,
	253, 279, 307, 337, 371, 408, 449, 494, 544, 598, 658, 724, 796, 876, 963,
	1060, 1166, 1282, 1411, 1552, 1707, 1878, 2066, 2272, 2499, 2749, 3024, 3327,
	3660, 4026, 4428, 4871, 5358, 5894, 6484, 7132, 7845, 8630, 9493, 10442,
	11487, 12635, 13899, 15289, 16818, 18500, 20350, 22385, 24623, 27086, 29794,
	32767,
}

var indexTable = [8]int32{-1, -1, -1, -1, 2, 4, 6, 8}

// Blocks returns how many ADPCM blocks hold n samples.
func Blocks(samples int64) int64 {
	return (samples + SamplesPerBlock - 1) / SamplesPerBlock
}

// Size returns the size of the node audio file for n samples.
func Size(samples int64) int64 {
	return HeaderSize + Blocks(samples)*BlockAlign
}

// Header returns the canonical 60-byte header of a node audio file of n
// samples.
func Header(samples int64) ([]byte, error) {
	if samples < 0 || samples > MaxSamples {
		return nil, fmt.Errorf("node audio header: %d samples is outside 0 to %d", samples, int64(MaxSamples))
	}
	data := Blocks(samples) * BlockAlign
	h := make([]byte, HeaderSize)
	le := binary.LittleEndian
	copy(h[0:], "RIFF")
	le.PutUint32(h[4:], uint32(HeaderSize-8+data))
	copy(h[8:], "WAVE")
	copy(h[12:], "fmt ")
	le.PutUint32(h[16:], 20)
	le.PutUint16(h[20:], formatIMAADPCM)
	le.PutUint16(h[22:], Channels)
	le.PutUint32(h[24:], SampleRate)
	le.PutUint32(h[28:], byteRate)
	le.PutUint16(h[32:], BlockAlign)
	le.PutUint16(h[34:], 4) // bits per sample
	le.PutUint16(h[36:], 2) // cbSize: the extra field below
	le.PutUint16(h[38:], SamplesPerBlock)
	copy(h[40:], "fact")
	le.PutUint32(h[44:], 4)
	le.PutUint32(h[48:], uint32(samples))
	copy(h[52:], "data")
	le.PutUint32(h[56:], uint32(data))
	return h, nil
}

// isADPCM reports whether the fmt chunk of h (at least 44 bytes) claims
// IMA ADPCM, i.e. whether h is the start of an ADPCM file if it is node
// audio at all.
func isADPCM(h []byte) bool {
	return binary.LittleEndian.Uint16(h[20:]) == formatIMAADPCM
}

// parseADPCMHeader checks a canonical ADPCM header (h holds at least
// HeaderSize bytes).
func parseADPCMHeader(h []byte) (Info, error) {
	if len(h) < HeaderSize {
		return Info{}, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrFormat, len(h), HeaderSize)
	}
	samples := int64(binary.LittleEndian.Uint32(h[48:]))
	want, err := Header(samples)
	if err != nil {
		return Info{}, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if string(h[:HeaderSize]) != string(want) {
		return Info{}, fmt.Errorf("%w: header is not the canonical %s header", ErrFormat, Format)
	}
	return Info{Format: Format, HeaderSize: HeaderSize, DataSize: Blocks(samples) * BlockAlign, Samples: samples}, nil
}

// Encode returns the node audio file of samples; for tests and small
// content. Writer streams long content.
func Encode(samples []int16) ([]byte, error) {
	out := make([]byte, 0, Size(int64(len(samples))))
	w, err := NewWriter(appender{&out}, int64(len(samples)))
	if err != nil {
		return nil, err
	}
	if err := w.Write(samples); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out, nil
}

type appender struct{ b *[]byte }

func (a appender) Write(p []byte) (int, error) {
	*a.b = append(*a.b, p...)
	return len(p), nil
}

// Writer encodes samples into a node audio file. The sample count is
// fixed up front, because the header that comes first says it; the same
// samples always give the same bytes.
type Writer struct {
	w        io.Writer
	samples  int64 // promised
	received int64
	block    [SamplesPerBlock]int16
	n        int // samples in block
	enc      encoder
	out      [BlockAlign]byte
	err      error
}

// NewWriter writes the header of a file of n samples to w and returns a
// writer for the samples.
func NewWriter(w io.Writer, samples int64) (*Writer, error) {
	h, err := Header(samples)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(h); err != nil {
		return nil, fmt.Errorf("write node audio header: %w", err)
	}
	return &Writer{w: w, samples: samples}, nil
}

// Write encodes samples (16 kHz mono). Writing more than the promised
// count is an error.
func (w *Writer) Write(samples []int16) error {
	if w.err != nil {
		return w.err
	}
	if w.received+int64(len(samples)) > w.samples {
		w.err = fmt.Errorf("node audio: %d samples written, more than the %d promised", w.received+int64(len(samples)), w.samples)
		return w.err
	}
	w.received += int64(len(samples))
	for len(samples) > 0 {
		k := copy(w.block[w.n:], samples)
		w.n += k
		samples = samples[k:]
		if w.n == SamplesPerBlock {
			if err := w.flushBlock(); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close writes the last block, padded with silence, and checks that the
// promised number of samples was written. It does not close the
// underlying writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.received != w.samples {
		w.err = fmt.Errorf("node audio: %d samples written, %d promised", w.received, w.samples)
		return w.err
	}
	if w.n > 0 {
		clear(w.block[w.n:])
		w.n = SamplesPerBlock
		return w.flushBlock()
	}
	return nil
}

func (w *Writer) flushBlock() error {
	w.enc.block(w.block[:], w.out[:])
	w.n = 0
	if _, err := w.w.Write(w.out[:]); err != nil {
		w.err = fmt.Errorf("write node audio: %w", err)
	}
	return w.err
}

// encoder is the IMA ADPCM encoder state that carries from block to block:
// the step index.
type encoder struct {
	index int32
}

// block encodes SamplesPerBlock samples into one block.
func (e *encoder) block(s []int16, out []byte) {
	binary.LittleEndian.PutUint16(out[0:], uint16(s[0]))
	out[2] = byte(e.index)
	out[3] = 0
	pred := int32(s[0])
	for i := 1; i < len(s); i += 2 {
		lo := e.code(&pred, int32(s[i]))
		hi := e.code(&pred, int32(s[i+1]))
		out[4+(i-1)/2] = lo | hi<<4
	}
}

// code chooses the 4-bit code whose decoded value is nearest x, and
// advances the predictor and step index exactly as the decoder will.
func (e *encoder) code(pred *int32, x int32) byte {
	step := stepTable[e.index]
	diff := x - *pred
	var sign byte
	if diff < 0 {
		sign = 8
		diff = -diff
	}
	// The decoder reconstructs step/8 + m·step/4 for magnitude code m
	// (with its own truncations); pick the m that lands nearest diff.
	best, bestErr := byte(0), int32(-1)
	for m := byte(0); m < 8; m++ {
		d := delta(step, m)
		e := d - diff
		if e < 0 {
			e = -e
		}
		if bestErr < 0 || e < bestErr {
			best, bestErr = m, e
		}
	}
	c := sign | best
	*pred = clamp16(*pred + signed(delta(step, best), c))
	e.index = nextIndex(e.index, c)
	return c
}

// delta is the magnitude the decoder adds for code bits m (0–7) at step.
func delta(step int32, m byte) int32 {
	d := step >> 3
	if m&4 != 0 {
		d += step
	}
	if m&2 != 0 {
		d += step >> 1
	}
	if m&1 != 0 {
		d += step >> 2
	}
	return d
}

func signed(d int32, c byte) int32 {
	if c&8 != 0 {
		return -d
	}
	return d
}

func nextIndex(index int32, c byte) int32 {
	index += indexTable[c&7]
	return min(max(index, 0), 88)
}

func clamp16(v int32) int32 {
	return min(max(v, -32768), 32767)
}

// DecodeBlock decodes one ADPCM block (BlockAlign bytes) into out, which
// must hold SamplesPerBlock samples. It fails on a step index beyond the
// table, which no encoder writes.
func DecodeBlock(in []byte, out []int16) error {
	if len(in) != BlockAlign || len(out) < SamplesPerBlock {
		return fmt.Errorf("%w: ADPCM block of %d bytes into %d samples", ErrFormat, len(in), len(out))
	}
	return decodeIMA(in, out, "ADPCM block")
}

// decodeIMA decodes one IMA ADPCM block of any length — a 4-byte header
// (the first sample and the step index), then two samples a byte — into
// out, which holds 1 + 2·(len(in)−4) samples; what names the block in the
// error of a step index beyond the table.
func decodeIMA(in []byte, out []int16, what string) error {
	pred := int32(int16(binary.LittleEndian.Uint16(in)))
	index := in[2]
	if index > 88 {
		return fmt.Errorf("%w: %s step index %d is beyond 88", ErrFormat, what, index)
	}
	out[0] = int16(pred)
	data := in[4:]
	out = out[1 : 1+2*len(data)]
	for i, b := range data {
		step := &imaSteps[index]
		pred = clamp16(pred + step.diff[b&0xF])
		index = step.next[b&0xF]
		out[2*i] = int16(pred)
		step = &imaSteps[index]
		pred = clamp16(pred + step.diff[b>>4])
		index = step.next[b>>4]
		out[2*i+1] = int16(pred)
	}
	return nil
}

// imaStep is what each 4-bit code does at one step index: the signed
// difference the decoder adds (delta and signed) and the next step index
// (nextIndex), worked out once for the decoder's inner loop.
type imaStep struct {
	diff [16]int32
	next [16]uint8
}

var imaSteps = func() (t [89]imaStep) {
	for i := range t {
		for c := range byte(16) {
			t[i].diff[c] = signed(delta(stepTable[i], c&7), c)
			t[i].next[c] = uint8(nextIndex(int32(i), c))
		}
	}
	return t
}()

// blockDecoder reads ADPCM blocks from r and serves the decoded samples as
// s16le bytes, up to the sample count of the header.
type blockDecoder struct {
	r       io.Reader
	left    int64     // samples still to serve
	buf     *blockBuf // from the first block to the end
	pending []byte    // decoded bytes not yet read
	blocks  int64
	err     error
}

// blockBuf is a decoder's working space, 9 KB. A play opens a reader for
// each of its parts (chime, message, chime) when it is prepared, and reads
// them one after the other: the space is taken at a reader's first block
// and given back at its end, so the parts not yet playing hold none and
// the next play reuses it.
type blockBuf struct {
	in      [BlockAlign]byte
	samples [SamplesPerBlock]int16
	pcm     [2 * SamplesPerBlock]byte
}

var blockBufs = sync.Pool{New: func() any { return new(blockBuf) }}

func newBlockDecoder(r io.Reader, samples int64) *blockDecoder {
	return &blockDecoder{r: r, left: samples}
}

func (d *blockDecoder) Read(p []byte) (int, error) {
	if len(d.pending) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		if d.left == 0 {
			if d.buf != nil {
				blockBufs.Put(d.buf)
				d.buf = nil
			}
			return 0, io.EOF
		}
		if err := d.next(); err != nil {
			d.err = err
			return 0, err
		}
	}
	n := copy(p, d.pending)
	d.pending = d.pending[n:]
	return n, nil
}

// next decodes the next block into pending.
func (d *blockDecoder) next() error {
	if d.buf == nil {
		d.buf = blockBufs.Get().(*blockBuf)
	}
	b := d.buf
	if n, err := io.ReadFull(d.r, b.in[:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return fmt.Errorf("node audio: %w in block %d with %d bytes of it and %d samples left", io.ErrUnexpectedEOF, d.blocks, n, d.left)
		}
		return err
	}
	if err := DecodeBlock(b.in[:], b.samples[:]); err != nil {
		return fmt.Errorf("block %d: %w", d.blocks, err)
	}
	d.blocks++
	k := min(int64(SamplesPerBlock), d.left)
	d.left -= k
	for i, s := range b.samples[:k] {
		binary.LittleEndian.PutUint16(b.pcm[2*i:], uint16(s))
	}
	d.pending = b.pcm[:2*k]
	return nil
}
