package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/sealedsense/sealedsense/functions/api/stream/cursor"
	"github.com/sealedsense/sealedsense/functions/api/stream/param"
	"github.com/sealedsense/sealedsense/shared/event"
)

// Stream is an accepted stream request holding a slot: Serve it, or Close
// it to give the slot back.
type Stream struct {
	s       *Server
	project string
	format  param.Format
	params  param.Params
	start   cursor.Position // zero: live from now
	resumed bool
	done    atomic.Bool
}

// Open checks a stream request and takes a slot for it, writing nothing,
// so that the API can answer a refusal as it answers others (WriteError
// does it DT's way). The errors are *Error values wrapping
// ErrNotAcceptable (406), ErrBadRequest (400), ErrResumeGone (410),
// ErrTooManyStreams (429, with RetryAfter) or ErrUnavailable (503). The
// resume id is the Last-Event-ID header or else the last_event_id
// parameter. Authorization is the API's, before Open.
func (s *Server) Open(ctx context.Context, r *http.Request, project string) (*Stream, error) {
	format, err := param.Negotiate(r.Header.Get("Accept"))
	if err != nil {
		return nil, newError(ErrNotAcceptable, http.StatusNotAcceptable,
			"the stream answers Accept: application/json (newline-delimited JSON) or text/event-stream (SSE)")
	}
	p, err := param.Parse(r.URL.Query())
	if err != nil {
		return nil, newError(ErrBadRequest, http.StatusBadRequest, publicParamError(err))
	}
	st := &Stream{s: s, project: project, format: format, params: p}
	raw := r.Header.Get("Last-Event-ID")
	if raw == "" {
		raw = p.LastEventID
	}
	// The slot first: a client retrying past a cap costs no resume read.
	if err := s.reserve(project); err != nil {
		return nil, err
	}
	if raw != "" {
		if st.start, err = s.resumePosition(ctx, project, raw); err != nil {
			s.unreserve(project)
			return nil, err
		}
		st.resumed = true
	}
	return st, nil
}

// publicParamError is the message of a parameter refusal without the
// package prefix.
func publicParamError(err error) string {
	msg := err.Error()
	const prefix = "param: invalid: "
	if len(msg) > len(prefix) && msg[:len(prefix)] == prefix {
		return msg[len(prefix):]
	}
	return "invalid stream parameters"
}

// Close gives the slot back without serving. It is safe after Serve.
func (st *Stream) Close() {
	if st.done.CompareAndSwap(false, true) {
		st.s.unreserve(st.project)
	}
}

// Handle is Open, WriteError on a refusal, then Serve: the whole request
// for an API that needs nothing between them.
func (s *Server) Handle(ctx context.Context, w http.ResponseWriter, r *http.Request, project string, caller Caller) {
	st, err := s.Open(ctx, r, project)
	if err != nil {
		WriteError(w, err)
		return
	}
	st.Serve(ctx, w, caller)
}

// Serve writes the stream until the client leaves, the caller's access
// ends, the client falls too far behind, MaxDuration passes or the server
// closes; each but the first ends with an error frame. ctx should be the
// request's. It returns why the stream ended (one of the Reason values).
// w must be the server's ResponseWriter or wrap it with an Unwrap method,
// for write deadlines and flushes.
func (st *Stream) Serve(ctx context.Context, w http.ResponseWriter, caller Caller) string {
	defer st.Close()
	s := st.s
	opened := time.Now()
	rec := AuditRecord{Project: st.project, Caller: caller, Format: st.format.String(),
		Filters: st.params.Filter.String(), Resumed: st.resumed}
	st.audit(ctx, "stream.open", rec)
	s.log.Info("stream opened", "project", st.project, "format", rec.Format, "filters", rec.Filters, "resumed", st.resumed)

	h := w.Header()
	if st.format == param.SSE {
		h.Set("Content-Type", "text/event-stream")
	} else {
		h.Set("Content-Type", "application/json")
	}
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // proxies must not hold frames back
	w.WriteHeader(http.StatusOK)
	out := &writer{w: w, rc: http.NewResponseController(w), format: st.format, timeout: s.cfg.WriteTimeout}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &run{st: st, out: out, caller: caller, revoked: make(chan error, 1),
		maxTimer: time.NewTimer(s.cfg.MaxDuration)}
	defer r.maxTimer.Stop()
	reason := ReasonWriteFailed
	if err := out.flush(); err == nil {
		go r.check(ctx)
		reason = r.loop(ctx)
	}
	rec.Reason, rec.Events, rec.Duration = reason, r.events, time.Since(opened)
	st.audit(ctx, "stream.close", rec)
	s.log.Info("stream closed", "project", st.project, "reason", reason, "events", r.events,
		"seconds", int64(rec.Duration/time.Second))
	return reason
}

func (st *Stream) audit(ctx context.Context, action string, rec AuditRecord) {
	if st.s.deps.Audit == nil {
		return
	}
	rec.Action = action
	// The close is recorded even when the client has gone.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	st.s.deps.Audit.AuditStream(ctx, rec)
}

// run is one stream being served.
type run struct {
	st       *Stream
	out      *writer
	caller   Caller
	revoked  chan error
	maxTimer *time.Timer
	written  cursor.Position // every event at or before it was written or did not match
	events   int64
	lastPing time.Time
}

// check re-checks the caller's access until ctx ends or it is refused.
func (r *run) check(ctx context.Context) {
	t := time.NewTicker(r.st.s.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := r.caller.Check(cctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			r.revoked <- err
			return
		}
	}
}

// interrupted says whether the stream must end now and how, without
// waiting.
func (r *run) interrupted(ctx context.Context) string {
	select {
	case <-ctx.Done():
		return ReasonClientGone
	case err := <-r.revoked:
		return r.revoke(err)
	case <-r.maxTimer.C:
		return r.maxDuration()
	case <-r.st.s.ctx.Done():
		return r.shutdown()
	default:
		return ""
	}
}

func (r *run) revoke(err error) string {
	code, msg := http.StatusForbidden, "access to the project was revoked"
	var e *Error
	if errors.As(err, &e) {
		code, msg = e.Code, e.Message
	}
	r.st.s.log.Info("stream access revoked", "project", r.st.project, "code", code)
	r.out.final(errorFrame(code, msg))
	return ReasonRevoked
}

func (r *run) maxDuration() string {
	// A ping first, so that even a client that has seen no event since it
	// connected holds an exact resume id.
	_ = r.ping(nil)
	r.out.final(errorFrame(http.StatusServiceUnavailable, fmt.Sprintf(
		"the stream reached its maximum duration of %v; reconnect with the last eventId received as Last-Event-ID or last_event_id to continue without a gap",
		r.st.s.cfg.MaxDuration)))
	return ReasonMaxDuration
}

func (r *run) shutdown() string {
	r.out.final(errorFrame(http.StatusServiceUnavailable,
		"the server is shutting down; reconnect with the last eventId received as Last-Event-ID or last_event_id"))
	return ReasonShutdown
}

func (r *run) failed(err error) string {
	r.st.s.log.Error("stream failed", "project", r.st.project, "error", err.Error())
	r.out.final(errorFrame(http.StatusServiceUnavailable,
		"the stream failed; reconnect with the last eventId received as Last-Event-ID or last_event_id"))
	return ReasonError
}

// loop catches up if the stream resumes, attaches to the project's feed
// and writes what it hands over.
func (r *run) loop(ctx context.Context) string {
	s := r.st.s
	f := s.acquire(r.st.project)
	if f == nil {
		return r.shutdown()
	}
	defer s.release(f)
	sb := &sub{ch: make(chan *item, s.cfg.Buffer), dropped: make(chan struct{}), filter: r.st.params.Filter}
	defer f.detach(sb)

	var pingC <-chan time.Time
	if iv := r.st.params.PingInterval; iv > 0 {
		t := time.NewTicker(iv)
		defer t.Stop()
		pingC = t.C
	}
	r.lastPing = time.Now()
	r.written = r.st.start
	for {
		ok, upTo := f.attach(sb, r.written)
		if ok {
			r.written = upTo
			break
		}
		if reason := r.catchUp(ctx, upTo); reason != "" {
			return reason
		}
	}
	for {
		select {
		case it := <-sb.ch:
			if reason := r.drain(ctx, sb, it); reason != "" {
				return reason
			}
		case <-sb.dropped:
			r.out.final(errorFrame(http.StatusTooManyRequests, fmt.Sprintf(
				"the client fell more than %d events behind and was disconnected; reconnect with the last eventId received as Last-Event-ID or last_event_id to resume",
				s.cfg.Buffer)))
			return ReasonTooSlow
		case <-pingC:
			if err := r.ping(f.token(sb, r.written).Token); err != nil {
				return ReasonWriteFailed
			}
		case err := <-r.revoked:
			return r.revoke(err)
		case <-r.maxTimer.C:
			return r.maxDuration()
		case <-ctx.Done():
			return ReasonClientGone
		case <-s.ctx.Done():
			return r.shutdown()
		}
	}
}

// drain writes it and whatever else is already waiting, then flushes
// once: one flush per burst, not per event.
func (r *run) drain(ctx context.Context, sb *sub, it *item) string {
	for n := 1; ; n++ {
		if err := r.emit(ctx, it); err != nil {
			return r.failed(err)
		}
		if r.out.err != nil {
			return ReasonWriteFailed
		}
		more := false
		if n < 64 {
			select {
			case it = <-sb.ch:
				more = true
			default:
			}
		}
		if !more {
			break
		}
	}
	if err := r.out.flush(); err != nil {
		return ReasonWriteFailed
	}
	return ""
}

// emit writes it if it matches the stream's filter.
func (r *run) emit(ctx context.Context, it *item) error {
	fl := r.st.params.Filter
	ok := fl.MatchEvent(it.deviceID, it.eventType)
	if ok && fl.NeedsDevice() {
		if it.dev.Load() == nil {
			if err := r.st.s.resolve(ctx, r.st.project, []*item{it}); err != nil {
				return err
			}
		}
		d := it.dev.Load()
		ok = fl.MatchDevice(d.typ, d.labels)
	}
	if ok {
		r.out.event(it)
		r.events++
	}
	r.written = it.pos
	return nil
}

// catchUp reads from Firestore, a page at a time, what the client missed
// up to upTo, and writes it.
func (r *run) catchUp(ctx context.Context, upTo cursor.Position) string {
	s := r.st.s
	for r.written.Compare(upTo) < 0 {
		if reason := r.interrupted(ctx); reason != "" {
			return reason
		}
		items, err := s.page(ctx, r.st.project, r.written, upTo, s.cfg.PageSize)
		if err != nil {
			if ctx.Err() != nil {
				return ReasonClientGone
			}
			return r.failed(err)
		}
		if r.st.params.Filter.NeedsDevice() {
			if err := s.resolve(ctx, r.st.project, items); err != nil {
				return r.failed(err)
			}
		}
		for _, it := range items {
			if err := r.emit(ctx, it); err != nil {
				return r.failed(err)
			}
		}
		if len(items) < s.cfg.PageSize {
			r.written = upTo // the page held everything up to upTo
		}
		if iv := r.st.params.PingInterval; iv > 0 && time.Since(r.lastPing) >= iv {
			pos := r.written
			_ = r.ping(pos.Token)
		}
		if err := r.out.flush(); err != nil || r.out.err != nil {
			return ReasonWriteFailed
		}
	}
	return ""
}

// ping writes a DT ping event whose eventId is the stream's position, so
// a client resuming from it misses nothing. A nil token uses r.written.
func (r *run) ping(token func() string) error {
	if token == nil {
		token = r.written.Token
	}
	r.lastPing = time.Now()
	r.out.ping(token(), r.st.project, r.st.s.deps.Now())
	if r.out.err != nil {
		return r.out.err
	}
	return r.out.flush()
}

// writer frames and writes, with a deadline on every write, so a client
// that stops reading holds a goroutine for at most WriteTimeout and never
// more memory than its buffer.
type writer struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	format  param.Format
	timeout time.Duration
	buf     []byte
	err     error // the first write error; later writes do nothing
}

func (o *writer) write(b []byte) {
	if o.err != nil {
		return
	}
	if err := o.rc.SetWriteDeadline(time.Now().Add(o.timeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		o.err = err
		return
	}
	_, o.err = o.w.Write(b)
}

func (o *writer) flush() error {
	if o.err != nil {
		return o.err
	}
	if err := o.rc.SetWriteDeadline(time.Now().Add(o.timeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		o.err = err
		return err
	}
	if err := o.rc.Flush(); err != nil {
		o.err = err
	}
	return o.err
}

// frame writes one frame: for SSE with its id: line (if any) and data:,
// for NDJSON as one line.
func (o *writer) frame(id, prefix string, body []byte, suffix string) {
	b := o.buf[:0]
	if o.format == param.SSE {
		if id != "" {
			b = append(b, "id: "...)
			b = append(b, id...)
			b = append(b, '\n')
		}
		b = append(b, "data: "...)
	}
	b = append(b, prefix...)
	b = append(b, body...)
	b = append(b, suffix...)
	if o.format == param.SSE {
		b = append(b, '\n', '\n')
	} else {
		b = append(b, '\n')
	}
	o.write(b)
	if cap(b) <= 64<<10 {
		o.buf = b // keep a modest buffer for the next frame, not a huge one
	}
}

// The result frame around an event: {"result": {"event": ...}}.
const (
	resultOpen  = `{"result":{"event":`
	resultClose = `}}`
)

// event writes {"result": {"event": <stored JSON>}}. Ingest stores
// compact JSON; any other is compacted, since a JSON string cannot hold a
// raw line break, so that no event breaks a line or an SSE data: field,
// and none is left out.
func (o *writer) event(it *item) {
	js := it.json
	if bytes.ContainsAny(js, "\r\n") {
		var b bytes.Buffer
		if json.Compact(&b, js) == nil {
			js = b.Bytes()
		}
	}
	o.frame(it.pos.ID, resultOpen, js, resultClose)
}

// pingEvent is DT's keepalive: an event of type ping with data null.
type pingEvent struct {
	EventID    string          `json:"eventId"`
	TargetName string          `json:"targetName"`
	EventType  string          `json:"eventType"`
	Data       json.RawMessage `json:"data"`
	Timestamp  string          `json:"timestamp"`
}

// ping writes a ping whose eventId is token.
func (o *writer) ping(token, project string, now time.Time) {
	js, err := json.Marshal(pingEvent{EventID: token, TargetName: "projects/" + project, EventType: "ping",
		Data: json.RawMessage("null"), Timestamp: now.UTC().Format(event.TimeFormat)})
	if err != nil {
		o.err = err
		return
	}
	o.frame(token, resultOpen, js, resultClose)
}

// final writes a last frame and flushes it, ignoring errors: the stream
// ends either way.
func (o *writer) final(frame []byte) {
	o.frame("", "", frame, "")
	_ = o.flush()
}
