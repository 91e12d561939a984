package balancer_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/emulators/balancer"
)

// instance answers with its name and the body it got.
func instance(name string) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s:%s", name, b)
	}))
}

func post(t *testing.T, url, body string) string {
	t.Helper()
	resp, err := http.Post(url, "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST: %s %s", resp.Status, b)
	}
	return string(b)
}

// spread posts 30 requests through the balancer at url and counts them
// by the instance that answered, checking each got its own body.
func spread(t *testing.T, url string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := range 30 {
		reply := post(t, url, fmt.Sprint(i))
		name, body, _ := strings.Cut(reply, ":")
		if body != fmt.Sprint(i) {
			t.Fatalf("request %d reached %s with body %q", i, name, body)
		}
		got[name]++
	}
	return got
}

func TestSpreadsAndSkipsADeadInstance(t *testing.T) {
	a, b, c := instance("a"), instance("b"), instance("c")
	defer a.Close()
	defer c.Close()
	addr := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }
	lb := httptest.NewServer(balancer.New([]string{addr(a), addr(b), addr(c)}))
	defer lb.Close()

	got := spread(t, lb.URL)
	for _, n := range []string{"a", "b", "c"} {
		if got[n] != 10 {
			t.Errorf("instance %s got %d of 30 requests, want 10 (round-robin): %v", n, got[n], got)
		}
	}

	b.Close() // crashed: its requests go to the others, bodies intact
	got = spread(t, lb.URL)
	if got["b"] != 0 || got["a"]+got["c"] != 30 {
		t.Errorf("with b down: %v, want every request on a or c", got)
	}
}

func TestStreamsFlushAsTheyGo(t *testing.T) {
	release := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "first")
		w.(http.Flusher).Flush()
		<-release
		fmt.Fprintln(w, "second")
	}))
	defer s.Close()
	lb := httptest.NewServer(balancer.New([]string{strings.TrimPrefix(s.URL, "http://")}))
	defer lb.Close()
	defer close(release)

	resp, err := http.Get(lb.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(resp.Body).ReadString('\n')
		line <- l
	}()
	select {
	case l := <-line:
		if l != "first\n" {
			t.Errorf("first line %q", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream's first line did not come through before the response ended: the balancer buffers")
	}
}
