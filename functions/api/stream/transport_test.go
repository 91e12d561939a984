package stream_test

import (
	"context"
	"net"
	"net/http"
	"syscall"
)

// smallWindowTransport dials with a 4 KiB receive buffer, so a client
// that stops reading makes the server's writes block after little data.
func smallWindowTransport() *http.Transport {
	d := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}, DisableCompression: true}
}

// smallBufferListener gives accepted connections a 16 KiB send buffer (the
// kernel would grow it to 4 MiB), so that a client that stops reading
// blocks the server's writes after little data, as a slow link would.
type smallBufferListener struct{ net.Listener }

func (l smallBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(16 << 10)
	}
	return c, err
}
