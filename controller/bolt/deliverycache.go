package bolt

import (
	"bytes"
	"sync"
	"time"
	"unicode/utf8"

	"loaxa.vn/controller/loaxa"
)

// deliveryCache keeps the deliveries that scans of one announcement
// decoded, with the stored bytes each came from. An emergency's report
// reads every one of its deliveries each time it is built (an officer's
// refresh, the live board), and most of them have not changed since the
// last build: comparing a few hundred bytes costs far less than decoding
// them again (BenchmarkFindDeliveriesOfAnnouncement). A delivery whose
// bytes changed is decoded again, unless the ingest that wrote them gave
// the cache their value (refresh), so the cache never answers with
// anything but what the bytes decode to.
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

// lookup returns the delivery decoded from exactly v, stored under key
// k, if the cache holds it.
func (c *deliveryCache) lookup(k, v []byte) (loaxa.Delivery, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.m[string(k)]; e != nil && bytes.Equal(e.raw, v) {
		return e.d, true
	}
	return loaxa.Delivery{}, false
}

// holds reports whether the cache holds a delivery under key k.
func (c *deliveryCache) holds(k []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[string(k)] != nil
}

// writtenDelivery is a delivery as a transaction wrote it: its key, the
// bytes stored and the value they encode.
type writtenDelivery struct {
	key, raw []byte
	d        loaxa.Delivery
}

// refresh takes the deliveries ws, written by a transaction that
// committed, in the place of the entries the cache holds for them; the
// bytes are the cache's from now on. During an alert's round the nodes'
// events change every delivery of the report between two builds of it:
// without this each build decoded again every delivery the ingest had
// just encoded (BenchmarkReportDuringRound). A delivery that its bytes
// decode to exactly (keptByJSON) is taken as written; another is taken as
// its bytes decode (1.5 µs, decodeDelivery), so the cache still answers
// only with what decoding the bytes gives. That other is the common case
// on a controller whose clock runs in Vietnam's zone: an emergency's
// start is in the controller's local zone, stored "…+07:00", and left out
// as it once was every build of a round's report decoded every delivery
// the round changed (BenchmarkReportDuringRoundICT). Deliveries the cache
// does not hold are left out: it keeps what reports read.
func (c *deliveryCache) refresh(ws []writtenDelivery) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range ws {
		w := &ws[i]
		if c.m[string(w.key)] == nil {
			continue
		}
		d := w.d
		if !keptByJSON(&d) {
			d = loaxa.Delivery{}
			if err := decodeDelivery(w.raw, &d); err != nil {
				delete(c.m, string(w.key)) // decoded, and refused, at its next read
				continue
			}
		}
		c.m[string(w.key)] = &cachedDelivery{raw: w.raw, d: d}
	}
}

// keptByJSON reports whether decoding d's JSON gives d back exactly: its
// times are in UTC without a monotonic reading (JSON keeps neither that
// reading nor a zone, only an offset) and its strings are valid UTF-8
// (JSON replaces what is not); its other fields are numbers and booleans.
// The ingest's are: the nodes' times come decoded from JSON in UTC, the
// store's own in UTC. TestKeptByJSON fails if a field is added that this
// does not check.
func keptByJSON(d *loaxa.Delivery) bool {
	for _, t := range [...]time.Time{d.Start, d.ContentReadyAt, d.ReceivedAt, d.ResentAt, d.CancelResentAt, d.UpdatedAt} {
		if t != t.UTC() {
			return false
		}
	}
	for _, s := range [...]string{d.Announcement, d.Occurrence, d.Node, string(d.State), d.Reason, d.Epoch, string(d.Priority), d.HeldBy} {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

// decode returns a copy of the delivery stored as v under key k. v is
// only valid in its transaction; the cache keeps its own copy.
func (c *deliveryCache) decode(k, v []byte) (*loaxa.Delivery, error) {
	if d, ok := c.lookup(k, v); ok {
		return &d, nil
	}
	var d loaxa.Delivery
	if err := decodeDelivery(v, &d); err != nil {
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
