// This file is loaxa's, not upstream's.

package mqtt

import (
	"fmt"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// BenchmarkSweep is the once-a-second sweep of expired retained messages
// with 10,000 retained desired states (one per node) of which none expires,
// as in the controller's broker (see README.loaxa.md).
func BenchmarkSweep(b *testing.B) {
	s := New(&Options{Capabilities: NewDefaultServerCapabilities()})
	s.Options.Capabilities.MaximumMessageExpiryInterval = 0
	for i := 0; i < 10000; i++ {
		s.Topics.Retained.Add(fmt.Sprintf("loaxa/node/n%05d/desired", i), packets.Packet{TopicName: "x", Payload: make([]byte, 1500), Created: time.Now().Unix()})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.clearExpiredRetainedMessages(time.Now().Unix())
	}
}
