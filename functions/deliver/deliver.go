// Package deliver is the function that sends each stored event to the
// project's Data Connectors as signed HTTPS POSTs. Every (event, connector)
// pair is a Firestore outbox document with its own retries, so one failing
// or slow endpoint never holds up another.
package deliver

import (
	"context"
	"crypto/ecdsa"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/dataconnector"
	"github.com/sealedsense/sealedsense/shared/expiring"
	"github.com/sealedsense/sealedsense/shared/store"
	"github.com/sealedsense/sealedsense/shared/token"
)

// Config tunes delivery. Zero values take the defaults.
type Config struct {
	// Issuer is the API's base URL: the iss of the ES256 signature header
	// and of the key certificates the API's JWKS checks.
	Issuer string
	// Timeout bounds one attempt, from dial to response headers (10s).
	Timeout time.Duration
	// MaxAge stops the retries of a pair this long after it was queued
	// (12h, as DT keeps events for retry).
	MaxAge time.Duration
	// BackoffBase and BackoffMax shape the retry schedule (30s and 30m).
	// In GCP the sweep runs each minute, so shorter waits round up to it.
	BackoffBase, BackoffMax time.Duration
	// DisableAfter is how long a connector may go without a success,
	// while failing, before the system disables it (5 days, as DT).
	DisableAfter time.Duration
	// Lease is how long an attempt owns its pair; a pair whose attempt
	// died (the instance stopped) is due again after it (Timeout + 20s).
	Lease time.Duration
	// PerConnector bounds one instance's attempts in flight to one
	// connector (8), so a slow endpoint only ever uses its own slots.
	PerConnector int
	// CacheTTL bounds how stale an instance's copy of a connector or a
	// device may be (5s): an edit or a disable takes effect within it.
	CacheTTL time.Duration
	// SweepBatch bounds the due pairs one sweep claims (1000); JobPage the
	// events or devices one sweep takes from each backfill or sync (500).
	SweepBatch, JobPage int
	// KeyLife is the life of an instance's ES256 key certificate (24h).
	KeyLife time.Duration
	// KeyPublishDelay is how long a new key is published before it signs
	// (2s), longer than the API caches its JWKS.
	KeyPublishDelay time.Duration
	// Retention is how long delivery records and metrics are kept (3 days).
	Retention time.Duration
	// MaxResponse bounds how much of a response body is read (4 KiB).
	MaxResponse int64
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Timeout, 10*time.Second)
	def(&c.MaxAge, 12*time.Hour)
	def(&c.BackoffBase, 30*time.Second)
	def(&c.BackoffMax, 30*time.Minute)
	def(&c.DisableAfter, 5*24*time.Hour)
	def(&c.Lease, c.Timeout+20*time.Second)
	def(&c.CacheTTL, 5*time.Second)
	def(&c.KeyLife, 24*time.Hour)
	def(&c.KeyPublishDelay, 2*time.Second)
	def(&c.Retention, 72*time.Hour)
	if c.PerConnector <= 0 {
		c.PerConnector = 8
	}
	if c.SweepBatch <= 0 {
		c.SweepBatch = 1000
	}
	if c.JobPage <= 0 {
		c.JobPage = 500
	}
	if c.MaxResponse <= 0 {
		c.MaxResponse = 4 << 10
	}
	return c
}

// Unwrapper opens a connector's KMS-wrapped signatureSecret;
// *custody.Cache is one, so a secret costs one KMS call per instance.
type Unwrapper interface {
	Unwrap(ctx context.Context, ciphertext, aad []byte) (custody.Secret, error)
}

// Certifier certifies an instance's ES256 public key with one KMS call;
// *token.Signer is one.
type Certifier interface {
	Certify(ctx context.Context, issuer string, key token.JWK, now time.Time, life time.Duration) (string, error)
}

// Deps are the Service's clients.
type Deps struct {
	Firestore *firestore.Client
	Secrets   Unwrapper
	Certifier Certifier
	// Client sends the requests. It must refuse internal addresses and
	// follow no redirects (egress.Dialer.Client); its CheckURL is Check.
	Client *http.Client
	Check  func(raw string) error
	Logger *slog.Logger
	Now    func() time.Time
}

// Service delivers events.
type Service struct {
	cfg   Config
	deps  Deps
	db    *store.DB
	log   *slog.Logger
	shard int // this instance's metrics shard

	mu    sync.Mutex
	rnd   *rand.Rand
	lanes map[string]*lane // connector → its attempts
	// healthBusy marks connectors whose health is being written.
	healthBusy map[string]bool

	// An instance's copies of connectors (by project) and devices, at
	// most CacheTTL old: an edit or a disable takes effect within it.
	conns   *expiring.Cache[string, []connector]
	devices *expiring.Cache[string, store.Device]

	keyMu sync.Mutex
	key   *instanceKey // signs
	next  *instanceKey // published, signs from its usableFrom

	inflight sync.WaitGroup

	metricMu    sync.Mutex
	metrics     map[metricKey]*metricDelta // counted, not yet written
	metricCount int
	flushed     time.Time
}

type instanceKey struct {
	priv       *ecdsa.PrivateKey
	kid        string
	notAfter   time.Time
	usableFrom time.Time
}

// New returns a Service.
func New(cfg Config, deps Deps) *Service {
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	cfg = cfg.withDefaults()
	r := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	return &Service{cfg: cfg, deps: deps, db: store.New(deps.Firestore), log: deps.Logger,
		shard: r.IntN(dataconnector.MetricShards), rnd: r, lanes: map[string]*lane{}, healthBusy: map[string]bool{}, metrics: map[metricKey]*metricDelta{},
		conns:   expiring.New[string, []connector](cacheSize, cfg.CacheTTL, deps.Now),
		devices: expiring.New[string, store.Device](cacheSize, cfg.CacheTTL, deps.Now)}
}

// cacheSize bounds each cache: a cold refill costs a read per project or
// device.
const cacheSize = 10000

// Wait blocks until the attempts started so far, and those queued in
// memory, have finished and their metrics are written: for a clean
// shutdown and for tests.
func (s *Service) Wait() {
	s.inflight.Wait()
	if err := s.flushMetrics(context.Background()); err != nil {
		s.log.Error("delivery metrics not written", "error", err.Error())
	}
}

func (s *Service) backoff(n int) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return dataconnector.Backoff(n, s.cfg.BackoffBase, s.cfg.BackoffMax, s.rnd)
}

// lane is one connector's share of an instance: at most PerConnector
// attempts in flight, and a bounded queue of first attempts waiting for
// one. A slow endpoint fills its own lane and nobody else's; what does not
// fit is left to the sweep.
type lane struct {
	slots    chan struct{}
	queue    chan delivery
	draining bool // guarded by Service.mu
}

// queueDepth bounds a lane's waiting first attempts, per slot.
const queueDepth = 32

func (s *Service) lane(connector string) *lane {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lanes[connector]
	if l == nil {
		l = &lane{slots: make(chan struct{}, s.cfg.PerConnector), queue: make(chan delivery, s.cfg.PerConnector*queueDepth)}
		s.lanes[connector] = l
	}
	return l
}

// slot takes one of the connector's attempt slots without waiting; the
// caller must call the returned release.
func (s *Service) slot(connector string) (release func(), ok bool) {
	l := s.lane(connector)
	select {
	case l.slots <- struct{}{}:
		return func() { <-l.slots }, true
	default:
		return nil, false
	}
}

// dispatch queues a first attempt in its connector's lane; false means
// the lane is full, and the pair waits for the sweep.
func (s *Service) dispatch(d delivery) bool {
	l := s.lane(d.c.id)
	select {
	case l.queue <- d:
	default:
		return false
	}
	s.mu.Lock()
	start := !l.draining
	l.draining = true
	s.mu.Unlock()
	if start {
		s.inflight.Add(1)
		go func() {
			defer s.inflight.Done()
			s.drain(l)
		}()
	}
	return true
}

// drain feeds a lane's queue into its slots until the queue is empty.
// The attempts outlive the push request that queued them: they run after
// the message is acknowledged, so that a slow endpoint never holds one of
// the few concurrent pushes the subscription gets.
func (s *Service) drain(l *lane) {
	for {
		select {
		case d := <-l.queue:
			l.slots <- struct{}{}
			s.inflight.Add(1)
			go func() {
				defer s.inflight.Done()
				defer func() { <-l.slots }()
				s.attempt(context.Background(), d)
			}()
		default:
			s.mu.Lock()
			if len(l.queue) == 0 {
				l.draining = false
				s.mu.Unlock()
				return
			}
			s.mu.Unlock()
		}
	}
}

// lease is how long a first attempt queued behind n others in its lane
// owns its pair: the sweep leaves it alone meanwhile.
func (s *Service) lease(n int) time.Duration {
	return s.cfg.Lease * time.Duration(1+n/s.cfg.PerConnector)
}
