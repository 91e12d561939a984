package kms

import (
	"context"
	"fmt"
	"net"

	"google.golang.org/grpc"
)

// Emulator is a running KMS emulator.
type Emulator struct {
	lis    net.Listener
	srv    *grpc.Server
	server *Server
}

// Start serves the emulator on addr ("127.0.0.1:0" picks a free port)
// until Close. This is how tests run it in-process.
func Start(_ context.Context, addr string, opts ...Option) (*Emulator, error) {
	s, err := NewServer(opts...)
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("kms emulator: %w", err)
	}
	g := grpc.NewServer()
	s.Register(g)
	go func() { _ = g.Serve(lis) }()
	return &Emulator{lis: lis, srv: g, server: s}, nil
}

// Addr is the host:port to put in KMS_EMULATOR_HOST.
func (e *Emulator) Addr() string { return e.lis.Addr().String() }

// Close stops serving, letting requests in flight finish.
func (e *Emulator) Close() error {
	e.srv.GracefulStop()
	return nil
}

// CryptoCalls is the number of cryptographic operations served so far.
func (e *Emulator) CryptoCalls() uint64 { return e.server.CryptoCalls() }
