package http

import (
	"compress/gzip"
	"fmt"
	"net/http"

	"github.com/klauspost/compress/gzhttp"
)

// Answers are compressed with gzip for clients that accept it. An officer
// on a commune's 4G link opens a province's emergency board: its report of
// 10,000 clusters is a megabyte of JSON that repeats itself (the same
// fields, areas and states on every line); compressed, it is 43 KB
// (BENCHMARKS.md, "Officers watching the board").
//
// Only text is compressed: JSON, CSV reports and the console's files.
// Audio is not (the boards' content downloads resume with Range requests,
// and ADPCM does not shrink), nor are answers under 1 KiB, nor a
// connection that upgrades (a live call's WebSocket). Nor are the event
// streams here: a compressor takes about 0.8 MB for as long as its answer
// lasts, which for a stream is as long as an officer keeps a board or the
// alarms open, tens of them at once on a busy day. The emergency stream,
// whose first burst is every cluster, compresses itself a burst at a time
// without keeping a compressor's window (burstWriter); the alarm stream's
// events are small.

// compressedTypes are the media types of the answers compressed.
var compressedTypes = []string{
	"application/json", "text/csv", "text/plain",
	"text/html", "text/css", "text/javascript", "application/javascript", "image/svg+xml",
}

// compressMinSize is the smallest answer worth compressing.
const compressMinSize = 1024

// compress wraps next with gzip compression of its text answers.
func compress(next http.Handler) http.Handler {
	// BestSpeed: a report of 10,000 clusters (1.19 MB) shrinks to 82 KB
	// in 1.4 ms; the default level makes it 59 KB in 2.3 ms, a difference
	// a 4G link carries in a fraction of a second (BenchmarkCompressReport).
	wrap, err := gzhttp.NewWrapper(gzhttp.ContentTypes(compressedTypes), gzhttp.MinSize(compressMinSize),
		gzhttp.CompressionLevel(gzip.BestSpeed), gzhttp.EnableZstd(false))
	if err != nil {
		panic(fmt.Sprintf("http: compression settings: %v", err)) // constant settings: a programming error
	}
	compressed := wrap(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" {
			next.ServeHTTP(w, r) // hijacked, never answered through a compressor
			return
		}
		compressed.ServeHTTP(w, r)
	})
}
