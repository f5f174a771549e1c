package mqtt_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"loaxa.vn/controller/mqtt"
	"loaxa.vn/protocol"
)

// connectHeader returns the fixed header of an MQTT CONNECT whose body is
// size bytes long: what a client sends before the body.
func connectHeader(size int) []byte {
	h := []byte{0x10}
	for {
		b := byte(size % 128)
		size /= 128
		if size > 0 {
			b |= 0x80
		}
		h = append(h, b)
		if size == 0 {
			return h
		}
	}
}

// memInUse returns the heap and goroutine stacks in use after a
// collection, once they stop changing: the broker's goroutines may still be
// allocating for the connections the caller just saw arrive.
func memInUse() uint64 {
	var last uint64
	for range 50 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		now := m.HeapInuse + m.StackInuse
		if d := int64(now) - int64(last); d > -64<<10 && d < 64<<10 {
			return now
		}
		last = now
		time.Sleep(20 * time.Millisecond)
	}
	return last
}

// BenchmarkUnauthenticatedConnections measures what the embedded broker
// holds for connections that have not authenticated, as an attacker on
// the 4G APN opens them: 200 TCP connections that send nothing, or only
// the fixed header of a large CONNECT (1 MiB, the largest packet the
// broker takes; 8 KiB, the largest CONNECT it now reads), and stop.
// mem-B/conn is the heap and stack that stay in use for each while they
// are open.
func BenchmarkUnauthenticatedConnections(b *testing.B) {
	const n = 200
	for _, c := range []struct {
		name string
		send []byte
	}{
		{"silent", nil},
		{"connect-header-1MiB", connectHeader(protocol.MaxMessageSize)},
		{"connect-header-8KiB", connectHeader(8<<10 - 1)},
	} {
		b.Run(c.name, func(b *testing.B) {
			r := newRig(b)
			var perConn float64
			for b.Loop() {
				before := memInUse()
				goroutines, received := runtime.NumGoroutine(), mqtt.BytesReceived(r.broker)
				conns := make([]net.Conn, 0, n)
				for range n {
					cn, err := net.Dial("tcp", r.broker.ListenAddr())
					if err != nil {
						b.Fatal(err)
					}
					conns = append(conns, cn)
					if _, err := cn.Write(c.send); err != nil {
						b.Fatal(err)
					}
				}
				// Wait until the broker took every connection and read what
				// each sent.
				for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
					if c.send == nil && runtime.NumGoroutine() >= goroutines+n ||
						c.send != nil && mqtt.BytesReceived(r.broker)-received >= int64(n*len(c.send)) {
						break
					}
					if time.Now().After(deadline) {
						b.Fatalf("the broker did not take %d connections in a minute", n)
					}
				}
				perConn = float64(int64(memInUse())-int64(before)) / n
				for _, cn := range conns {
					cn.Close()
				}
			}
			b.ReportMetric(perConn, "mem-B/conn")
		})
	}
}

// endedByTheBroker reports how cn ends: nil when the broker closed it,
// an error when it was still open after a minute.
func endedByTheBroker(cn net.Conn) error {
	if err := cn.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
		return err
	}
	_, err := cn.Read(make([]byte, 1))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return errors.New("the broker still holds the connection after a minute")
	}
	if err == nil {
		return errors.New("the broker answered")
	}
	return nil
}

// TestBrokerRefusesAnOversizedConnect: the broker allocated the whole
// body a CONNECT's header declared, up to 1 MiB, before the client had
// authenticated, and held it while the client sent nothing more: a few
// thousand connections from the 4G APN, 5 bytes each, could take the
// controller's memory. A CONNECT larger than a client needs must end the
// connection before its body is read, and nodes must still connect.
func TestBrokerRefusesAnOversizedConnect(t *testing.T) {
	// Not ended for taking too long: for being too large.
	r := newRigWith(t, func(b *mqtt.Broker) { b.ConnectTimeout = time.Hour })
	cn, err := net.Dial("tcp", r.broker.ListenAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer cn.Close()
	if _, err := cn.Write(connectHeader(protocol.MaxMessageSize)); err != nil {
		t.Fatal(err)
	}
	if err := endedByTheBroker(cn); err != nil {
		t.Errorf("a connection that declared a 1 MiB CONNECT and sent nothing more: %v", err)
	}
	if _, err := r.connect(t, "tt-01", "tt-01", "secret-tt-01", topics.Node("tt-01", protocol.ChanState)); err != nil {
		t.Errorf("a node with its Last Will: %v", err)
	}
}

// TestBrokerEndsAConnectionThatSendsNoConnect: the broker waited without
// end for a new connection's CONNECT (or its TLS handshake), holding a
// goroutine and buffers for each, and its Close waited for every such
// connection to end. A connection that has not sent its CONNECT within
// ConnectTimeout must be ended, over TCP and TLS alike.
func TestBrokerEndsAConnectionThatSendsNoConnect(t *testing.T) {
	for _, c := range []struct {
		name string
		tls  bool
		send []byte
	}{
		{"silent", false, nil},
		{"half a CONNECT", false, append(connectHeader(100), make([]byte, 50)...)},
		{"no TLS handshake", true, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRigWith(t, func(b *mqtt.Broker) {
				b.ConnectTimeout = 100 * time.Millisecond
				if c.tls {
					b.TLSConfig = selfSigned(t)
				}
			})
			cn, err := net.Dial("tcp", r.broker.ListenAddr())
			if err != nil {
				t.Fatal(err)
			}
			defer cn.Close()
			if _, err := cn.Write(c.send); err != nil {
				t.Fatal(err)
			}
			if err := endedByTheBroker(cn); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestBrokerLimitsConnectionsWaitingForTheirConnect: the broker bounded
// how long a connection may wait for its CONNECT, not how many may: 3,000
// silent connections opened at once all stayed, a goroutine and a file
// each, and someone opening them faster than they time out could take
// every file the controller may open. Beyond MaxConnecting waiting at
// once, a new connection must be ended at once, over TCP and TLS alike;
// connected nodes must not count, and a node must connect once there is
// room again.
func TestBrokerLimitsConnectionsWaitingForTheirConnect(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		name := map[bool]string{false: "tcp", true: "tls"}[useTLS]
		t.Run(name, func(t *testing.T) {
			// Not ended for taking too long: for lack of room.
			r := newRigWith(t, func(b *mqtt.Broker) {
				b.ConnectTimeout = time.Hour
				b.MaxConnecting = 3
				if useTLS {
					b.TLSConfig = selfSigned(t)
				}
			})
			if !useTLS { // the rig's nodes speak plain MQTT
				if _, err := r.connect(t, "tt-01", "tt-01", "secret-tt-01", ""); err != nil {
					t.Fatalf("a node before anyone else: %v", err)
				}
			}
			waitUntil(t, "no connection waits for its CONNECT", func() bool { return mqtt.Connecting(r.broker) == 0 })
			silent := make([]net.Conn, 3)
			for i := range silent {
				cn, err := net.Dial("tcp", r.broker.ListenAddr())
				if err != nil {
					t.Fatal(err)
				}
				defer cn.Close()
				silent[i] = cn
			}
			waitUntil(t, "3 connections wait for their CONNECT", func() bool { return mqtt.Connecting(r.broker) == 3 })

			cn, err := net.Dial("tcp", r.broker.ListenAddr())
			if err != nil {
				t.Fatal(err)
			}
			defer cn.Close()
			if err := endedByTheBroker(cn); err != nil {
				t.Fatalf("a fourth connection while 3 wait for their CONNECT: %v", err)
			}
			if n := mqtt.RefusedConnections(r.broker); n != 1 {
				t.Errorf("%d connections refused, want the fourth", n)
			}
			if n := mqtt.Connecting(r.broker); n != 3 {
				t.Errorf("%d connections wait for their CONNECT after the refusal, want 3", n)
			}

			// Room again: a node connects, and once connected no longer
			// counts.
			silent[0].Close()
			waitUntil(t, "2 connections wait for their CONNECT", func() bool { return mqtt.Connecting(r.broker) == 2 })
			if useTLS {
				return
			}
			if _, err := r.connect(t, "tm-01", "tm-01", "secret-tm-01", ""); err != nil {
				t.Fatalf("a node once there is room: %v", err)
			}
			if n := mqtt.Connecting(r.broker); n != 2 {
				t.Errorf("%d connections wait for their CONNECT with the node connected, want the 2 silent ones", n)
			}
		})
	}
}

// waitUntil waits for cond, for at most a minute: the broker takes and
// ends connections on its own goroutines.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still not so after a minute: %s", what)
		}
	}
}

// selfSigned returns a server TLS configuration with a new self-signed
// certificate.
func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}
