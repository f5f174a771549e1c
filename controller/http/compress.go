package http

import (
	"compress/gzip"
	"fmt"
	"net/http"

	"github.com/klauspost/compress/gzhttp"
)

// Answers are compressed with gzip for clients that accept it. An officer
// on a commune's 4G link opens a province's emergency board: its report of
// 10,000 clusters is megabytes of JSON that repeats itself (the same
// fields, areas and states on every line), and the live stream that
// follows begins with every cluster again. Compressed, both are a small
// part of that (BENCHMARKS.md, "Officers watching the board"); so is the
// console's own JavaScript on its first load.
//
// Only text is compressed: JSON, the event streams (each flush of a
// stream flushes the compressor too, so events are not held back), CSV
// reports and the console's files. Audio is not (the boards' content
// downloads resume with Range requests, and ADPCM does not shrink), nor
// are answers under 1 KiB, nor a connection that upgrades (a live call's
// WebSocket).

// compressedTypes are the media types of the answers compressed.
var compressedTypes = []string{
	"application/json", "text/event-stream", "text/csv", "text/plain",
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
