package alsatest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Capture format: what the plug in front of the capture converts every
// playback to, and what oto writes unconverted for a 16 kHz mono context.
const (
	SampleRate     = 16000
	Channels       = 1
	BytesPerSample = 4 // FLOAT_LE
)

const (
	bytesPerSecond = SampleRate * Channels * BytesPerSample
	// pipeSize is the FIFO's kernel buffer: how far a writer may run ahead
	// of the pacer (64 ms at the capture rate).
	pipeSize = 4096
	// burst is the most the pacer reads at once after the FIFO was idle, like
	// a sound card's buffer: idle time does not turn into a later rush.
	burst = bytesPerSecond / 10
	tick  = 10 * time.Millisecond
)

// Capture is what ALSA's default playback device of this process played
// during one test. Create it with Setup.
type Capture struct {
	// Home is the HOME directory holding the .asoundrc.
	Home string
	// Path is the capture file: raw FLOAT_LE, 16 kHz, mono, from Setup on.
	Path string
	// Device is the FIFO the ALSA file plugin writes to.
	Device string

	dev  *device
	out  *os.File
	stop chan struct{}
	done chan struct{}

	mu  sync.Mutex
	n   int64 // bytes written to out
	err error // why the pacer stopped early
}

// device is the process's capture device: the .asoundrc and the FIFO it
// names. It outlives the test that made it, because oto opens the sound
// device once per process and never closes it: whatever a later test plays
// through that context still goes to this FIFO.
type device struct {
	home string
	path string
	fifo *os.File
}

// theDevice is the process's device, made by the first Setup; active says
// a Capture is reading it.
var theDevice struct {
	sync.Mutex
	dev    *device
	active bool
}

// Setup redirects ALSA's default device of this process into a new Capture:
// the first call writes the configuration into a temporary HOME and makes
// the device FIFO, which every later call in the process reuses (oto keeps
// the device it opened for the life of the process, so a test run again
// with -count=N hears it as the first run did). Setup sets HOME and
// XDG_CONFIG_HOME with t.Setenv (so the test must not be parallel), and
// reads the device at real-time pace into a capture file of its own until
// the test ends: Len, SamplesFrom and Await count from Setup. Call it
// before any oto context is created in the test.
func Setup(t testing.TB) *Capture {
	t.Helper()
	dev, err := claimDevice()
	if err != nil {
		t.Fatalf("alsatest: %v", err)
	}
	c := &Capture{
		Home:   dev.home,
		Path:   filepath.Join(t.TempDir(), "capture.f32"),
		Device: dev.path,
		dev:    dev,
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if err := c.open(); err != nil {
		releaseDevice()
		t.Fatalf("alsatest: %v", err)
	}
	for k, v := range c.env() {
		t.Setenv(k, v)
	}
	go c.pace()
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("alsatest: %v", err)
		}
	})
	return c
}

// claimDevice returns the process's device, making it on first use, for
// one Capture at a time: two would split what is played between them.
func claimDevice() (*device, error) {
	theDevice.Lock()
	defer theDevice.Unlock()
	if theDevice.active {
		return nil, errors.New("setup: another capture of this process is still running (one Setup per test, not in parallel)")
	}
	if theDevice.dev == nil {
		dev, err := newDevice()
		if err != nil {
			return nil, err
		}
		theDevice.dev = dev
	}
	theDevice.active = true
	return theDevice.dev, nil
}

func releaseDevice() {
	theDevice.Lock()
	theDevice.active = false
	theDevice.Unlock()
}

// newDevice writes the .asoundrc and makes the FIFO in a new temporary
// directory. Nothing removes it: the sound device oto opened in this
// process writes to the FIFO until the process exits.
func newDevice() (*device, error) {
	dir, err := os.MkdirTemp("", "loaxa-alsatest-")
	if err != nil {
		return nil, fmt.Errorf("make device directory: %w", err)
	}
	d := &device{home: filepath.Join(dir, "home"), path: filepath.Join(dir, "device.fifo")}
	if err := os.MkdirAll(filepath.Join(d.home, ".config"), 0o755); err != nil {
		return nil, fmt.Errorf("make home: %w", err)
	}
	if err := os.WriteFile(filepath.Join(d.home, ".asoundrc"), []byte(asoundrc(d.path)), 0o644); err != nil {
		return nil, fmt.Errorf("write .asoundrc: %w", err)
	}
	if err := unix.Mkfifo(d.path, 0o600); err != nil {
		return nil, fmt.Errorf("make device fifo: %w", err)
	}
	// Read-write, so that opening does not wait for a writer and the reader
	// never sees end-of-file when a player closes the device and another
	// opens it. It stays open, so a player still open in this process
	// blocks between tests, as on a stalled sound card, instead of failing
	// every write with EPIPE in a busy loop: the ALSA file plugin ignores
	// write errors and the null PCM under it accepts frames as fast as they
	// come.
	fifo, err := os.OpenFile(d.path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open device fifo: %w", err)
	}
	if err := setPipeSize(fifo, pipeSize); err != nil {
		fifo.Close()
		return nil, err
	}
	d.fifo = fifo
	return d, nil
}

// open discards what the device held while no test read it (the end of
// what an earlier test played, or silence) and creates the capture file.
func (c *Capture) open() error {
	fifo := c.dev.fifo
	// The last Close set a deadline to stop its pacer.
	if err := fifo.SetReadDeadline(time.Time{}); err != nil {
		return fmt.Errorf("device fifo: %w", err)
	}
	if err := drain(fifo); err != nil {
		return err
	}
	out, err := os.Create(c.Path)
	if err != nil {
		return fmt.Errorf("create capture file: %w", err)
	}
	c.out = out
	return nil
}

// setPipeSize shrinks the FIFO's buffer so a writer cannot run far ahead of
// real time. It goes through SyscallConn because File.Fd would switch the
// file to blocking mode and make Close unable to interrupt a Read.
func setPipeSize(f *os.File, size int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("device fifo: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		_, serr = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, size)
	}); err != nil {
		return fmt.Errorf("device fifo: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("set device fifo size: %w", serr)
	}
	return nil
}

// drain discards what the FIFO f holds: at most its buffer, in one read, so
// a player writing as fast as the FIFO takes it cannot keep it going. The
// file is in non-blocking mode (it is polled), so the raw read returns
// EAGAIN at once if the FIFO is empty.
func drain(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("device fifo: %w", err)
	}
	buf := make([]byte, pipeSize)
	var rerr error
	if err := rc.Read(func(fd uintptr) bool {
		_, rerr = unix.Read(int(fd), buf)
		return true
	}); err != nil {
		return fmt.Errorf("device fifo: %w", err)
	}
	if rerr != nil && !errors.Is(rerr, unix.EAGAIN) {
		return fmt.Errorf("drain device fifo: %w", rerr)
	}
	return nil
}

// asoundrc is the ALSA configuration described in the package doc.
func asoundrc(fifo string) string {
	return fmt.Sprintf(`# Written by loaxa.vn/internal/alsatest for one test process. Everything played
# on "default" is converted to FLOAT_LE %d Hz mono (a no-op for oto, which
# opens FLOAT_LE) and written to a FIFO that the test reads at real-time
# pace; the null PCM under it discards the frames.
pcm.!default {
	type plug
	slave {
		pcm "loaxa_capture"
		format FLOAT_LE
		rate %d
		channels %d
	}
}
pcm.loaxa_capture {
	type file
	slave.pcm "null"
	file %s
	format "raw"
}
`, SampleRate, SampleRate, Channels, strconv.Quote(fifo))
}

func (c *Capture) env() map[string]string {
	return map[string]string{
		"HOME":            c.Home,
		"XDG_CONFIG_HOME": filepath.Join(c.Home, ".config"),
	}
}

// Env returns the environment entries ("HOME=…") that send a subprocess's
// default ALSA device to this capture; append them to exec.Cmd.Env.
func (c *Capture) Env() []string {
	var env []string
	for k, v := range c.env() {
		env = append(env, k+"="+v)
	}
	return env
}

// pace reads the FIFO no faster than SampleRate frames a second and appends
// what it reads to the capture file.
func (c *Capture) pace() {
	defer close(c.done)
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	buf := make([]byte, burst)
	var credit float64 // bytes the device may consume now
	last := time.Now()
	for {
		now := time.Now()
		credit = math.Min(credit+now.Sub(last).Seconds()*bytesPerSecond, burst)
		last = now
		if credit < BytesPerSample {
			select {
			case <-ticker.C:
				continue
			case <-c.stop:
				return
			}
		}
		n, err := c.dev.fifo.Read(buf[:int(credit)])
		if n > 0 {
			credit -= float64(n)
			if _, werr := c.out.Write(buf[:n]); werr != nil {
				c.fail(fmt.Errorf("write capture file: %w", werr))
				return
			}
			c.mu.Lock()
			c.n += int64(n)
			c.mu.Unlock()
		}
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				c.fail(fmt.Errorf("read device fifo: %w", err))
			}
			return
		}
	}
}

func (c *Capture) fail(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
}

// Err returns why capturing stopped early, or nil.
func (c *Capture) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close stops capturing and closes the capture file; Setup calls it when the
// test ends. The device stays, for the next Setup in the process.
func (c *Capture) Close() error {
	select {
	case <-c.stop:
		return nil
	default:
	}
	close(c.stop)
	derr := c.dev.fifo.SetReadDeadline(time.Now()) // interrupts a blocked Read
	<-c.done
	releaseDevice()
	return errors.Join(c.Err(), derr, c.out.Close())
}

// Size returns how many bytes have been captured.
func (c *Capture) Size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// Len returns how many samples have been captured; tests use it as a mark
// before playing something, and pass it to SamplesFrom or Await.
func (c *Capture) Len() int { return int(c.Size() / BytesPerSample) }

// Samples returns everything captured so far as int16 samples.
func (c *Capture) Samples() ([]int16, error) { return c.SamplesFrom(0) }

// SamplesFrom returns the samples captured from index from on.
func (c *Capture) SamplesFrom(from int) ([]int16, error) {
	end := c.Size() / BytesPerSample * BytesPerSample
	start := int64(from) * BytesPerSample
	if from < 0 || start > end {
		return nil, fmt.Errorf("capture samples from %d: only %d captured", from, end/BytesPerSample)
	}
	f, err := os.Open(c.Path)
	if err != nil {
		return nil, fmt.Errorf("open capture: %w", err)
	}
	defer f.Close()
	raw := make([]byte, end-start)
	if _, err := f.ReadAt(raw, start); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read capture: %w", err)
	}
	return Float32ToInt16(raw), nil
}

// Float32ToInt16 decodes FLOAT_LE samples into int16 the way oto encoded
// them (v/32768), rounding and clipping. A trailing partial sample is
// ignored.
func Float32ToInt16(raw []byte) []int16 {
	s := make([]int16, len(raw)/4)
	for i := range s {
		f := float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])))
		s[i] = int16(math.Max(math.MinInt16, math.Min(math.MaxInt16, math.Round(f*32768))))
	}
	return s
}

// Await polls the capture until needle appears at or after sample from, and
// returns where it first does (Offset counts from the start of the
// capture; Find says which copy counts as first). It fails the
// test if the needle has not appeared within the given time.
func (c *Capture) Await(t testing.TB, needle []int16, from int, within time.Duration) Match {
	t.Helper()
	return c.await(t, needle, from, within, func(s, needle []int16) (Spread, bool) {
		m, ok := Find(s, needle)
		return Spread{Match: m, Len: len(needle)}, ok
	}).Match
}

// AwaitAcrossSilence is Await for a snippet that may come out in pieces,
// with silence the device played for a starved writer between them (see
// FindAcrossSilence): the Spread says how much.
func (c *Capture) AwaitAcrossSilence(t testing.TB, needle []int16, from int, within time.Duration) Spread {
	t.Helper()
	return c.await(t, needle, from, within, FindAcrossSilence)
}

func (c *Capture) await(t testing.TB, needle []int16, from int, within time.Duration, find func(s, needle []int16) (Spread, bool)) Spread {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		s, err := c.SamplesFrom(from)
		if err != nil {
			t.Fatalf("alsatest: %v", err)
		}
		m, ok := find(s, needle)
		if ok {
			m.Offset += from
			return m
		}
		if err := c.Err(); err != nil {
			t.Fatalf("alsatest: capture stopped: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("alsatest: %d-sample snippet not in the %d samples captured from %d within %v (best score %.3f at %d)%s",
				len(needle), len(s), from, within, m.Score, m.Offset+from, starved(s, needle, m.Match))
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not a wait for an outcome
	}
}

// starvedRun is the shortest run of exact zeros starved looks for: 10 ms.
const starvedRun = SampleRate / 100

// starved says, for a failed Await, whether the best window holds runs
// of exact silence the snippet has not: the sound device played silence
// while the writer had nothing ready (a machine too busy), cutting the
// snippet in two. "" otherwise.
func starved(s, needle []int16, best Match) string {
	if best.Offset < 0 || best.Offset >= len(s) || zeroRuns(needle, starvedRun) > 0 {
		return ""
	}
	window := s[best.Offset:min(best.Offset+len(needle), len(s))]
	n := zeroRuns(window, starvedRun)
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("; that window holds %d run(s) of exact silence of 10 ms or more the snippet has not: the device played silence while the writer had nothing ready (a starved writer, a busy machine)", n)
}

// zeroRuns counts the runs of at least n exact zeros in s.
func zeroRuns(s []int16, n int) int {
	runs, run := 0, 0
	for _, v := range s {
		if v != 0 {
			run = 0
			continue
		}
		if run++; run == n {
			runs++
		}
	}
	return runs
}
