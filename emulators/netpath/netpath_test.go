package netpath

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

// echo is a TCP service that writes back every line it reads.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

// roundTrip sends a line through c and reads its echo.
func roundTrip(c net.Conn, line string) (string, error) {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return got[:len(got)-1], nil
}

// TestCutAndRestore: through the proxy the service answers; a cut breaks
// the open connection and refuses new ones; after a restore a new
// connection works again.
func TestCutAndRestore(t *testing.T) {
	t.Parallel()
	p, err := Listen(echo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	open, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if got, err := roundTrip(open, "before"); err != nil || got != "before" {
		t.Fatalf("through the proxy: %q %v, want the echo %q", got, err, "before")
	}

	p.Cut()
	if got, err := roundTrip(open, "during"); err == nil {
		t.Fatalf("an open connection still answered %q after the cut", got)
	}
	if c, err := net.Dial("tcp", p.Addr()); err == nil {
		got, err := roundTrip(c, "new")
		c.Close()
		if err == nil {
			t.Fatalf("a new connection answered %q during the cut", got)
		}
	}

	p.Restore()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := roundTrip(c, "after"); err != nil || got != "after" {
		t.Fatalf("after the restore: %q %v, want the echo %q", got, err, "after")
	}
}

// TestCloseEndsConnections: closing the proxy closes what runs through it
// and frees its port.
func TestCloseEndsConnections(t *testing.T) {
	t.Parallel()
	p, err := Listen(echo(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := roundTrip(c, "x"); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(c, "y"); err == nil {
		t.Fatal("a connection survived the proxy's close")
	}
	if c, err := net.Dial("tcp", p.Addr()); err == nil {
		c.Close()
		t.Fatal("the proxy still accepts after Close")
	}
}
