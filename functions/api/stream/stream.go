// Package stream serves a project's events as they are stored, to API
// clients of devices:stream, as NDJSON or SSE, with DT's filters and
// pings, gapless resume after a reconnect, and memory bounded per
// connection. The API (functions/api) wires it behind its authentication
// and routes. It reads events and devices through the data model
// (shared/store), which declares the indexes its queries need.
//
// # Order and resume
//
// Ingest writes each event document with storedAt, a Firestore server
// timestamp. A project's events are ordered by (storedAt, document id),
// and a position in that order (package cursor) is what "after this id"
// means, on every instance alike.
//
// A server timestamp is taken when the commit is processed, so an event
// may become visible slightly after a later read: on the Firestore
// emulator (1.19.9, 96 concurrent writers) an event appeared up to 17 ms
// after a query whose read time was already past its storedAt. So an
// event counts only once it has settled: once the query that returns it
// started at least SettleLag (default 500 ms) after its storedAt. Every
// query reads "after position p, in order", and the position then
// advances to the last settled event or, when the query ran dry, to
// "everything before start-SettleLag". Nothing at or before a position is
// ever read again, and nothing after it is skipped, as long as SettleLag
// covers the commit delay plus the clock skew between this instance and
// Firestore. The price is SettleLag of latency. Firestore itself shows a
// read every commit with an earlier timestamp; the emulator on a loaded
// 2-core machine took longer than 500 ms, so local runs settle for 2 s
// (SEALEDSENSE_STREAM_SETTLE_AFTER).
//
// # Live source
//
// Each instance runs one feed per project with open streams, shared by
// all of them, however many. A feed polls the order from its position. It
// polls when a Firestore listener on the project's newest event rings,
// which costs one document read per event and keeps no result set; when
// the settle lag of an event it has seen expires; and every PollInterval,
// in case the listener is down. The feed fans each settled event out to
// its streams, keeps the last RingSize in memory for streams that attach
// late, and stops FeedIdle after its last stream leaves.
//
// A stream with a resume id first reads what it missed from Firestore, a
// page at a time at the client's pace, up to the feed's position, and
// then attaches to the feed at exactly that position, so there is no gap
// and no duplicate at the seam.
//
// # Resume ids
//
// The resume id is the eventId of the last frame a client received: an
// event's own DT eventId (looked up to learn its position), or a ping's
// eventId, which is an opaque position token, so a stream that only saw
// pings also resumes exactly. SSE frames carry it as the id: field, so a
// browser's EventSource resumes by itself with Last-Event-ID; NDJSON
// clients send it as the last_event_id parameter. NDJSON frames stay
// exactly DT's: the id is already inside the event. An id older than
// ResumeWindow (default 1 h, which must stay below ingest's retention) or
// unknown to the project is refused with 410; an id that does not parse,
// with 400. Never a silent gap.
//
// # Limits
//
// Each stream buffers at most Buffer events; a stream that falls further
// behind gets a 429 error frame and is closed, and its client resumes. A
// write that the client does not take within WriteTimeout ends the
// stream. Streams are capped per instance and per project (429 with
// Retry-After), and each ends with a 503 error frame after MaxDuration,
// below Cloud Run's 60-minute request limit, for the client to resume.
// The caller's access is re-checked every CheckInterval.
package stream

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/expiring"
	"github.com/sealedsense/sealedsense/shared/store"
)

// Config tunes the streams. Zero values take the defaults.
type Config struct {
	// MaxStreams caps the open streams of this instance (default 1000).
	MaxStreams int
	// MaxStreamsPerProject caps one project's open streams on this
	// instance (default 100).
	MaxStreamsPerProject int
	// RetryAfter is what a refusal at a cap suggests (default 5s).
	RetryAfter time.Duration
	// Buffer is how many events a stream may fall behind before it is
	// closed as too slow (default 256).
	Buffer int
	// WriteTimeout bounds each write to a client (default 10s).
	WriteTimeout time.Duration
	// MaxDuration ends a stream cleanly before the platform's request
	// timeout (default 55m; Cloud Run's is at most 60m).
	MaxDuration time.Duration
	// ResumeWindow is how far back a resume id may reach (default 1h). It
	// must stay below the events' retention.
	ResumeWindow time.Duration
	// CheckInterval is how often the caller's access is re-checked
	// (default 5s): a revoked key or role ends the stream within it.
	CheckInterval time.Duration
	// SettleLag is how long after its storedAt an event is emitted (see
	// the package comment; default 500ms).
	SettleLag time.Duration
	// PollInterval is how often a feed polls when its listener is quiet
	// (default 5s).
	PollInterval time.Duration
	// PageSize bounds one Firestore read, of a feed or of a catch-up
	// (default 100, and at most Buffer).
	PageSize int
	// RingSize is how many recent events a feed keeps for streams that
	// attach after a catch-up (default 1024).
	RingSize int
	// FeedIdle is how long a feed outlives its last stream, so that
	// reconnecting clients find it warm (default 30s).
	FeedIdle time.Duration
	// DeviceTTL bounds how stale the device types and labels used by
	// device_types and label_filters may be (default 30s).
	DeviceTTL time.Duration
}

func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defInt(&c.MaxStreams, 1000)
	defInt(&c.MaxStreamsPerProject, 100)
	defInt(&c.Buffer, 256)
	defInt(&c.PageSize, 100)
	defInt(&c.RingSize, 1024)
	// A feed hands out a page at once, so a buffer smaller than a page
	// would drop a client that keeps up perfectly well.
	c.PageSize = min(c.PageSize, c.Buffer)
	def(&c.RetryAfter, 5*time.Second)
	def(&c.WriteTimeout, 10*time.Second)
	def(&c.MaxDuration, 55*time.Minute)
	def(&c.ResumeWindow, time.Hour)
	def(&c.CheckInterval, 5*time.Second)
	def(&c.SettleLag, 500*time.Millisecond)
	def(&c.PollInterval, 5*time.Second)
	def(&c.FeedIdle, 30*time.Second)
	def(&c.DeviceTTL, 30*time.Second)
	return c
}

// Deps are the stream server's collaborators.
type Deps struct {
	Firestore *firestore.Client
	Logger    *slog.Logger
	// Now is the clock for positions and ping times (default time.Now).
	// Deadlines and timers use the real clock.
	Now func() time.Time
	// Audit, if set, records every stream's open and close.
	Audit Auditor
}

// Caller is the authenticated client of one stream, as the API knows it.
type Caller interface {
	// Check says whether the caller may still read the project; it is
	// called every CheckInterval. A non-nil error ends the stream with an
	// error frame: an *Error's Code and Message, or else 403. Return nil
	// on a transient failure to keep the stream open.
	Check(ctx context.Context) error
}

// Auditor records streams opening and closing.
type Auditor interface {
	AuditStream(ctx context.Context, rec AuditRecord)
}

// AuditRecord is one audit entry. It names what was asked, never event
// data.
type AuditRecord struct {
	Action  string // "stream.open" or "stream.close"
	Project string
	Caller  Caller
	Format  string // "ndjson" or "sse"
	Filters string // canonical filters, e.g. "device_ids=a,b event_types=touch"
	Resumed bool   // the client sent a resume id
	// On close only:
	Reason   string // client-gone, max-duration, too-slow, revoked, write-failed, shutdown, error
	Events   int64  // event frames sent
	Duration time.Duration
}

// Close reasons.
const (
	ReasonClientGone  = "client-gone"
	ReasonMaxDuration = "max-duration"
	ReasonTooSlow     = "too-slow"
	ReasonRevoked     = "revoked"
	ReasonWriteFailed = "write-failed"
	ReasonShutdown    = "shutdown"
	ReasonError       = "error"
)

// Errors that Open returns, each inside an *Error that says the HTTP
// status; test with errors.Is.
var (
	ErrTooManyStreams = errors.New("stream: too many streams")
	ErrNotAcceptable  = errors.New("stream: not acceptable")
	ErrBadRequest     = errors.New("stream: bad request")
	ErrResumeGone     = errors.New("stream: cannot resume from that id")
	ErrUnavailable    = errors.New("stream: unavailable")
)

// Error is a refusal with its HTTP status and a message safe to show the
// client.
type Error struct {
	Code       int
	Message    string
	RetryAfter time.Duration // for 429 and 503
	kind       error
}

func (e *Error) Error() string { return e.Message }

// Unwrap gives the sentinel, for errors.Is.
func (e *Error) Unwrap() error { return e.kind }

func newError(kind error, code int, msg string) *Error {
	return &Error{Code: code, Message: msg, kind: kind}
}

// errorFrame is DT's error frame: {"error": {"code", "message"}}.
func errorFrame(code int, msg string) []byte {
	b, _ := json.Marshal(struct {
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}{Error: struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{code, msg}})
	return b
}

// WriteError answers a request that Open refused, before any stream
// starts: the status, Retry-After when there is one, and DT's error frame
// as a JSON body. An error that is not an *Error answers 500 without
// detail.
func WriteError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Code: http.StatusInternalServerError, Message: "internal error"}
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(e.Code)
	_, _ = w.Write(append(errorFrame(e.Code, e.Message), '\n'))
}

// Server serves streams for any number of projects on one instance.
type Server struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	ctx    context.Context // the server's lifetime: ends feeds and streams
	cancel context.CancelFunc
	feedWG sync.WaitGroup

	mu         sync.Mutex
	feeds      map[string]*feed
	open       int
	perProject map[string]int

	src     source
	devices *expiring.Cache[string, *device] // by project/device id

	delivered, dropped, polls atomic.Int64
}

// New makes a stream server. Close stops it.
func New(cfg Config, deps Deps) (*Server, error) {
	if deps.Firestore == nil {
		return nil, errors.New("stream: a Firestore client is required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg: cfg, deps: deps, log: deps.Logger,
		ctx: ctx, cancel: cancel,
		feeds: map[string]*feed{}, perProject: map[string]int{},
		src:     store.New(deps.Firestore),
		devices: expiring.New[string, *device](maxCachedDevices, cfg.DeviceTTL, nil),
	}, nil
}

// Close ends every open stream with a 503 frame, for its client to
// resume elsewhere, and stops the feeds.
func (s *Server) Close() {
	s.cancel()
	s.feedWG.Wait()
}

// Stats are counters for tests, load runs and metrics.
type Stats struct {
	Streams   int   // open streams
	Feeds     int   // running feeds
	Delivered int64 // events handed to streams' buffers
	Dropped   int64 // streams closed as too slow
	Polls     int64 // feed queries
}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Streams: s.open, Feeds: len(s.feeds), Delivered: s.delivered.Load(), Dropped: s.dropped.Load(), Polls: s.polls.Load()}
}

// reserve takes a stream slot, or says why not.
func (s *Server) reserve(project string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		e := newError(ErrUnavailable, http.StatusServiceUnavailable, "the server is shutting down; retry")
		e.RetryAfter = s.cfg.RetryAfter
		return e
	}
	var msg string
	switch {
	case s.open >= s.cfg.MaxStreams:
		msg = "this server has as many streams open as it takes; retry later"
	case s.perProject[project] >= s.cfg.MaxStreamsPerProject:
		msg = "the project has as many streams open as it may; close one or retry later"
	default:
		s.open++
		s.perProject[project]++
		return nil
	}
	e := newError(ErrTooManyStreams, http.StatusTooManyRequests, msg)
	e.RetryAfter = s.cfg.RetryAfter
	return e
}

func (s *Server) unreserve(project string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open--
	if s.perProject[project]--; s.perProject[project] <= 0 {
		delete(s.perProject, project)
	}
}
