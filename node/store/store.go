// Package store keeps a node agent's durable state: the outbox epoch, the
// desired state it runs, the per-occurrence progress marks, the event outbox,
// the replay guard entries and the emergency alerts held. Bolt keeps them in one bbolt file in the
// node's data directory; Memory keeps them in memory for simulated fleets.
// Both implement agent.Store with the same behaviour and run one test suite.
package store

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"

	"loaxa.vn/node/agent"
	"loaxa.vn/protocol"
)

// newEpoch returns a random outbox epoch: 16 hex digits are enough that a
// recreated store never reuses one.
func newEpoch() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("store: no randomness for the outbox epoch: %v", err)) // crypto/rand does not fail on supported systems
	}
	return hex.EncodeToString(b[:])
}

func encodeDesired(d *protocol.DesiredState) ([]byte, error) {
	if d == nil {
		return nil, fmt.Errorf("store desired state: nil")
	}
	raw, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("store desired state %d: %w", d.Version, err)
	}
	return raw, nil
}

func decodeDesired(raw []byte) (*protocol.DesiredState, error) {
	if raw == nil {
		return nil, nil
	}
	var d protocol.DesiredState
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("load desired state: %w", err)
	}
	return &d, nil
}

func checkMarks(marks []agent.Progress) error {
	for _, p := range marks {
		if p.Occurrence == "" {
			return fmt.Errorf("append progress: mark without occurrence id")
		}
	}
	return nil
}

func ackEpochError(got, have string) error {
	return fmt.Errorf("ack epoch %q, outbox epoch is %q: %w", got, have, agent.ErrEpoch)
}

func sortReplay(es []protocol.ReplayEntry) {
	sort.Slice(es, func(i, j int) bool {
		if es[i].KeyID != es[j].KeyID {
			return es[i].KeyID < es[j].KeyID
		}
		return es[i].Seq < es[j].Seq
	})
}

func encodeAlerts(h agent.HeldAlerts) ([]byte, error) {
	raw, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("store held alerts: %w", err)
	}
	return raw, nil
}

func decodeAlerts(raw []byte) (agent.HeldAlerts, error) {
	var h agent.HeldAlerts
	if raw == nil {
		return h, nil
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return h, fmt.Errorf("load held alerts: %w", err)
	}
	return h, nil
}
