package bolt

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	bbolt "go.etcd.io/bbolt"

	"loaxa.vn/controller/loaxa"
)

// CheckFile opens the store file at path read-only and checks bbolt's page
// structure and the invariants this package keeps: every reference points to
// something that exists, every index matches its primary bucket exactly, and
// each outbox's last sequence is the highest stored and has no gaps below
// it. Tests call it on cleanup (see MustOpenDB in the external tests).
func CheckFile(path string) error {
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: DefaultOpenTimeout})
	if err != nil {
		return fmt.Errorf("open %s read-only: %w", path, err)
	}
	defer b.Close()
	return b.View(func(tx *bbolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		c := checker{tx: tx}
		c.areas()
		c.nodes()
		c.announcements()
		c.deliveries()
		c.events()
		c.users()
		c.desired()
		return errors.Join(append(errs, c.errs...)...)
	})
}

type checker struct {
	tx   *bbolt.Tx
	errs []error
}

func (c *checker) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf(format, args...))
}

func (c *checker) has(bucket []byte, key string) bool {
	return c.tx.Bucket(bucket).Get([]byte(key)) != nil
}

// each decodes every value of bucket into a fresh T.
func each[T any](c *checker, bucket []byte, fn func(k []byte, v *T)) {
	c.tx.Bucket(bucket).ForEach(func(k, data []byte) error {
		v := new(T)
		if err := json.Unmarshal(data, v); err != nil {
			c.fail("%s/%q: %v", bucket, k, err)
			return nil
		}
		fn(k, v)
		return nil
	})
}

// sameKeys reports keys present in one bucket's derived set and not the
// other's.
func (c *checker) sameKeys(what string, want map[string]string, bucket []byte) {
	got := make(map[string]string)
	c.tx.Bucket(bucket).ForEach(func(k, v []byte) error {
		got[string(k)] = string(v)
		return nil
	})
	for k, v := range want {
		if g, ok := got[k]; !ok {
			c.fail("%s: %q missing", what, k)
		} else if g != v {
			c.fail("%s: %q is %q, want %q", what, k, g, v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			c.fail("%s: stray entry %q", what, k)
		}
	}
}

func (c *checker) areas() {
	want := make(map[string]string)
	each(c, bucketAreas, func(k []byte, a *loaxa.Area) {
		if string(k) != a.ID {
			c.fail("area key %q holds %q", k, a.ID)
		}
		if a.Parent != "" && !c.has(bucketAreas, a.Parent) {
			c.fail("area %s: parent %s missing", a.ID, a.Parent)
		}
		want[a.ID] = a.Parent
	})
	c.sameKeys("area_parents", want, bucketAreaParents)
}

func (c *checker) nodes() {
	want := make(map[string]string)
	c.tx.Bucket(bucketNodes).ForEach(func(k, v []byte) error {
		n, err := decodeNode(k, v)
		if err != nil {
			c.fail("%v", err)
			return nil
		}
		if string(k) != n.ID {
			c.fail("node key %q holds %q", k, n.ID)
		}
		if !c.has(bucketAreas, n.Area) {
			c.fail("node %s: area %s missing", n.ID, n.Area)
		}
		if len(n.SecretHash) != 32 {
			c.fail("node %s: secret hash has %d bytes", n.ID, len(n.SecretHash))
		}
		want[string(join(n.Area, n.ID))] = ""
		return nil
	})
	c.sameKeys("node_areas", want, bucketNodeAreas)
}

func (c *checker) announcements() {
	each(c, bucketAnnouncements, func(k []byte, a *loaxa.Announcement) {
		if string(k) != a.ID {
			c.fail("announcement key %q holds %q", k, a.ID)
		}
		if !c.has(bucketContents, a.ContentID) {
			c.fail("announcement %s: content %s missing", a.ID, a.ContentID)
		}
	})
}

func (c *checker) deliveries() {
	want := make(map[string]string)
	each(c, bucketDeliveries, func(k []byte, d *loaxa.Delivery) {
		key := deliveryKey(d.Announcement, d.Occurrence, d.Node)
		if !bytes.Equal(k, key) {
			c.fail("delivery key %q holds %q", k, key)
		}
		if !c.has(bucketNodes, d.Node) {
			c.fail("delivery %s/%s: node missing", d.Occurrence, d.Node)
		}
		if !strings.HasPrefix(d.Occurrence, d.Announcement+"@") {
			c.fail("delivery %s: occurrence not of announcement %s", d.Occurrence, d.Announcement)
		}
		want[string(nodeDeliveryKey(d.Announcement, d.Occurrence, d.Node))] = string(key)
	})
	c.sameKeys("node_deliveries", want, bucketNodeDeliveries)
}

func (c *checker) events() {
	type outbox struct{ node, epoch string }
	var (
		want  = make(map[string]string)
		count = make(map[outbox]uint64)
		high  = make(map[outbox]uint64)
	)
	each(c, bucketEvents, func(k []byte, e *loaxa.Event) {
		key := eventKey(e.At, e.Node, e.Epoch, e.Seq)
		if !bytes.Equal(k, key) {
			c.fail("event key %q holds %q", k, key)
		}
		n, err := getNode(c.tx, e.Node)
		if err != nil {
			c.fail("event %s/%s/%d: %v", e.Node, e.Epoch, e.Seq, err)
		} else if n.Area != e.Area {
			c.fail("event %s/%s/%d: area %s, node is in %s", e.Node, e.Epoch, e.Seq, e.Area, n.Area)
		}
		o := outbox{e.Node, e.Epoch}
		count[o]++
		high[o] = max(high[o], e.Seq)
		want[string(nodeEventKey(e.At, e.Node, e.Epoch, e.Seq))] = string(key)
	})
	c.sameKeys("node_events", want, bucketNodeEvents)
	seen := make(map[outbox]bool)
	c.tx.Bucket(bucketEventSeqs).ForEach(func(k, v []byte) error {
		node, epoch, _ := strings.Cut(string(k), "\x00")
		o := outbox{node, epoch}
		seen[o] = true
		if len(v) != 8 {
			c.fail("event seq %q: %d bytes", k, len(v))
			return nil
		}
		last := binary.BigEndian.Uint64(v)
		if high[o] != last || count[o] != last {
			c.fail("outbox %s/%s: last seq %d, but %d events stored with highest %d", node, epoch, last, count[o], high[o])
		}
		return nil
	})
	for o := range count {
		if !seen[o] {
			c.fail("outbox %s/%s: events stored without a last seq", o.node, o.epoch)
		}
	}
}

func (c *checker) users() {
	c.tx.Bucket(bucketUsers).ForEach(func(k, v []byte) error {
		u, err := decodeUser(k, v)
		if err != nil {
			c.fail("%v", err)
			return nil
		}
		if u.Area != "" && !c.has(bucketAreas, u.Area) {
			c.fail("user %s: area %s missing", u.Username, u.Area)
		}
		if len(u.PasswordHash) == 0 {
			c.fail("user %s: no password hash", u.Username)
		}
		return nil
	})
	each(c, bucketTokens, func(k []byte, s *session) {
		if !c.has(bucketUsers, s.Username) {
			c.fail("session of missing user %s", s.Username)
		}
	})
}

func (c *checker) desired() {
	each(c, bucketDesired, func(k []byte, d *loaxa.Desired) {
		if !c.has(bucketNodes, string(k)) || d.Node != string(k) {
			c.fail("desired state %q for node %q: node missing or key mismatch", k, d.Node)
		}
	})
}
