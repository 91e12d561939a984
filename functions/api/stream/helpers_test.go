package stream_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/functions/api/stream"
	"github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/store"
)

func TestMain(m *testing.M) { platformtest.Main(m) }

// env is one test's project, stream server and HTTP front.
type env struct {
	t       *testing.T
	project string
	fs      *firestore.Client
	db      *store.DB
	srv     atomic.Pointer[stream.Server]
	cfg     stream.Config
	http    *httptest.Server
	caller  *testCaller
	audit   *testAudit
	seq     atomic.Uint64
}

func newEnv(t *testing.T, cfg stream.Config) *env {
	t.Helper()
	e := &env{t: t, project: platformtest.ProjectID(t), cfg: cfg, caller: &testCaller{}, audit: &testAudit{}}
	e.fs = platformtest.Firestore(t, e.project)
	e.db = store.New(e.fs)
	e.restart()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/projects/{p}/devices:stream", func(w http.ResponseWriter, r *http.Request) {
		e.srv.Load().Handle(r.Context(), w, r, r.PathValue("p"), e.caller)
	})
	e.http = httptest.NewUnstartedServer(mux)
	e.http.Listener = smallBufferListener{e.http.Listener}
	e.http.Start()
	t.Cleanup(func() {
		e.http.CloseClientConnections()
		e.http.Close()
		e.srv.Load().Close()
	})
	return e
}

// restart replaces the stream server with a new one, as a new instance
// would be: nothing carries over but Firestore.
func (e *env) restart() *stream.Server {
	srv, err := stream.New(e.cfg, stream.Deps{Firestore: e.fs, Audit: e.audit, Logger: testLogger(e.t)})
	if err != nil {
		e.t.Fatal(err)
	}
	if old := e.srv.Swap(srv); old != nil {
		old.Close()
	}
	return srv
}

// store writes events as ingest does (shared/store's Event, storedAt
// the server timestamp of the write), in a transaction each, concurrently,
// and returns their ids in the order given.
func (e *env) store(devices []string, types []string, pad int) []string {
	e.t.Helper()
	ids, err := e.tryStore(devices, types, pad)
	if err != nil {
		e.t.Fatal(err)
	}
	return ids
}

// tryStore is store for a goroutine other than the test's, which must
// not call Fatal: it returns the first error instead.
func (e *env) tryStore(devices []string, types []string, pad int) ([]string, error) {
	ids := make([]string, len(devices))
	var wg sync.WaitGroup
	errs := make(chan error, len(devices))
	sem := make(chan struct{}, 16)
	for i := range devices {
		ids[i] = event.DerivedID(devices[i], "test", e.seq.Add(1))
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs <- storeRetrying(e.db, e.project, devices[i], types[i], ids[i], pad)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return nil, fmt.Errorf("storing %d events: %w", len(devices), err)
		}
	}
	return ids, nil
}

// storeRetrying stores an event as ingest's redelivered message would:
// again after a transient failure of the emulator (under CI's load it
// has cancelled a call of its own accord), an id already there after a
// retry meaning the failed attempt had committed.
func storeRetrying(db *store.DB, project, deviceID, typ, id string, pad int) error {
	var err error
	for attempt := range 3 {
		err = storeEvent(context.Background(), db, project, deviceID, typ, id, pad)
		switch status.Code(err) {
		case codes.OK:
			return nil
		case codes.AlreadyExists:
			if attempt > 0 {
				return nil
			}
			return err
		case codes.Canceled, codes.Unavailable, codes.Aborted, codes.DeadlineExceeded:
			time.Sleep(100 * time.Millisecond)
			continue
		}
		return err
	}
	return err
}

func storeEvent(ctx context.Context, db *store.DB, project, deviceID, typ, id string, pad int) error {
	now := time.Now().UTC()
	inner := map[string]any{"updateTime": now.Format(event.TimeFormat)}
	if pad > 0 {
		inner["pad"] = strings.Repeat("x", pad)
	}
	data, err := json.Marshal(map[string]any{typ: inner})
	if err != nil {
		return err
	}
	js, err := json.Marshal(event.Event{EventID: id, TargetName: event.TargetName(project, deviceID), EventType: typ, Data: data, Timestamp: now})
	if err != nil {
		return err
	}
	return db.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		return db.CreateEvent(tx, id, store.Event{ProjectID: project, DeviceID: deviceID, EventType: typ, Timestamp: now,
			JSON: js, ExpireAt: now.Add(24 * time.Hour)})
	})
}

// device registers a device as the registry does (the fields the stream
// reads).
func (e *env) device(id, typ string, labels map[string]string) {
	e.t.Helper()
	_, err := e.fs.Collection("devices").Doc(id).Set(context.Background(), map[string]any{
		"projectId": e.project, "type": typ, "labels": labels,
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// testCaller is the API's caller: its access can be revoked.
type testCaller struct {
	mu  sync.Mutex
	err error
}

func (c *testCaller) Check(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *testCaller) revoke(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err = err
}

type testAudit struct {
	mu   sync.Mutex
	recs []stream.AuditRecord
}

func (a *testAudit) AuditStream(_ context.Context, rec stream.AuditRecord) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.recs = append(a.recs, rec)
}

// closes returns the close records so far.
func (a *testAudit) closes() []stream.AuditRecord {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []stream.AuditRecord
	for _, r := range a.recs {
		if r.Action == "stream.close" {
			out = append(out, r)
		}
	}
	return out
}

// frame is one frame a client read.
type frame struct {
	id    string          // SSE id: line
	event json.RawMessage // result.event, exactly as sent
	ev    struct {
		EventID    string          `json:"eventId"`
		TargetName string          `json:"targetName"`
		EventType  string          `json:"eventType"`
		Data       json.RawMessage `json:"data"`
		Timestamp  string          `json:"timestamp"`
	}
	err *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
}

// client is one streaming request being read.
type client struct {
	t      *testing.T
	resp   *http.Response
	frames chan frame
	cancel context.CancelFunc
	done   chan error // the reader's end: nil at EOF
	sse    bool
}

type openOpts struct {
	accept     string // default application/json
	query      string
	lastID     string
	viaHeader  bool // send lastID as Last-Event-ID instead of last_event_id
	project    string
	httpClient *http.Client
	noRead     bool // do not read until read is called: a stuck client
}

// open starts a stream request. A non-200 answer is returned with its body
// unread and no reader.
func (e *env) open(o openOpts) *client {
	e.t.Helper()
	if o.accept == "" {
		o.accept = "application/json"
	}
	if o.project == "" {
		o.project = e.project
	}
	q, err := url.ParseQuery(o.query)
	if err != nil {
		e.t.Fatal(err)
	}
	if o.lastID != "" && !o.viaHeader {
		q.Set("last_event_id", o.lastID)
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", e.http.URL+"/v2/projects/"+o.project+"/devices:stream?"+q.Encode(), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Accept", o.accept)
	if o.lastID != "" && o.viaHeader {
		req.Header.Set("Last-Event-ID", o.lastID)
	}
	hc := o.httpClient
	if hc == nil {
		hc = e.http.Client()
	}
	resp, err := hc.Do(req)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	c := &client{t: e.t, resp: resp, frames: make(chan frame, 10000), cancel: cancel, done: make(chan error, 1),
		sse: strings.HasPrefix(o.accept, "text/event-stream")}
	e.t.Cleanup(c.kill)
	if resp.StatusCode == http.StatusOK && !o.noRead {
		c.read()
	}
	return c
}

// read starts reading the stream's frames.
func (c *client) read() {
	go func() {
		defer close(c.frames)
		c.done <- read(c.resp.Body, c.sse, c.frames)
	}()
}

// kill drops the connection, as a network cut would.
func (c *client) kill() {
	c.cancel()
	c.resp.Body.Close()
}

// read parses NDJSON lines or SSE events into frames, strictly.
func read(r io.Reader, sse bool, out chan<- frame) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var id string
	var data []string
	for sc.Scan() {
		line := sc.Text()
		if !sse {
			f, err := parseFrame([]byte(line))
			if err != nil {
				return err
			}
			out <- f
			continue
		}
		switch {
		case line == "":
			if len(data) == 0 {
				continue
			}
			f, err := parseFrame([]byte(strings.Join(data, "\n")))
			if err != nil {
				return err
			}
			f.id = id
			out <- f
			id, data = "", nil
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: "))
		default:
			return fmt.Errorf("unexpected SSE line %q", line)
		}
	}
	if sse && len(data) > 0 {
		return errors.New("SSE event not terminated by a blank line")
	}
	return sc.Err()
}

func parseFrame(b []byte) (frame, error) {
	var f frame
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return f, fmt.Errorf("frame %q: %w", b, err)
	}
	if len(top) != 1 {
		return f, fmt.Errorf("frame %q: want exactly one of result and error", b)
	}
	if raw, ok := top["error"]; ok {
		return f, json.Unmarshal(raw, &f.err)
	}
	var res map[string]json.RawMessage
	if err := json.Unmarshal(top["result"], &res); err != nil || len(res) != 1 || res["event"] == nil {
		return f, fmt.Errorf("frame %q: want {\"result\":{\"event\":...}}", b)
	}
	f.event = res["event"]
	return f, json.Unmarshal(f.event, &f.ev)
}

// next returns the next frame, failing the test after wait.
func (c *client) next(wait time.Duration) frame {
	c.t.Helper()
	select {
	case f, ok := <-c.frames:
		if !ok {
			c.t.Fatalf("stream ended: %v", <-c.done)
		}
		return f
	case <-time.After(wait):
		c.t.Fatalf("no frame within %v", wait)
	}
	return frame{}
}

// events reads until it has n non-ping events, returning them and the
// last resume id seen (of an event or a ping).
func (c *client) events(n int, wait time.Duration) ([]frame, string) {
	c.t.Helper()
	var out []frame
	last := ""
	deadline := time.Now().Add(wait)
	for len(out) < n {
		f := c.next(time.Until(deadline))
		if f.err != nil {
			c.t.Fatalf("error frame %+v after %d events", *f.err, len(out))
		}
		last = f.ev.EventID
		if f.ev.EventType != "ping" {
			out = append(out, f)
		}
	}
	return out, last
}

// quiet fails if an event (not a ping) is waiting or arrives within d.
func (c *client) quiet(d time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		var timeout <-chan time.Time
		if wait := time.Until(deadline); wait > 0 {
			timeout = time.After(wait)
		}
		select {
		case f, ok := <-c.frames:
			if !ok {
				return
			}
			if f.err != nil || f.ev.EventType != "ping" {
				c.t.Fatalf("unexpected frame: event %s error %+v", f.event, f.err)
			}
			continue
		default:
		}
		if timeout == nil {
			return
		}
		select {
		case f, ok := <-c.frames:
			if !ok {
				return
			}
			if f.err != nil || f.ev.EventType != "ping" {
				c.t.Fatalf("unexpected frame: event %s error %+v", f.event, f.err)
			}
		case <-timeout:
			return
		}
	}
}

// errorFrame reads until an error frame and the end of the stream.
func (c *client) errorFrame(wait time.Duration) (code int, msg string, pings []frame) {
	c.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		f := c.next(time.Until(deadline))
		if f.err != nil {
			select {
			case _, ok := <-c.frames:
				if ok {
					c.t.Fatal("a frame after the error frame")
				}
			case <-time.After(time.Until(deadline)):
				c.t.Fatal("the stream stayed open after its error frame")
			}
			return f.err.Code, f.err.Message, pings
		}
		if f.ev.EventType == "ping" {
			pings = append(pings, f)
		}
	}
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSpace(b))
}
