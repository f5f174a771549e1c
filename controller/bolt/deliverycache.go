package bolt

import (
	"bytes"
	"encoding/json"
	"sync"

	"loaxa.vn/controller/loaxa"
)

// deliveryCache keeps the deliveries that scans of one announcement
// decoded, with the stored bytes each came from. An emergency's report
// reads every one of its deliveries each time it is built (an officer's
// refresh, the live board), and most of them have not changed since the
// last build: comparing a few hundred bytes costs far less than decoding
// them again (BenchmarkFindDeliveriesOfAnnouncement). A delivery whose
// bytes changed is decoded again, so the cache never answers for bytes it
// has not decoded itself.
type deliveryCache struct {
	mu sync.Mutex
	m  map[string]*cachedDelivery // by primary key
}

type cachedDelivery struct {
	raw []byte
	d   loaxa.Delivery
}

// deliveryCacheMax bounds the cache, about 0.7 KB an entry: the
// deliveries of five emergencies of 10,000 nodes. Past it the cache starts
// again empty.
const deliveryCacheMax = 50_000

// decode returns a copy of the delivery stored as v under key k. v is
// only valid in its transaction; the cache keeps its own copy.
func (c *deliveryCache) decode(k, v []byte) (*loaxa.Delivery, error) {
	c.mu.Lock()
	if e := c.m[string(k)]; e != nil && bytes.Equal(e.raw, v) {
		d := e.d
		c.mu.Unlock()
		return &d, nil
	}
	c.mu.Unlock()
	var d loaxa.Delivery
	if err := json.Unmarshal(v, &d); err != nil {
		return nil, err
	}
	e := &cachedDelivery{raw: bytes.Clone(v), d: d}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= deliveryCacheMax {
		c.m = make(map[string]*cachedDelivery)
	}
	c.m[string(k)] = e
	c.mu.Unlock()
	return &d, nil
}
