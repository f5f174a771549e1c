// Package netproxy is a TCP proxy for tests that cuts and restores a link on
// demand, the way a 3G/4G modem loses its connection: while cut, existing
// connections are dropped and new ones are refused. Freeze makes a
// half-open link instead: connections stay open and silently lose every
// byte, so neither end notices until its own timeout. Hold stalls the
// target's side without losing anything, as a client that reads slowly.
package netproxy

import (
	"errors"
	"net"
	"sync"
)

// Proxy forwards connections from its listen address to a target.
type Proxy struct {
	target string
	ln     net.Listener

	mu     sync.Mutex
	cut    bool
	frozen bool
	held   chan struct{} // non-nil while held; closed by Release
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
	done   chan struct{}
}

// Start listens on 127.0.0.1:0 and forwards to target.
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, ln: ln, conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the address clients should dial.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut drops every open connection and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

// Restore accepts connections again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// Freeze makes every connection half-open: bytes in either direction are
// read and dropped, and nothing is closed, until Thaw.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	p.frozen = true
	p.mu.Unlock()
}

// Thaw forwards again. The streams lost bytes while frozen, so the ends
// will usually find them corrupt and reconnect.
func (p *Proxy) Thaw() {
	p.mu.Lock()
	p.frozen = false
	p.mu.Unlock()
}

// Hold stops forwarding what the target sends to the clients, losing
// nothing, until Release: the target's writes back up behind the
// connection as behind a client that stopped reading. What the clients
// send still reaches the target.
func (p *Proxy) Hold() {
	p.mu.Lock()
	if p.held == nil {
		p.held = make(chan struct{})
	}
	p.mu.Unlock()
}

// Release forwards what Hold kept back, and what follows.
func (p *Proxy) Release() {
	p.mu.Lock()
	if p.held != nil {
		close(p.held)
		p.held = nil
	}
	p.mu.Unlock()
}

// waitHeld waits while the proxy is held; false if it closed meanwhile.
func (p *Proxy) waitHeld() bool {
	for {
		p.mu.Lock()
		h := p.held
		p.mu.Unlock()
		if h == nil {
			return true
		}
		select {
		case <-h:
		case <-p.done:
			return false
		}
	}
}

func (p *Proxy) isFrozen() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.frozen
}

// Close stops the proxy and waits for its goroutines.
func (p *Proxy) Close() error {
	close(p.done)
	err := p.ln.Close()
	p.Cut()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c] = struct{}{}
		p.conns[up] = struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(c, up, true)
		go p.pipe(up, c, false)
	}
}

// pipe copies src to dst; down is the target's side to the client's,
// which Hold stalls.
func (p *Proxy) pipe(dst, src net.Conn, down bool) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && down && !p.waitHeld() {
			break
		}
		if n > 0 && !p.isFrozen() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}
