package netproxy

import (
	"bufio"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

func TestCutAndRestore(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				s := bufio.NewScanner(c)
				for s.Scan() {
					c.Write(append(s.Bytes(), '\n'))
				}
			}()
		}
	}()
	p, err := Start(echo.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	roundTrip := func(c net.Conn) error {
		if _, err := c.Write([]byte("ping\n")); err != nil {
			return err
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err == nil && line != "ping\n" {
			t.Fatalf("echo returned %q", line)
		}
		return err
	}
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(c); err != nil {
		t.Fatalf("before cut: %v", err)
	}
	p.Cut()
	if err := roundTrip(c); err == nil {
		t.Fatal("connection survived the cut")
	}
	c.Close()
	if c2, err := net.Dial("tcp", p.Addr()); err == nil {
		if roundTrip(c2) == nil {
			t.Fatal("new connection worked while cut")
		}
		c2.Close()
	}
	p.Restore()
	c3, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if err := roundTrip(c3); err != nil {
		t.Fatalf("after restore: %v", err)
	}
}

func TestFreezeAndThaw(t *testing.T) {
	p, c, r := echoThroughProxy(t)
	p.Freeze()
	if _, err := c.Write([]byte("lost\n")); err != nil {
		t.Fatalf("write while frozen: %v (the link must look alive)", err)
	}
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if line, err := r.ReadString('\n'); err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read while frozen: %q, %v; want a timeout, not an answer or a close", line, err)
	}
	p.Thaw()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("back\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := r.ReadString('\n'); err != nil || line != "back\n" {
		t.Fatalf("after thaw: %q, %v; want back (the frozen line was lost)", line, err)
	}
}

// Hold stalls the target's answers without losing them; Release delivers
// them in order.
func TestHoldAndRelease(t *testing.T) {
	p, c, r := echoThroughProxy(t)
	p.Hold()
	if _, err := c.Write([]byte("kept\n")); err != nil {
		t.Fatalf("write while held: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if line, err := r.ReadString('\n'); err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read while held: %q, %v; want a timeout", line, err)
	}
	p.Release()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("after\n")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kept\n", "after\n"} {
		if line, err := r.ReadString('\n'); err != nil || line != want {
			t.Fatalf("after release: %q, %v; want %q", line, err, want)
		}
	}
	// Held when it closes: the proxy's goroutines still end.
	p.Hold()
}

// echoThroughProxy starts a line echo server and a proxy to it, and
// dials the proxy; everything is closed when the test ends.
func echoThroughProxy(t *testing.T) (*Proxy, net.Conn, *bufio.Reader) {
	t.Helper()
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				s := bufio.NewScanner(c)
				for s.Scan() {
					c.Write(append(s.Bytes(), '\n'))
				}
			}()
		}
	}()
	p, err := Start(echo.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return p, c, bufio.NewReader(c)
}
