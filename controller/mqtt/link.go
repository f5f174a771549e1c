package mqtt

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// link is the Client's way to its broker: a paho connection over the
// network (pahoLink), or mochi's inline client when the broker is the
// embedded one in this process (inlineLink). The Client's queues, workers,
// signing, metrics and desired-state bookkeeping are the same on both.
type link interface {
	// open subscribes to filters, and again after every reconnect,
	// handing each node message to deliver, which must not block: it
	// runs on the broker's or paho's goroutine.
	open(filters []string, deliver func(topic string, payload []byte)) error
	// publish hands a message to the broker.
	publish(topic string, qos byte, retained bool, payload []byte) delivery
	// connected reports whether publishes can reach the broker now.
	connected() bool
	// close stops the subscriptions and disconnects.
	close()
	// String names the broker for logs and errors.
	String() string
}

// delivery is a publish under way: done once the broker took it (Error
// nil) or it failed. paho's tokens are deliveries.
type delivery interface {
	Done() <-chan struct{}
	Error() error
}

// pahoLink reaches a broker over TCP (or TLS) with paho: an external one,
// or the embedded one from outside the process. With pubUser it publishes
// on a second connection of that account (pubConn), so the broker's
// acknowledgements of the controller's publishes do not queue behind the
// node messages it writes to the receiving connection.
type pahoLink struct {
	url        string // without credentials
	user, pass string
	tls        *tls.Config
	clientID   string
	timeout    time.Duration // of the subscription, logged if exceeded
	logger     *slog.Logger
	client     paho.Client
	// pubUser is the publish connection's username and client id; empty
	// publishes on client. pubURL, if set, is the publish connection's
	// broker instead of url (tests put a proxy before one connection).
	pubUser, pubURL string
	pub             *pubConn
}

func newPahoLink(brokerURL, user, pass string, tlsConfig *tls.Config, clientID string, timeout time.Duration, logger *slog.Logger) (*pahoLink, error) {
	u, err := url.Parse(brokerURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("mqtt client: broker URL %q: want tcp://host:port", brokerURL)
	}
	if u.User != nil && user == "" {
		user = u.User.Username()
		pass, _ = u.User.Password()
	}
	u.User = nil
	return &pahoLink{url: u.String(), user: user, pass: pass, tls: tlsConfig, clientID: clientID, timeout: timeout, logger: logger}, nil
}

func (l *pahoLink) String() string { return l.url }

// options returns the options of one connection to brokerURL.
func (l *pahoLink) options(brokerURL, clientID, user string) *paho.ClientOptions {
	o := paho.NewClientOptions().
		AddBroker(brokerURL).
		SetClientID(clientID).
		SetUsername(user).
		SetPassword(l.pass).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(10 * time.Second).
		SetKeepAlive(30 * time.Second).
		SetOrderMatters(true)
	if l.tls != nil {
		o.SetTLSConfig(l.tls)
	}
	return o
}

func (l *pahoLink) open(filters []string, deliver func(topic string, payload []byte)) error {
	subs := make(map[string]byte, len(filters))
	for _, f := range filters {
		subs[f] = 1
	}
	// failed is the reason last logged of a run of failed connection
	// attempts: paho retries every second, so each reason is logged once.
	var failed atomic.Pointer[string]
	o := l.options(l.url, l.clientID, l.user).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			l.logger.Warn("mqtt: connection to broker lost", "client", l.clientID, "err", err)
		}).
		SetConnectionNotificationHandler(func(_ paho.Client, n paho.ConnectionNotification) {
			// Without it a refused password or a certificate not trusted
			// left nothing in the log but publishes timing out.
			if f, ok := n.(paho.ConnectionNotificationFailed); ok {
				reason := f.Reason.Error()
				if last := failed.Swap(&reason); last == nil || *last != reason {
					l.logger.Warn("mqtt: cannot connect to the broker; trying again", "broker", l.url, "client", l.clientID, "err", f.Reason)
				}
			}
		}).
		SetOnConnectHandler(func(cl paho.Client) {
			failed.Store(nil)
			l.logger.Info("mqtt: connected to broker", "broker", l.url)
			// Never block here: paho calls this on its own goroutine and
			// the subscription completes asynchronously.
			tok := cl.SubscribeMultiple(subs, func(_ paho.Client, m paho.Message) { deliver(m.Topic(), m.Payload()) })
			go func() {
				if !tok.WaitTimeout(l.timeout) || tok.Error() != nil {
					l.logger.Error("mqtt: subscribe to node topics failed", "err", tok.Error())
				}
			}()
		})
	l.client = paho.NewClient(o)
	// With ConnectRetry the token completes only once connected; do not
	// wait, the controller serves its API while the broker is away.
	l.client.Connect()
	if l.pubUser != "" {
		pubURL := l.url
		if l.pubURL != "" {
			pubURL = l.pubURL
		}
		l.pub = newPubConn(l.client, l.options(pubURL, l.pubUser, l.pubUser), l.pubUser, l.logger)
	}
	return nil
}

// publish sends on the publish connection while it is up, else on the
// main one: publishing never depends on the second account.
func (l *pahoLink) publish(topic string, qos byte, retained bool, payload []byte) delivery {
	m := outMsg{topic: topic, qos: qos, retained: retained, payload: payload}
	if l.pub != nil {
		if d := l.pub.publish(m); d != nil {
			return d
		}
	}
	if qos == 0 && !l.client.IsConnectionOpen() {
		// paho completes a QoS 0 publish made while it reconnects as if
		// it had been sent, and drops it: a live call would go on with
		// no node hearing it.
		return done{errNotConnected}
	}
	return m.send(l.client)
}

// errNotConnected is a QoS 0 publish while the client is not connected.
var errNotConnected = errors.New("not connected to the broker")

// connected reports whether the main connection is up: it receives the
// node messages, and publishes while the publish connection is down.
func (l *pahoLink) connected() bool { return l.client != nil && l.client.IsConnectionOpen() }

func (l *pahoLink) close() {
	if l.pub != nil {
		l.pub.close()
	}
	if l.client != nil {
		l.client.Disconnect(250)
	}
}

// inlineLink reaches the embedded broker in this process through mochi's
// inline client: no connection, no packets, no acknowledgements. A node
// message is handed to deliver on the goroutine of the node's connection
// as the broker routes it, and a publish is routed to the nodes (and
// retained) within the call: taken when Server.Publish returns nil.
type inlineLink struct {
	broker *Broker
	subID  int
	subs   []string
	opened atomic.Bool // subscribed, not closed yet
}

// ErrBrokerClosed is returned for publishes to the embedded broker after
// it closed.
var ErrBrokerClosed = errors.New("embedded broker closed")

// embeddedName names the embedded broker in logs and errors.
const embeddedName = "embedded broker (in-process)"

func (l *inlineLink) String() string { return embeddedName }

func (l *inlineLink) open(filters []string, deliver func(topic string, payload []byte)) error {
	if !l.broker.serving() {
		return fmt.Errorf("mqtt client: %w or not open", ErrBrokerClosed)
	}
	l.subID = l.broker.nextSubID()
	handler := func(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
		// The broker's topic name is a view into the buffer the whole
		// packet was read into (mochi's zero-copy decodeString): a node
		// id cut from it and kept (an alert's tracking keys each node it
		// heard from, until the alert expires) kept the packet's payload
		// alive too, ~0.9 KB for each node and alert, 9 MB an alert at
		// 10,000 nodes (BENCHMARKS.md, "What a round allocates"). A copy
		// of the topic is 40 bytes.
		deliver(strings.Clone(pk.TopicName), pk.Payload)
	}
	for _, f := range filters {
		// The retained messages on f are handed over within the call.
		if err := l.broker.server.Subscribe(f, l.subID, handler); err != nil {
			l.close()
			return fmt.Errorf("mqtt client: subscribe to %s in the embedded broker: %w", f, err)
		}
		l.subs = append(l.subs, f)
	}
	l.opened.Store(true)
	return nil
}

func (l *inlineLink) publish(topic string, qos byte, retained bool, payload []byte) delivery {
	if !l.broker.serving() {
		return done{ErrBrokerClosed}
	}
	if err := l.broker.server.Publish(topic, payload, retained, qos); err != nil {
		return done{fmt.Errorf("embedded broker: %w", err)}
	}
	return done{}
}

func (l *inlineLink) connected() bool { return l.opened.Load() && l.broker.serving() }

func (l *inlineLink) close() {
	l.opened.Store(false)
	for _, f := range l.subs {
		_ = l.broker.server.Unsubscribe(f, l.subID)
	}
	l.subs = nil
}

// done is a finished delivery.
type done struct{ err error }

var closedDone = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func (d done) Done() <-chan struct{} { return closedDone }
func (d done) Error() error          { return d.err }

var (
	_ link     = (*pahoLink)(nil)
	_ link     = (*inlineLink)(nil)
	_ delivery = paho.Token(nil)
	_ delivery = done{}
)
