// Package egress makes outbound HTTP requests to customer-supplied URLs
// without letting them reach the platform itself: it resolves the host,
// refuses internal, link-local and metadata addresses, and connects to the
// very address it checked, so a DNS answer that changes in between
// (rebinding) cannot redirect the connection.
package egress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// ErrRefused wraps every refusal of a URL or an address.
var ErrRefused = errors.New("egress: refused")

// Resolver looks up a host's addresses; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Dialer connects only to public addresses.
type Dialer struct {
	// Resolver defaults to net.DefaultResolver.
	Resolver Resolver
	// Dial makes the connection to the checked address literal; it
	// defaults to a net.Dialer with a 5 s timeout.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// AllowLoopback admits loopback addresses, for local mode only.
	AllowLoopback bool
	// TLS configures the client's TLS; nil is the system's roots. Local
	// runs add the test receivers' CA here.
	TLS *tls.Config
}

// reserved are the ranges a customer URL may never reach, beyond what
// netip's predicates name: shared address space (CGNAT), IETF protocol
// assignments, benchmarking, documentation, and the IPv6 metadata address
// some clouds use.
func reserved() []netip.Prefix {
	return []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),
		netip.MustParsePrefix("100.64.0.0/10"),
		netip.MustParsePrefix("192.0.0.0/24"),
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("198.18.0.0/15"),
		netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("203.0.113.0/24"),
		netip.MustParsePrefix("240.0.0.0/4"),
		netip.MustParsePrefix("64:ff9b::/96"), // NAT64 can embed any IPv4 address
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("fd00:ec2::254/128"),
	}
}

// Allowed says whether an address may be connected to.
func (d *Dialer) Allowed(a netip.Addr) error {
	a = a.Unmap() // ::ffff:127.0.0.1 is 127.0.0.1
	switch {
	case !a.IsValid():
		return fmt.Errorf("%w: invalid address", ErrRefused)
	case a.IsLoopback():
		if d.AllowLoopback {
			return nil
		}
		return fmt.Errorf("%w: %s is loopback", ErrRefused, a)
	case a.IsPrivate(), a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast(),
		a.IsMulticast(), a.IsUnspecified():
		// Link-local covers 169.254.169.254, the metadata server.
		return fmt.Errorf("%w: %s is not a public address", ErrRefused, a)
	}
	for _, p := range reserved() {
		if p.Contains(a) {
			return fmt.Errorf("%w: %s is reserved", ErrRefused, a)
		}
	}
	if a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return fmt.Errorf("%w: broadcast", ErrRefused)
	}
	return nil
}

// DialContext resolves addr's host once, checks every address it got, and
// connects to the first allowed one by its literal, never by name.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		addrs = []netip.Addr{a}
	} else {
		r := d.Resolver
		if r == nil {
			r = net.DefaultResolver
		}
		if addrs, err = r.LookupNetIP(ctx, "ip", host); err != nil {
			return nil, fmt.Errorf("egress: resolve %s: %w", host, err)
		}
	}
	// Every address must pass: a name that also resolves to an internal
	// address is refused outright rather than raced.
	for _, a := range addrs {
		if err := d.Allowed(a); err != nil {
			return nil, fmt.Errorf("%s: %w", host, err)
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%w: %s has no address", ErrRefused, host)
	}
	dial := d.Dial
	if dial == nil {
		dial = (&net.Dialer{Timeout: 5 * time.Second}).DialContext
	}
	return dial(ctx, network, net.JoinHostPort(addrs[0].Unmap().String(), port))
}

// CheckURL refuses what may never be a delivery target before any
// connection: anything but https, or http to a loopback host in local
// mode; credentials in the URL.
func (d *Dialer) CheckURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: not a URL", ErrRefused)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: credentials in the URL", ErrRefused)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%w: no host", ErrRefused)
	}
	switch u.Scheme {
	case "https":
		return u, nil
	case "http":
		if d.AllowLoopback {
			h := u.Hostname()
			if a, err := netip.ParseAddr(h); (err == nil && a.Unmap().IsLoopback()) || h == "localhost" {
				return u, nil
			}
		}
		return nil, fmt.Errorf("%w: only https (plain http to loopback in local mode only)", ErrRefused)
	default:
		return nil, fmt.Errorf("%w: scheme %q", ErrRefused, u.Scheme)
	}
}

// Client returns an HTTP client that dials through d, never uses a proxy
// (one would connect on our behalf to anything), follows no redirects and
// gives up after timeout.
func (d *Dialer) Client(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           d.DialContext,
			ForceAttemptHTTP2:     true,
			TLSClientConfig:       d.TLS,
			MaxIdleConnsPerHost:   16,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: timeout,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
