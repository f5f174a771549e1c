package agent_test

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"loaxa.vn/node/nodetest"
	"loaxa.vn/node/store"
	"loaxa.vn/protocol"
)

// TestBoardClockBehindTheCertificateConnects: a board without an RTC
// battery, on an APN where NTP is blocked, boots with its clock 30 days
// behind. The controller's certificate was issued an hour ago, under the
// CA the board pins: the board verified it on its own clock, found it not
// valid yet, and neither connected to the broker nor measured the
// controller's time (over the same HTTPS) that would have corrected that
// clock. The pole stayed silent until a technician came. The board must
// connect and measure, fetch content once measured, and from then judge
// certificates on the measured clock: one that expired before the
// controller's time is refused, however valid it looks on the board's.
func TestBoardClockBehindTheCertificateConnects(t *testing.T) {
	const behind = 30 * 24 * time.Hour
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	ctlNow := func() time.Time { return time.Now().Add(behind) }
	ctl.Clock = ctlNow
	ctl.Signer = protocol.NewSigner("controller", ctl.Key, 0, ctlNow)
	ca := nodetest.NewCA(t, "loaxa test CA", ctlNow().Add(-365*24*time.Hour), ctlNow().Add(10*365*24*time.Hour))
	fresh := ca.Issue(t, "127.0.0.1", ctlNow().Add(-time.Hour), ctlNow().Add(90*24*time.Hour))
	https := startTLSFront(t, strings.TrimPrefix(ctl.HTTP.URL, "http://"), fresh)
	mqtts := startTLSFront(t, ctl.Broker, fresh)
	cred := ctl.Credentials("n1", "x1")
	cred.Controller, cred.Broker, cred.ControllerCA = "https://"+https.addr(), "ssl://"+mqtts.addr(), ca.PEM

	n := startAgent(t, cred, options{}) // the board's clock: the system's, 30 days behind
	waitConnected(t, n)
	nodetest.Eventually(t, 10*time.Second, "the controller's time not measured over HTTPS", func() bool {
		return n.a.Status().ClockUncertaintyUS > 0
	})
	if off := n.a.Clock().Get(); (off - behind).Abs() > time.Minute {
		t.Fatalf("clock corrected by %v, want about %v", off, behind)
	}

	ref := ctl.AddContent(time.Second)
	start := ctlNow().Add(time.Hour)
	ctl.PublishDesired(&protocol.DesiredState{
		Node: "n1", Version: 1, Generated: ctlNow().UTC(), Horizon: start.Add(time.Hour).UTC(),
		Occurrences: []protocol.Occurrence{occurrence("o1", ref, start)}, Content: []protocol.ContentRef{ref},
	})
	nodetest.Eventually(t, 10*time.Second, "content not fetched over HTTPS", func() bool {
		st := n.a.Status()
		return st.DesiredVersion == 1 && len(st.ContentMissing) == 0
	})

	// Someone serves a certificate of the same CA that expired yesterday
	// by the controller's time: valid on the board's clock, not on the
	// measured one.
	expired := ca.Issue(t, "127.0.0.1", ctlNow().Add(-60*24*time.Hour), ctlNow().Add(-24*time.Hour))
	https.serve(expired)
	if _, _, err := n.a.MeasureOffset(t.Context()); err == nil || !strings.Contains(err.Error(), "expired") ||
		!strings.Contains(err.Error(), "as this board measured it") || !strings.Contains(err.Error(), "renew the controller's certificate") {
		t.Errorf("time measured through a certificate expired on the measured clock: err %v; want it refused as expired", err)
	}
	// Nor, once measured, one not valid yet by the controller's time.
	https.serve(ca.Issue(t, "127.0.0.1", ctlNow().Add(24*time.Hour), ctlNow().Add(90*24*time.Hour)))
	if _, _, err := n.a.MeasureOffset(t.Context()); err == nil || !strings.Contains(err.Error(), "is before") {
		t.Errorf("time measured through a certificate not valid yet on the measured clock: err %v; want it refused", err)
	}
	refused := mqtts.failed.Load()
	mqtts.serve(expired)
	nodetest.Eventually(t, 10*time.Second, "the link never tried the expired certificate", func() bool { return mqtts.failed.Load() > refused })
	if n.a.Connected() {
		t.Error("the link connected through a certificate expired on the measured clock")
	}
}

// TestCertificateNotValidYetTakenOnlyFromThePinnedCA: taking a
// certificate not valid yet on a board's clock not measured yet must not
// let in anything else: not another CA's, not one for another host, not
// one that expired before the last time the controller proved (the clock
// floor), though still valid on the board's own clock.
func TestCertificateNotValidYetTakenOnlyFromThePinnedCA(t *testing.T) {
	const behind = 30 * 24 * time.Hour
	ctl := nodetest.NewController(t, nodetest.StartBroker(t))
	ctlNow := func() time.Time { return time.Now().Add(behind) }
	ctl.Clock = ctlNow
	ca := nodetest.NewCA(t, "loaxa test CA", ctlNow().Add(-365*24*time.Hour), ctlNow().Add(10*365*24*time.Hour))
	other := nodetest.NewCA(t, "someone else's CA", ctlNow().Add(-365*24*time.Hour), ctlNow().Add(10*365*24*time.Hour))
	fresh := ca.Issue(t, "127.0.0.1", ctlNow().Add(-time.Hour), ctlNow().Add(90*24*time.Hour))
	https := startTLSFront(t, strings.TrimPrefix(ctl.HTTP.URL, "http://"), fresh)
	cred := ctl.Credentials("n1", "x1")
	cred.Controller, cred.ControllerCA = "https://"+https.addr(), ca.PEM
	// The broker stays plain: the board's clock is measured only by the
	// HTTPS answers this test controls.

	for _, c := range []struct {
		name  string
		cert  tls.Certificate
		floor time.Time // the board's clock floor (zero: none)
		want  string    // the refusal; empty: taken
		hint  string    // what the refusal says to do, if anything
	}{
		{name: "pinned CA, not valid yet", cert: fresh},
		{name: "another CA, not valid yet", cert: other.Issue(t, "127.0.0.1", ctlNow().Add(-time.Hour), ctlNow().Add(90*24*time.Hour)), want: "unknown authority"},
		{name: "another host, not valid yet", cert: ca.Issue(t, "10.9.9.9", ctlNow().Add(-time.Hour), ctlNow().Add(90*24*time.Hour)), want: "valid for 10.9.9.9"},
		// The refusal says which clock judged and what to mend: the
		// technician reads it in the agent's log.
		{name: "expired on the board's clock", cert: ca.Issue(t, "127.0.0.1", time.Now().Add(-60*24*time.Hour), time.Now().Add(-24*time.Hour)),
			want: "this board's clock reads " + time.Now().UTC().Format("2006-01-02T"), hint: "set the board's date"},
		{
			name:  "expired before the clock floor",
			cert:  ca.Issue(t, "127.0.0.1", time.Now().Add(-10*24*time.Hour), time.Now().Add(10*24*time.Hour)),
			floor: ctlNow().Add(-time.Hour),
			want:  "moved up to the last time the controller proved",
			hint:  "renew the controller's certificate",
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			https.serve(c.cert)
			st := store.NewMemory()
			if !c.floor.IsZero() {
				if err := st.SetClockFloor(c.floor); err != nil {
					t.Fatal(err)
				}
			}
			n := startAgent(t, cred, options{store: st})
			waitConnected(t, n) // the floor is loaded
			_, _, err := n.a.MeasureOffset(t.Context())
			switch {
			case c.want == "" && err != nil:
				t.Errorf("time not measured through the pinned CA's certificate: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.hint)):
				t.Errorf("time measured through it: err %v; want it refused (%q), saying %q", err, c.want, c.hint)
			}
		})
	}
}

// tlsFront serves TLS on 127.0.0.1 with the certificate it is given and
// forwards the bytes to a plain backend: the controller's HTTPS or MQTTS
// as a board reaches it.
type tlsFront struct {
	ln     net.Listener
	cert   atomic.Pointer[tls.Certificate]
	failed atomic.Int64 // handshakes that failed (the board refused the certificate)

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startTLSFront(t *testing.T, backend string, cert tls.Certificate) *tlsFront {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &tlsFront{ln: ln, conns: map[net.Conn]struct{}{}}
	f.cert.Store(&cert)
	cfg := &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return f.cert.Load(), nil }}
	f.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.wg.Go(func() { f.forward(tls.Server(c, cfg), backend) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		f.drop()
		f.wg.Wait()
	})
	return f
}

func (f *tlsFront) addr() string { return f.ln.Addr().String() }

// serve makes the front serve cert from now on, and ends the connections
// made with the one before.
func (f *tlsFront) serve(cert tls.Certificate) {
	f.cert.Store(&cert)
	f.drop()
}

func (f *tlsFront) drop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.Close()
	}
}

// track notes c as open, or no longer.
func (f *tlsFront) track(c net.Conn, open bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if open {
		f.conns[c] = struct{}{}
	} else {
		delete(f.conns, c)
	}
}

func (f *tlsFront) forward(c *tls.Conn, backend string) {
	f.track(c, true)
	defer f.track(c, false)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.Handshake(); err != nil {
		if !errors.Is(err, net.ErrClosed) {
			f.failed.Add(1)
		}
		return
	}
	c.SetDeadline(time.Time{})
	b, err := net.Dial("tcp", backend)
	if err != nil {
		return
	}
	f.track(b, true)
	defer f.track(b, false)
	defer b.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(b, c)
		b.Close()
	}()
	io.Copy(c, b)
	c.Close()
	<-done
}
