package mqtt

import (
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// PublishUsernameSuffix names the controller's publishing account on an
// external broker: the controller's username plus this suffix
// (ExportMosquitto writes it, Client.PublishUsername uses it).
const PublishUsernameSuffix = "-pub"

// errLinkClosed completes the publishes still under way when the client
// closes.
var errLinkClosed = errors.New("mqtt client closed")

// outMsg is one message the controller publishes.
type outMsg struct {
	topic    string
	qos      byte
	retained bool
	payload  []byte
}

func (m outMsg) send(c paho.Client) paho.Token {
	return c.Publish(m.topic, m.qos, m.retained, m.payload)
}

// pubConn is the controller's second connection to an external broker,
// for its publishes only (Client.PublishUsername). The broker
// acknowledges a publish on the connection it came in on, behind
// whatever it is writing there; on the main connection that is every
// node message for the controller, so under a burst of node traffic a
// desired state would wait behind thousands of them.
//
// It is an optimisation, never a dependency: while it is not connected
// (refused by files exported before the account existed, broker away)
// publishes go on the main connection, and a publish that fails on it
// (the connection dropped before the broker acknowledged it) is sent
// again on the main connection. Those re-sent together keep their
// order, ahead of any later publish, so a node's retained desired state
// is not overwritten by an older one; the broker may have taken one
// already (its acknowledgement lost), and QoS 1 allows the duplicate
// (nodes drop replays by sequence).
//
// The connection reconnects in its own loop, not paho's: paho's sleeps
// cannot be interrupted, so its goroutines would outlive Close, and its
// tokens of publishes in flight when a clean session drops would never
// complete.
type pubConn struct {
	main   paho.Client
	client paho.Client
	user   string
	logger *slog.Logger
	stop   chan struct{}
	down   chan struct{} // the connection was lost (one slot)
	wg     sync.WaitGroup

	mu      sync.Mutex
	up      bool           // connected, as paho's handlers last told
	pending []*pubDelivery // sent on client, not known to be acknowledged
}

// newPubConn connects with o in the background until close.
func newPubConn(main paho.Client, o *paho.ClientOptions, user string, logger *slog.Logger) *pubConn {
	p := &pubConn{main: main, user: user, logger: logger, stop: make(chan struct{}), down: make(chan struct{}, 1)}
	// MQTT 3.1.1 only: paho would try 3.1 after every refusal.
	o.SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetConnectTimeout(10 * time.Second).
		SetOnConnectHandler(func(paho.Client) { p.connectedNow() }).
		SetConnectionLostHandler(func(_ paho.Client, err error) { p.lost(err) })
	p.client = paho.NewClient(o)
	p.wg.Add(1)
	go p.run()
	return p
}

// run connects, and again whenever the connection is lost, until close.
// A refused account is logged once, with what to do, however often the
// broker refuses it.
func (p *pubConn) run() {
	defer p.wg.Done()
	wait, logged := time.Second, false
	for {
		tok := p.client.Connect()
		select {
		case <-tok.Done():
		case <-p.stop:
			return
		}
		err := tok.Error()
		switch {
		case err == nil:
			wait, logged = time.Second, false
			select {
			case <-p.down:
			case <-p.stop:
				return
			}
		case refused(err) && !logged:
			logged = true
			p.logger.Warn("mqtt: the broker refused the publish connection; publishing on the main connection, whose acknowledgements wait behind node messages under load. Give the broker this account, with the controller's password and write access under the topic prefix: for Mosquitto, export its files again (they add it) and reload it",
				"user", p.user, "err", err)
		default:
			p.logger.Debug("mqtt: publish connection failed", "user", p.user, "err", err)
		}
		// Not at once after a loss either: a broker that drops the
		// connection as soon as it is made must not make this spin.
		select {
		case <-time.After(wait):
		case <-p.stop:
			return
		}
		if err != nil {
			wait = min(2*wait, 10*time.Second)
		}
	}
}

// refused reports whether err is the broker refusing the account, as
// opposed to the broker being away.
func refused(err error) bool {
	return errors.Is(err, packets.ErrorRefusedNotAuthorised) || errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) ||
		errors.Is(err, packets.ErrorRefusedIDRejected)
}

// connectedNow routes publishes here.
// isUp reports whether publishes go on this connection now.
func (p *pubConn) isUp() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.up && p.client.IsConnectionOpen()
}

func (p *pubConn) connectedNow() {
	p.mu.Lock()
	p.up = true
	p.mu.Unlock()
	p.logger.Info("mqtt: publish connection connected", "user", p.user)
}

// lost routes publishes to the main connection, re-sends there the ones
// in flight, and has run connect again.
func (p *pubConn) lost(err error) {
	p.mu.Lock()
	p.up = false
	moved := p.moveLocked()
	p.mu.Unlock()
	p.logger.Warn("mqtt: publish connection lost; publishing on the main connection until it is back", "user", p.user, "resent_on_main", moved, "err", err)
	select {
	case p.down <- struct{}{}:
	default:
	}
}

// moveLocked re-sends on the main connection, in order, the pending
// publishes that failed or are not acknowledged yet. Called holding mu.
func (p *pubConn) moveLocked() int {
	n := 0
	for _, d := range p.pending {
		if acknowledged(d.tok) {
			continue
		}
		d.main = d.msg.send(p.main)
		close(d.moved)
		n++
	}
	p.pending = nil
	return n
}

// acknowledged reports whether tok is done without an error.
func acknowledged(tok paho.Token) bool {
	select {
	case <-tok.Done():
		return tok.Error() == nil
	default:
		return false
	}
}

// publish sends m on this connection, or returns nil while it is down
// (having re-sent on the main connection what failed here, so that m
// follows it).
func (p *pubConn) publish(m outMsg) delivery {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.up || !p.client.IsConnectionOpen() {
		p.moveLocked()
		return nil
	}
	p.pending = slices.DeleteFunc(p.pending, func(d *pubDelivery) bool { return acknowledged(d.tok) })
	d := &pubDelivery{msg: m, moved: make(chan struct{}), done: make(chan struct{})}
	d.tok = m.send(p.client)
	p.pending = append(p.pending, d)
	go p.watch(d)
	return d
}

// watch completes d: when the broker acknowledged it on this
// connection, or, once re-sent, on the main one.
func (p *pubConn) watch(d *pubDelivery) {
	defer close(d.done)
	select {
	case <-d.moved:
	case <-d.tok.Done():
	case <-p.stop:
		d.err = errLinkClosed
		return
	}
	select {
	case <-d.moved:
	default:
		err := d.tok.Error()
		if err == nil {
			return
		}
		// d is pending until moved: this moves it, and those before it.
		p.mu.Lock()
		n := p.moveLocked()
		p.mu.Unlock()
		if n > 0 {
			p.logger.Warn("mqtt: publish failed on the publish connection; re-sent on the main connection", "user", p.user, "resent_on_main", n, "err", err)
		}
		<-d.moved
	}
	select {
	case <-d.main.Done():
		d.err = d.main.Error()
	case <-p.stop:
		d.err = errLinkClosed
	}
}

// close stops connecting, completes the publishes under way and
// disconnects.
func (p *pubConn) close() {
	close(p.stop)
	p.wg.Wait()
	p.client.Disconnect(250)
}

// pubDelivery is a publish sent on the publish connection, and perhaps
// re-sent on the main one.
type pubDelivery struct {
	msg   outMsg
	tok   paho.Token    // on the publish connection
	moved chan struct{} // closed once re-sent on the main connection (main set)
	main  paho.Token
	done  chan struct{}
	err   error
}

func (d *pubDelivery) Done() <-chan struct{} { return d.done }

func (d *pubDelivery) Error() error {
	select {
	case <-d.done:
		return d.err
	default:
		return nil
	}
}

var _ delivery = (*pubDelivery)(nil)
