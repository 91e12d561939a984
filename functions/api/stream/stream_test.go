package stream_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/functions/api/stream"
	"github.com/sealedsense/sealedsense/functions/api/stream/cursor"
	"github.com/sealedsense/sealedsense/shared/event"
)

// TestFraming: NDJSON and SSE carry DT's frames, the event exactly as
// stored, an id on every SSE event, and DT's pings.
func TestFraming(t *testing.T) {
	t.Parallel()
	for _, accept := range []string{"application/json", "text/event-stream"} {
		t.Run(accept, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, stream.Config{})
			c := e.open(openOpts{accept: accept, query: "ping_interval=1s"})
			if got := c.resp.Header.Get("Content-Type"); got != accept {
				t.Fatalf("Content-Type %q, want %q", got, accept)
			}
			// A ping first: the stream is live and its token is a position.
			var ping frame
			for ping.ev.EventType != "ping" {
				ping = c.next(10 * time.Second)
			}
			if string(ping.ev.Data) != "null" || ping.ev.TargetName != "projects/"+e.project {
				t.Fatalf("ping %s", ping.event)
			}
			if r, err := cursor.Parse(ping.ev.EventID); err != nil || !r.IsToken() {
				t.Fatalf("ping eventId %q is not a position token: %v", ping.ev.EventID, err)
			}
			if accept == "text/event-stream" && ping.id != ping.ev.EventID {
				t.Fatalf("SSE ping id %q, eventId %q", ping.id, ping.ev.EventID)
			}
			ids := e.store(repeat("dev1", 3), []string{"temperature", "touch", "co2"}, 0)
			got, _ := c.events(3, 20*time.Second)
			for i, f := range got {
				ev, err := e.db.Event(context.Background(), f.ev.EventID)
				if err != nil {
					t.Fatal(err)
				}
				stored := ev.JSON
				if string(f.event) != string(stored) {
					t.Fatalf("event %d is not the stored JSON:\n got %s\nwant %s", i, f.event, stored)
				}
				if accept == "text/event-stream" && f.id != f.ev.EventID {
					t.Fatalf("SSE id %q for event %q", f.id, f.ev.EventID)
				}
			}
			if !sameSet(eventIDs(got), ids) {
				t.Fatalf("got %v, want %v", eventIDs(got), ids)
			}
		})
	}
}

// TestFilters: each filter selects exactly the events it names.
func TestFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, stream.Config{})
	e.device("t1", "temperature", map[string]string{"room": "a", "floor": "1"})
	e.device("t2", "temperature", map[string]string{"room": "b"})
	e.device("h1", "humidity", map[string]string{"room": "a", "floor": "2"})
	e.device("c1", "co2", nil)
	devices := []string{"t1", "t1", "t2", "t2", "h1", "h1", "c1", "c1", "gone"}
	types := []string{"temperature", "networkStatus", "temperature", "batteryStatus", "humidity", "networkStatus", "co2", "batteryStatus", "temperature"}

	cases := []struct {
		name, query string
		want        func(dev, typ string) bool
	}{
		{"all", "", func(string, string) bool { return true }},
		{"device ids, comma-separated", "device_ids=t1,c1", func(d, _ string) bool { return d == "t1" || d == "c1" }},
		{"device ids, repeated", "device_ids=t2&device_ids=h1", func(d, _ string) bool { return d == "t2" || d == "h1" }},
		{"event types", "event_types=networkStatus,co2", func(_, ty string) bool { return ty == "networkStatus" || ty == "co2" }},
		{"device types", "device_types=temperature", func(d, _ string) bool { return d == "t1" || d == "t2" }},
		{"label key", "label_filters=floor", func(d, _ string) bool { return d == "t1" || d == "h1" }},
		{"label key=value", "label_filters=room=a", func(d, _ string) bool { return d == "t1" || d == "h1" }},
		{"labels combine with AND", "label_filters=room=a&label_filters=floor=2", func(d, _ string) bool { return d == "h1" }},
		{"kinds combine with AND", "device_types=temperature,humidity&event_types=networkStatus&label_filters=room=a",
			func(d, ty string) bool { return (d == "t1" || d == "h1") && ty == "networkStatus" }},
		{"nothing", "device_ids=nobody", func(string, string) bool { return false }},
	}
	clients := make([]*client, len(cases))
	for i, c := range cases {
		clients[i] = e.open(openOpts{query: c.query})
		if clients[i].resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d %s", c.name, clients[i].resp.StatusCode, body(t, clients[i].resp))
		}
	}
	ids := e.store(devices, types, 0)
	// Every stream gets the events in the same fan-out as the unfiltered
	// one, so once it has all, the others have theirs.
	clients[0].events(len(ids), 30*time.Second)
	time.Sleep(time.Second) // for any event a filter should not have let through
	for i, c := range cases[1:] {
		var want []string
		for j := range ids {
			if c.want(devices[j], types[j]) {
				want = append(want, ids[j])
			}
		}
		cl := clients[i+1]
		got, _ := cl.events(len(want), 10*time.Second)
		cl.quiet(0)
		if !sameSet(eventIDs(got), want) {
			t.Errorf("%s: got %v, want %v", c.name, eventIDs(got), want)
		}
	}
}

// TestResumeAcrossKills: a client cut off three times, once while the
// server restarts, resumes each time from the last id it saw (over the
// parameter, the SSE header and a ping's token) and ends with every event
// exactly once, in the project's order.
func TestResumeAcrossKills(t *testing.T) {
	t.Parallel()
	e := newEnv(t, stream.Config{})
	const total = 400
	devices := make([]string, total)
	types := make([]string, total)
	for i := range devices {
		devices[i], types[i] = fmt.Sprintf("d%d", i%7), []string{"temperature", "touch", "networkStatus"}[i%3]
	}
	type writes struct {
		ids []string
		err error
	}
	written := make(chan writes, 1)
	c := e.open(openOpts{query: "ping_interval=1s"})
	go func() {
		// Batches of 20, concurrently written, while the client comes
		// and goes. A failed write ends the writer, which reports it
		// (Fatal would leave the test waiting for it).
		var w writes
		defer func() { written <- w }()
		for i := 0; i < total; i += 20 {
			ids, err := e.tryStore(devices[i:i+20], types[i:i+20], 0)
			if err != nil {
				w.err = err
				return
			}
			w.ids = append(w.ids, ids...)
			time.Sleep(50 * time.Millisecond)
		}
	}()

	var got []frame
	reconnects := []struct {
		accept    string
		viaHeader bool
		restart   bool
		pingToken bool
	}{
		{"application/json", false, false, false},
		{"text/event-stream", true, true, false}, // a new server: nothing but Firestore carries over
		{"application/json", false, false, true},
	}
	for _, rc := range reconnects {
		fs, _ := c.events(60, 30*time.Second)
		got = append(got, fs...)
		last := fs[len(fs)-1].ev.EventID
		if rc.pingToken {
			// Wait for a ping after the last event: its token stands
			// for everything the client has seen.
			for {
				f := c.next(10 * time.Second)
				if f.err != nil {
					t.Fatalf("error frame %+v", *f.err)
				}
				if f.ev.EventType == "ping" {
					last = f.ev.EventID
					break
				}
				got = append(got, f)
			}
		}
		c.kill()
		if rc.restart {
			e.restart()
		}
		time.Sleep(300 * time.Millisecond) // events go by while the client is away
		c = e.open(openOpts{accept: rc.accept, lastID: last, viaHeader: rc.viaHeader, query: "ping_interval=1s"})
		if c.resp.StatusCode != http.StatusOK {
			t.Fatalf("resume from %q: %d %s", last, c.resp.StatusCode, body(t, c.resp))
		}
	}
	w := <-written
	if w.err != nil {
		t.Fatalf("after %d events: %v", len(w.ids), w.err)
	}
	all := w.ids
	rest, _ := c.events(total-len(got), 60*time.Second)
	got = append(got, rest...)
	c.quiet(2 * time.Second)

	ids := eventIDs(got)
	seen := map[string]int{}
	for _, id := range ids {
		seen[id]++
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s received %d times", id, n)
		}
	}
	if !sameSet(ids, all) {
		t.Fatalf("received %d distinct events, want the %d written", len(seen), len(all))
	}
	// And in the order the stream defines: (storedAt, id).
	var prev cursor.Position
	for i, id := range ids {
		ev, err := e.db.Event(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if ev.StoredAt.IsZero() {
			t.Fatalf("event %d (%s) has no storedAt", i, id)
		}
		p := cursor.Position{At: ev.StoredAt, ID: id}
		if i > 0 && p.Compare(prev) <= 0 {
			t.Fatalf("event %d (%s) out of order", i, id)
		}
		prev = p
	}
}

// TestResumeFromPingOnly: a client that saw only pings resumes from a
// ping's token and gets what was stored while it was away.
func TestResumeFromPingOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, stream.Config{})
	c := e.open(openOpts{accept: "text/event-stream", query: "ping_interval=1s"})
	p := c.next(10 * time.Second)
	if p.ev.EventType != "ping" {
		t.Fatalf("first frame %s", p.event)
	}
	c.kill()
	ids := e.store(repeat("dev", 5), repeat("touch", 5), 0)
	c = e.open(openOpts{accept: "text/event-stream", lastID: p.id, viaHeader: true})
	got, _ := c.events(5, 20*time.Second)
	if !sameSet(eventIDs(got), ids) {
		t.Fatalf("got %v, want %v", eventIDs(got), ids)
	}
}

// TestRefusals: what a request is refused with, before any stream.
func TestRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, stream.Config{ResumeWindow: time.Hour})
	ids := e.store([]string{"dev"}, []string{"touch"}, 0)
	// Another project's event, in the same database as in production.
	otherID := event.DerivedID("elsewhere", "test", 1)
	if err := storeEvent(context.Background(), e.db, e.project+"-other", "elsewhere", "touch", otherID, 0); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cases := []struct {
		name   string
		o      openOpts
		status int
		is     error
	}{
		{"html", openOpts{accept: "text/html"}, 406, stream.ErrNotAcceptable},
		{"unknown event type", openOpts{query: "event_types=temprature"}, 400, stream.ErrBadRequest},
		{"ping too short", openOpts{query: "ping_interval=1ms"}, 400, stream.ErrBadRequest},
		{"garbled id", openOpts{lastID: "not an id!"}, 400, stream.ErrBadRequest},
		{"garbled token", openOpts{lastID: "v1.@@@@", viaHeader: true}, 400, stream.ErrBadRequest},
		{"future token", openOpts{lastID: cursor.Position{At: now.Add(time.Hour)}.Token()}, 400, stream.ErrBadRequest},
		{"unknown event", openOpts{lastID: "0123456789abcdefghij"}, 410, stream.ErrResumeGone},
		{"another project's event", openOpts{lastID: otherID}, 410, stream.ErrResumeGone},
		{"token older than the window", openOpts{lastID: cursor.Position{At: now.Add(-61 * time.Minute), ID: ids[0]}.Token()}, 410, stream.ErrResumeGone},
		{"event within the window", openOpts{lastID: ids[0]}, 200, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl := e.open(c.o)
			if cl.resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d", cl.resp.StatusCode, c.status)
			}
			if c.status == 200 {
				return
			}
			var f frame
			f, err := parseFrame([]byte(body(t, cl.resp)))
			if err != nil || f.err == nil || f.err.Code != c.status || f.err.Message == "" {
				t.Fatalf("body is not an error frame with code %d: %+v %v", c.status, f.err, err)
			}
			// Open says the same, as a typed error.
			req := httptest.NewRequest("GET", "/?"+cl.resp.Request.URL.RawQuery, nil)
			req.Header = cl.resp.Request.Header.Clone()
			st, err := e.srv.Load().Open(context.Background(), req, e.project)
			if st != nil {
				st.Close()
			}
			var se *stream.Error
			if !errors.Is(err, c.is) || !errors.As(err, &se) || se.Code != c.status {
				t.Fatalf("Open: %v, want %v with code %d", err, c.is, c.status)
			}
		})
	}
	// An event older than the window, by the server's clock.
	late, err := stream.New(stream.Config{ResumeWindow: time.Hour}, stream.Deps{Firestore: e.fs,
		Now: func() time.Time { return time.Now().Add(2 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	req := httptest.NewRequest("GET", "/?last_event_id="+ids[0], nil)
	if _, err := late.Open(context.Background(), req, e.project); !errors.Is(err, stream.ErrResumeGone) {
		t.Fatalf("an event two hours old: %v, want ErrResumeGone", err)
	}
}

// TestCaps: streams are capped per instance and per project; past a cap
// the answer is 429 with Retry-After, and a freed slot is reusable.
func TestCaps(t *testing.T) {
	t.Parallel()
	e := newEnv(t, stream.Config{MaxStreams: 3, MaxStreamsPerProject: 2, RetryAfter: 7 * time.Second})
	a1 := e.open(openOpts{})
	e.open(openOpts{})
	refused := e.open(openOpts{})
	if refused.resp.StatusCode != 429 || refused.resp.Header.Get("Retry-After") != "7" {
		t.Fatalf("third stream of a project: %d Retry-After %q", refused.resp.StatusCode, refused.resp.Header.Get("Retry-After"))
	}
	if b := e.open(openOpts{project: e.project + "-b"}); b.resp.StatusCode != 200 {
		t.Fatalf("another project: %d", b.resp.StatusCode)
	}
	req := httptest.NewRequest("GET", "/", nil)
	if _, err := e.srv.Load().Open(context.Background(), req, e.project+"-c"); !errors.Is(err, stream.ErrTooManyStreams) {
		t.Fatalf("fourth stream of the instance: %v, want ErrTooManyStreams", err)
	}
	a1.kill()
	waitFor(t, 10*time.Second, func() bool { return e.srv.Load().Stats().Streams == 2 })
	if again := e.open(openOpts{}); again.resp.StatusCode != 200 {
		t.Fatalf("after a stream closed: %d", again.resp.StatusCode)
	}
}

// TestRevocation: a caller whose access ends gets an error frame and the
// stream closes within about CheckInterval.
func TestRevocation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		err  error
		code int
	}{
		{"role removed", errors.New("no role"), 403},
		{"token expired", &stream.Error{Code: 401, Message: "the access token expired"}, 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, stream.Config{CheckInterval: 200 * time.Millisecond})
			cl := e.open(openOpts{accept: "text/event-stream"})
			e.store([]string{"d"}, []string{"touch"}, 0)
			cl.events(1, 20*time.Second)
			revoked := time.Now()
			e.caller.revoke(c.err)
			code, msg, _ := cl.errorFrame(10 * time.Second)
			if code != c.code {
				t.Fatalf("error frame %d %q, want %d", code, msg, c.code)
			}
			t.Logf("closed %v after the revocation (CheckInterval 200ms)", time.Since(revoked).Round(time.Millisecond))
			waitFor(t, 5*time.Second, func() bool { return len(e.audit.closes()) == 1 })
			if r := e.audit.closes()[0]; r.Reason != stream.ReasonRevoked || r.Events != 1 || r.Caller != e.caller {
				t.Fatalf("audit close %+v", r)
			}
		})
	}
}

// TestMaxDuration: a stream ends cleanly at MaxDuration, with a ping whose
// token resumes it exactly.
func TestMaxDuration(t *testing.T) {
	t.Parallel()
	e := newEnv(t, stream.Config{MaxDuration: 2 * time.Second})
	c := e.open(openOpts{})
	code, msg, pings := c.errorFrame(20 * time.Second)
	if code != 503 || !strings.Contains(msg, "maximum duration") || len(pings) != 1 {
		t.Fatalf("close frame %d %q after %d pings", code, msg, len(pings))
	}
	ids := e.store(repeat("dev", 3), repeat("touch", 3), 0)
	c = e.open(openOpts{lastID: pings[0].ev.EventID})
	got, _ := c.events(3, 20*time.Second)
	if !sameSet(eventIDs(got), ids) {
		t.Fatalf("after the close: %v, want %v", eventIDs(got), ids)
	}
	opens := 0
	e.audit.mu.Lock()
	for _, r := range e.audit.recs {
		if r.Action == "stream.open" {
			opens++
		}
	}
	e.audit.mu.Unlock()
	if opens != 2 || e.audit.closes()[0].Reason != stream.ReasonMaxDuration {
		t.Fatalf("audit: %d opens, closes %+v", opens, e.audit.closes())
	}
}

// TestShutdown: closing the server ends its streams with a 503 frame.
func TestShutdown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, stream.Config{})
	c := e.open(openOpts{accept: "text/event-stream"})
	waitFor(t, 10*time.Second, func() bool { return e.srv.Load().Stats().Streams == 1 })
	e.srv.Load().Close()
	if code, _, _ := c.errorFrame(10 * time.Second); code != 503 {
		t.Fatalf("shutdown frame %d", code)
	}
}

// TestSlowClient: a client that stops reading is cut off with a 429
// frame once it falls Buffer events behind, and the server's memory does
// not grow with what it did not read.
//
// It does not run in parallel, so that the heap it reports is its own.
func TestSlowClient(t *testing.T) {
	// The write the stuck client blocks must outlast the test's batches,
	// or it times out (as it should) mid-frame, before the 429 frame.
	e := newEnv(t, stream.Config{Buffer: 64, RingSize: 64, WriteTimeout: 2 * time.Minute})
	// A small receive buffer, so the server's writes block soon.
	hc := &http.Client{Transport: smallWindowTransport()}
	stuck := e.open(openOpts{httpClient: hc, noRead: true})
	reader := e.open(openOpts{}) // a client that keeps up, on the same feed
	waitFor(t, 10*time.Second, func() bool { return e.srv.Load().Stats().Streams == 2 })
	// Batches of events go by while the stuck client reads nothing; the
	// heap after each batch shows whether anything grows with them. The
	// first batch warms the server up (caches, connection buffers reach
	// their size): the three after it are measured.
	const batches, n, pad = 5, 300, 4000
	var heaps []string
	var first, last uint64
	for b := range batches {
		devices := make([]string, n)
		for i := range devices {
			devices[i] = fmt.Sprintf("d%d", i%10)
		}
		ids := e.store(devices, repeat("temperature", n), pad)
		got, _ := reader.events(n, 60*time.Second)
		if !sameSet(eventIDs(got), ids) {
			t.Fatalf("the reading client got %d events, want %d", len(got), n)
		}
		if b == 0 {
			waitFor(t, 30*time.Second, func() bool { return e.srv.Load().Stats().Dropped == 1 })
		}
		last = heap()
		if b == 1 {
			first = last
		}
		heaps = append(heaps, fmt.Sprintf("%d KiB", last>>10))
	}
	t.Logf("heap in use after each batch of %d events of %d B past a client that reads nothing: %s "+
		"(holding them for it would add %d KiB a batch)", n, pad, strings.Join(heaps, ", "), n*pad>>10)
	// Holding the unread events would add a batch's worth per batch; one
	// batch's worth over the three is a generous bound for GC noise.
	if last > first && last-first > n*pad {
		t.Fatalf("the heap grew %d KiB over %d batches the stuck client did not read", (last-first)>>10, batches-2)
	}
	// Now read: what was written before the cut, then the 429 frame.
	stuck.read()
	code, msg, _ := stuck.errorFrame(30 * time.Second)
	if code != 429 || !strings.Contains(msg, "behind") {
		t.Fatalf("slow client's last frame %d %q", code, msg)
	}
	waitFor(t, 10*time.Second, func() bool { return len(e.audit.closes()) == 1 })
	if r := e.audit.closes(); r[0].Reason != stream.ReasonTooSlow {
		t.Fatalf("audit closes %+v", r)
	}
}

func heap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func eventIDs(fs []frame) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.ev.EventID
	}
	return out
}

func sameSet(a, b []string) bool {
	as, bs := map[string]bool{}, map[string]bool{}
	for _, x := range a {
		as[x] = true
	}
	for _, x := range b {
		bs[x] = true
	}
	return len(a) == len(b) && maps.Equal(as, bs) && len(as) == len(a)
}

func waitFor(t *testing.T, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
