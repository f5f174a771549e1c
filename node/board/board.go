// Package board drives the speaker box hardware for the node agent. None is
// for machines without a board; GPIO drives a real one's amplifier relay
// and reads its inputs through the Linux GPIO character device, as a board
// file says; firmware-sim/board simulates a full one.
package board

import "loaxa.vn/protocol"

// None is a board with no relay and no sensors: switching the amplifier
// succeeds and does nothing, and the snapshot reports nothing measured.
type None struct{}

// SetAmplifier does nothing.
func (None) SetAmplifier(on bool) error { return nil }

// Snapshot reports an empty board.
func (None) Snapshot() protocol.Board { return protocol.Board{} }
