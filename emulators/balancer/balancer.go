// Package balancer spreads HTTP requests over several local function
// instances, as Cloud Run spreads a service's requests, Pub/Sub pushes
// included, over its instances: round-robin, skipping an instance that
// refuses connections (one that crashed or has not started yet).
package balancer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"sync/atomic"
	"syscall"
)

// maxBody bounds a request body held for a retry on another instance:
// Pub/Sub pushes at most 10 MB.
const maxBody = 16 << 20

// Balancer is an http.Handler that forwards each request to the next of
// its instances.
type Balancer struct {
	addrs []string // host:port of each instance
	next  atomic.Uint64
	proxy *httputil.ReverseProxy
}

// New balances over the instances listening at addrs.
func New(addrs []string) *Balancer {
	b := &Balancer{addrs: addrs}
	b.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme = "http"
			r.Out.URL.Host = "instance" // the transport picks one
			r.Out.Host = r.In.Host
		},
		Transport: transport{b},
		// A stream's events go out as they come.
		FlushInterval: -1,
		// An instance that dies mid-request fails that request, as a
		// crashed Cloud Run instance does: Pub/Sub redelivers it, a
		// client retries. Nothing to log here; the instance's log says.
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) },
	}
	return b
}

func (b *Balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > maxBody {
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	b.proxy.ServeHTTP(w, r)
}

// transport sends a request to the next instance, and to the one after
// when an instance refuses the connection: the request never reached it.
type transport struct{ b *Balancer }

func (t transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(io.LimitReader(req.Body, maxBody+1)); err != nil {
			return nil, err
		}
		req.Body.Close()
		if len(body) > maxBody {
			return nil, errors.New("balancer: request body too large")
		}
	}
	n := len(t.b.addrs)
	first := t.b.next.Add(1)
	var last error
	for i := range n {
		out := req.Clone(req.Context())
		out.URL.Host = t.b.addrs[(first+uint64(i))%uint64(n)]
		if req.Body != nil {
			out.Body = io.NopCloser(bytes.NewReader(body))
		}
		resp, err := http.DefaultTransport.RoundTrip(out)
		if err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
			return resp, err
		}
		last = err
	}
	return nil, fmt.Errorf("balancer: no instance is up: %w", last)
}
