package egress_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/egress"
)

func TestAllowed(t *testing.T) {
	t.Parallel()
	d := &egress.Dialer{}
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"8.8.8.8", true}, {"2001:4860:4860::8888", true}, {"151.101.1.69", true},
		{"127.0.0.1", false}, {"127.8.9.10", false}, {"::1", false}, {"::ffff:127.0.0.1", false},
		{"10.0.0.1", false}, {"172.16.5.4", false}, {"192.168.1.1", false}, {"fc00::1", false}, {"fd12::1", false},
		{"169.254.169.254", false}, {"::ffff:169.254.169.254", false}, {"fe80::1", false}, {"fd00:ec2::254", false},
		{"0.0.0.0", false}, {"::", false}, {"100.64.1.1", false}, {"224.0.0.1", false}, {"255.255.255.255", false},
		{"192.0.2.1", false}, {"64:ff9b::a9fe:a9fe", false}, {"240.0.0.1", false},
	} {
		err := d.Allowed(netip.MustParseAddr(tc.addr))
		if (err == nil) != tc.ok {
			t.Errorf("%s: allowed = %v, want %v (%v)", tc.addr, err == nil, tc.ok, err)
		}
		if err != nil && !errors.Is(err, egress.ErrRefused) {
			t.Errorf("%s: %v does not wrap ErrRefused", tc.addr, err)
		}
	}
	local := &egress.Dialer{AllowLoopback: true}
	if local.Allowed(netip.MustParseAddr("127.0.0.1")) != nil || local.Allowed(netip.MustParseAddr("10.0.0.1")) == nil {
		t.Error("local mode admits loopback and nothing more")
	}
}

// resolver answers from a script: the first answer, then the next, as a
// rebinding DNS server would.
type resolver struct {
	answers [][]netip.Addr
	calls   atomic.Int32
}

func (r *resolver) LookupNetIP(_ context.Context, _, _ string) ([]netip.Addr, error) {
	n := int(r.calls.Add(1)) - 1
	return r.answers[min(n, len(r.answers)-1)], nil
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func TestDialRefusesInternalNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		answer []netip.Addr
	}{
		{"loopback", addrs("127.0.0.1")},
		{"private", addrs("10.1.2.3")},
		{"metadata", addrs("169.254.169.254")},
		{"v6 loopback", addrs("::1")},
		{"public and internal", addrs("8.8.8.8", "10.0.0.1")},
	} {
		dialed := false
		d := &egress.Dialer{Resolver: &resolver{answers: [][]netip.Addr{tc.answer}},
			Dial: func(context.Context, string, string) (net.Conn, error) {
				dialed = true
				return nil, errors.New("unreachable")
			}}
		_, err := d.DialContext(context.Background(), "tcp", "hooks.example.com:443")
		if !errors.Is(err, egress.ErrRefused) || dialed {
			t.Errorf("%s: err %v, dialed %v", tc.name, err, dialed)
		}
	}
	for _, lit := range []string{"127.0.0.1:443", "[::1]:443", "10.0.0.7:443", "169.254.169.254:80"} {
		d := &egress.Dialer{Dial: func(context.Context, string, string) (net.Conn, error) { t.Fatal("dialed"); return nil, nil }}
		if _, err := d.DialContext(context.Background(), "tcp", lit); !errors.Is(err, egress.ErrRefused) {
			t.Errorf("%s: %v", lit, err)
		}
	}
}

// TestRebindingCannotGetThrough: the name resolves to a public address when
// checked and to loopback right after. The dialer resolves once and
// connects to the literal it checked, so the second answer is never used.
func TestRebindingCannotGetThrough(t *testing.T) {
	t.Parallel()
	r := &resolver{answers: [][]netip.Addr{addrs("93.184.215.14"), addrs("127.0.0.1")}}
	var target string
	d := &egress.Dialer{Resolver: r, Dial: func(_ context.Context, _, address string) (net.Conn, error) {
		target = address
		return nil, errors.New("stop here")
	}}
	_, _ = d.DialContext(context.Background(), "tcp", "rebind.example.com:443")
	if target != "93.184.215.14:443" || r.calls.Load() != 1 {
		t.Fatalf("dialed %q after %d lookups", target, r.calls.Load())
	}
	// The next connection looks the name up again and gets the rebound
	// loopback answer: refused before any dial.
	if _, err := d.Client(time.Second).Get("https://rebind.example.com/hook"); !errors.Is(err, egress.ErrRefused) {
		t.Fatalf("the rebound answer was not refused: %v", err)
	}
	if target != "93.184.215.14:443" {
		t.Fatalf("dialed %q", target)
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	cloud, local := &egress.Dialer{}, &egress.Dialer{AllowLoopback: true}
	for _, tc := range []struct {
		url          string
		cloud, local bool
	}{
		{"https://hooks.example.com/x", true, true},
		{"http://hooks.example.com/x", false, false},
		{"http://127.0.0.1:8080/x", false, true},
		{"http://localhost:8080/x", false, true},
		{"https://user:pw@hooks.example.com/", false, false},
		{"ftp://hooks.example.com/", false, false},
		{"https:///nohost", false, false},
		{"::not a url", false, false},
	} {
		if _, err := cloud.CheckURL(tc.url); (err == nil) != tc.cloud {
			t.Errorf("cloud %s: %v", tc.url, err)
		}
		if _, err := local.CheckURL(tc.url); (err == nil) != tc.local {
			t.Errorf("local %s: %v", tc.url, err)
		}
	}
}

func TestClientFollowsNoRedirect(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hook" {
			http.Redirect(w, r, "http://169.254.169.254/computeMetadata/v1/", http.StatusFound)
			return
		}
		t.Error("the redirect was followed")
	}))
	defer srv.Close()
	d := &egress.Dialer{AllowLoopback: true}
	resp, err := d.Client(time.Second).Get(srv.URL + "/hook")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// Without local mode the same server is refused before connecting.
	if _, err := (&egress.Dialer{}).Client(time.Second).Get(srv.URL + "/hook"); !errors.Is(err, egress.ErrRefused) {
		t.Fatalf("cloud mode reached a loopback server: %v", err)
	}
}
