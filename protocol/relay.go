package protocol

import (
	"fmt"
	"net/url"
)

// ReasonStream: a relayed stream (Occurrence.Stream) could not be
// reached or broke, and reconnecting failed.
const ReasonStream = "stream"

// checkStream checks a relay occurrence: background, no content, an
// http(s) URL, a duration.
func checkStream(o Occurrence) error {
	u, err := url.Parse(o.Stream)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("stream %q: want an http:// or https:// URL", o.Stream)
	case o.Priority != PriorityBackground:
		return fmt.Errorf("a stream relay is background, not %s", o.Priority)
	case o.Content != "":
		return fmt.Errorf("a stream relay has no content")
	case o.DurationMS <= 0:
		return fmt.Errorf("a stream relay needs a duration")
	}
	return nil
}
