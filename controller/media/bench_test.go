package media

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"loaxa.vn/controller/loaxa"
)

// BenchmarkIngestHour ingests a generated one-hour 48 kHz stereo 16-bit WAV
// (691 MB, streamed to a temp file first) and reports the peak of live heap
// objects during the ingest, sampled every few milliseconds: the conversion
// must not grow with the file. Run it with
//
//	go test -run '^$' -bench IngestHour -benchtime 1x ./controller/media
func BenchmarkIngestHour(b *testing.B) {
	if testing.Short() {
		b.Skip("generates and converts a 691 MB WAV file")
	}
	dir := b.TempDir()
	path := filepath.Join(dir, "hour.wav")
	const rate, frames = 48000, 3600 * 48000
	if err := writeFile(path, testWAV{rate: rate, channels: 2, bits: 16}, frames, speechLike(rate)); err != nil {
		b.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	l := NewLibrary(filepath.Join(dir, "library"))
	l.MaxUploadBytes = 1 << 30
	if err := l.Open(); err != nil {
		b.Fatal(err)
	}

	b.SetBytes(st.Size())
	b.ReportAllocs()
	var peak uint64
	for b.Loop() {
		up, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		stop := watchHeap()
		c, err := l.Ingest(context.Background(), up, loaxa.IngestOptions{Filename: "hour.wav"})
		peak = max(peak, stop())
		up.Close()
		if err != nil {
			b.Fatal(err)
		}
		if c.DurationMS != 3600*1000 {
			b.Fatalf("DurationMS = %d", c.DurationMS)
		}
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
}

// BenchmarkIngest converts ten seconds of stereo 16-bit audio per rate.
func BenchmarkIngest(b *testing.B) {
	for _, rate := range []int{8000, 16000, 44100, 48000} {
		b.Run(fmt.Sprint(rate), func(b *testing.B) {
			upload := testWAV{rate: rate, channels: 2, bits: 16}.bytes(int64(rate)*10, speechLike(rate))
			l := newTestLibrary(b)
			b.SetBytes(int64(len(upload)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := l.Ingest(context.Background(), bytes.NewReader(upload), loaxa.IngestOptions{Filename: "b.wav"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// writeFile streams a generated WAV to path.
func writeFile(path string, w testWAV, frames int64, sample func(int64, int) float64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := w.write(f, frames, sample); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// speechLike returns a cheap sample function with content across the band
// (and above 8 kHz at high rates): a second-long table of a few partials,
// different per channel.
func speechLike(rate int) func(int64, int) float64 {
	table := make([]float64, rate)
	for i := range table {
		t := float64(i) / float64(rate)
		for _, f := range []float64{150, 440, 1200, 3100, 6000, 9000} {
			if f < float64(rate)/2 {
				table[i] += 0.1 * math.Sin(2*math.Pi*f*t)
			}
		}
	}
	return func(i int64, c int) float64 { return table[(i+int64(c)*997)%int64(rate)] }
}

// watchHeap samples the bytes of live heap objects until the returned stop
// is called, which returns the largest sample.
func watchHeap() (stop func() uint64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	var (
		wg   sync.WaitGroup
		peak = read()
		done = make(chan struct{})
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				peak = max(peak, read())
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		return max(peak, read())
	}
}
