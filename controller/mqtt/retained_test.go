package mqtt_test

import (
	"fmt"
	"sync"
	"testing"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// TestRetainedScanWhileNodesRetain is the controller's subscription to
// node/+/state taking the retained states while nodes publish theirs: the
// broker's retained-message scan (TopicsIndex.Messages) runs concurrently
// with RetainMessage on the same topics. mochi v2.7.9 read each topic's
// retained path without the lock its writer holds; the race detector (the
// test suite runs with -race) reports that here, and the patched copy in
// third_party/mochi-server must not. It also checks that the scan finds
// every state that was retained before it started.
func TestRetainedScanWhileNodesRetain(t *testing.T) {
	topics := mochi.NewTopicsIndex()
	const nodes = 50
	retain := func(i, round int) {
		topics.RetainMessage(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true, Qos: 1},
			TopicName:   fmt.Sprintf("loaxa/node/n%02d/state", i),
			Payload:     fmt.Appendf(nil, `{"round":%d}`, round),
		})
	}
	for i := range nodes {
		retain(i, 0)
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for round := 1; round <= 200; round++ {
			for i := range nodes {
				retain(i, round)
			}
		}
	}()
	for range 200 {
		if got := len(topics.Messages("loaxa/node/+/state")); got != nodes {
			t.Errorf("the scan found %d retained states, want all %d", got, nodes)
			break
		}
	}
	wg.Wait()
}
