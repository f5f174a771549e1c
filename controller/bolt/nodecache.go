package bolt

import (
	"bytes"
	"slices"
	"sync"

	"loaxa.vn/controller/loaxa"
)

// Decoding a node record (its JSON, about 1–2 KB) is the controller's
// biggest cost at thousands of nodes: every state, event batch and
// message check reads a node, and reports and resends read them all. A
// record's decoding depends on its bytes only, so decodeNode remembers the
// last decoding of each node with the bytes it came from, and a read of
// the same bytes hands out a copy of it instead of decoding again. Any
// write changes the bytes, so nothing stale can be returned.

// nodeCacheMax bounds the remembered nodes (of every DB in the process);
// past it the cache starts again.
const nodeCacheMax = 200_000

type cachedNode struct {
	raw  []byte
	node *loaxa.Node // never changed: handed out as clones, or shared read-only (cachedShared)
}

var nodeCache = struct {
	sync.RWMutex
	m map[string]cachedNode
}{m: map[string]cachedNode{}}

// cachedDecode returns a copy of the node decoded from exactly v, if
// remembered.
func cachedDecode(key, v []byte) *loaxa.Node {
	if n := cachedShared(key, v); n != nil {
		return cloneNode(n)
	}
	return nil
}

// cachedShared returns the node decoded from exactly v, if remembered,
// without copying it: the caller may read it and copy it shallowly, and
// must change nothing in it nor anything it points to. The status flush
// takes it so (nodeToFlush), as copying all of it was 15 % of a flush.
func cachedShared(key, v []byte) *loaxa.Node {
	nodeCache.RLock()
	c, ok := nodeCache.m[string(key)]
	nodeCache.RUnlock()
	if !ok || !bytes.Equal(c.raw, v) {
		return nil
	}
	return c.node
}

// remember keeps n as the decoding of v (bbolt's v is valid only in its
// transaction: it is copied).
func remember(key, v []byte, n *loaxa.Node) {
	keepNode(key, cachedNode{raw: bytes.Clone(v), node: cloneNode(n)})
}

// rememberWritten keeps n as the decoding of raw, the record just written
// from it, after its transaction committed; both are the caller's no more.
// It is the decoding up to what JSON does not keep and nobody can tell: a
// time's monotonic reading and the name of its zone, an empty list against
// none. Every reader puts the status from memory (which holds the same)
// over the record's, and the same node encodes to the same bytes, so a
// write of a node read from the cache stores what it would have stored
// after a decoding (TestFlushStatusRemembersWhatItWrote).
func rememberWritten(key, raw []byte, n *loaxa.Node) {
	keepNode(key, cachedNode{raw: raw, node: n})
}

// keepNode puts c in the cache under key, emptying it first when full.
func keepNode(key []byte, c cachedNode) {
	nodeCache.Lock()
	if len(nodeCache.m) >= nodeCacheMax {
		clear(nodeCache.m)
	}
	nodeCache.m[string(key)] = c
	nodeCache.Unlock()
}

// cloneNode copies n so that nothing the copy's holder may change (slices,
// pointed-to values) is shared with n. TestCloneNodeSharesNothing checks
// that every field is covered.
func cloneNode(n *loaxa.Node) *loaxa.Node {
	c := *n
	c.SecretHash = slices.Clone(n.SecretHash)
	c.Settings.Volume = clonePtr(n.Settings.Volume)
	c.Status = cloneStatus(&n.Status)
	return &c
}

// cloneStatus copies s as cloneNode copies a node.
func cloneStatus(s *loaxa.NodeStatus) loaxa.NodeStatus {
	st := *s
	if s.Playing != nil {
		p := *s.Playing
		st.Playing = &p
	}
	st.ContentMissing = slices.Clone(s.ContentMissing)
	if b := s.Board; b != nil {
		cb := *b
		cb.AmplifierCommand, cb.AmplifierFault = clonePtr(b.AmplifierCommand), clonePtr(b.AmplifierFault)
		cb.SpeakerOhms, cb.Mains = clonePtr(b.SpeakerOhms), clonePtr(b.Mains)
		cb.BatteryVolts, cb.Charging = clonePtr(b.BatteryVolts), clonePtr(b.Charging)
		cb.TemperatureC, cb.DoorOpen, cb.RSSIDBm = clonePtr(b.TemperatureC), clonePtr(b.DoorOpen), clonePtr(b.RSSIDBm)
		st.Board = &cb
	}
	st.Keys = slices.Clone(s.Keys)
	st.AreasUnheard = slices.Clone(s.AreasUnheard)
	st.DiskFreeBytes = clonePtr(s.DiskFreeBytes)
	st.Volume = clonePtr(s.Volume)
	st.Faults = slices.Clone(s.Faults)
	for i := range st.Faults {
		st.Faults[i].Facts = s.Faults[i].Facts.Clone()
	}
	return st
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
