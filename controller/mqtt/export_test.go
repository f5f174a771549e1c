package mqtt

import (
	"sync/atomic"
	"time"
)

// SetAckClock makes c hold acknowledgements by now instead of real time.
func SetAckClock(c *Client, now func() time.Time) { c.ackClock = now }

// HeldAck returns the acknowledgement held for node: the controller
// stores a batch's events before it holds their acknowledgement, so a test
// that moves the delay's clock waits for this, not for the events.
func HeldAck(c *Client, node string) (epoch string, seq uint64, ok bool) {
	c.acks.mu.Lock()
	defer c.acks.mu.Unlock()
	p, ok := c.acks.pending[node]
	return p.epoch, p.seq, ok
}

// SetPublishBrokerURL makes c's publish connection dial url instead of
// BrokerURL, so a test can put a proxy before one connection only.
func SetPublishBrokerURL(c *Client, url string) { c.publishBrokerURL = url }

// PublishConnectionUp reports whether c publishes on its publish
// connection now (the controller's view, after its connect handler).
func PublishConnectionUp(c *Client) bool {
	l, ok := c.link.(*pahoLink)
	if !ok || l.pub == nil {
		return false
	}
	l.pub.mu.Lock()
	defer l.pub.mu.Unlock()
	return l.pub.up
}

// InlineDeliveries subscribes to filter in b as the controller's
// in-process client does, handing each message to deliver; the returned
// function unsubscribes.
func InlineDeliveries(b *Broker, filter string, deliver func(topic string, payload []byte)) (stop func(), err error) {
	l := &inlineLink{broker: b}
	if err := l.open([]string{filter}, deliver); err != nil {
		return nil, err
	}
	return l.close, nil
}

// ForgetClient removes the client with id from the embedded broker's
// routing while its connection lives on: the effect of the clean-up race
// third_party/mochi-server fixed.
func ForgetClient(b *Broker, id string) { b.server.Clients.Delete(id) }

// Sweeps returns how many sweeps for unrouted clients b has made.
func Sweeps(b *Broker) int64 { return b.sweeps.Load() }

// Grants returns how many connections b's auth hook holds a grant for.
func Grants(b *Broker) int {
	b.auth.mu.Lock()
	defer b.auth.mu.Unlock()
	return len(b.auth.clients)
}

// ClientsConnected returns how many connections b serves: mochi counts a
// connection from its authentication until its goroutine has ended it.
func ClientsConnected(b *Broker) int64 { return atomic.LoadInt64(&b.server.Info.ClientsConnected) }

// BytesReceived returns the bytes the embedded broker has read from its
// clients: a CONNECT's fixed header is counted before its body is read.
func BytesReceived(b *Broker) int64 { return atomic.LoadInt64(&b.server.Info.BytesReceived) }

// Connecting returns how many connections to b wait for their CONNECT.
func Connecting(b *Broker) int { return b.listener.Connecting() }

// RefusedConnections returns how many connections b ended at once because
// MaxConnecting were waiting for their CONNECT.
func RefusedConnections(b *Broker) int64 { return b.listener.Refused() }
