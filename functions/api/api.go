// Package api is the customer-facing HTTP function: the DT v2-compatible REST
// resources, the OAuth2 token endpoint that turns service-account assertions
// into ES256 access tokens, the JWKS those tokens verify against, and the
// audit log every read or change of customer data appends to.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/functions/api/stream"
	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/dataconnector"
	"github.com/sealedsense/sealedsense/shared/expiring"
	"github.com/sealedsense/sealedsense/shared/store"
	"github.com/sealedsense/sealedsense/shared/token"
)

// Config tunes the API. Zero values take the defaults.
type Config struct {
	// BaseURL is the API's public origin, e.g. https://api.example.eu. The
	// token endpoint, which assertions name as their audience, is
	// BaseURL/oauth2/token; access tokens carry BaseURL as issuer and
	// audience.
	BaseURL string
	// Domain makes service-account emails: <sa>@<project>.serviceaccount.<Domain>.
	Domain string
	// AccessTTL bounds how long an instance trusts what it read of an
	// account: a deleted or disabled key or account, or a revoked role,
	// stops working within it (default 30s).
	AccessTTL time.Duration
	// TokenLifetime is the life of an access token (default and maximum 1h).
	TokenLifetime time.Duration
	// Rate and Burst limit each account's requests per second on one
	// instance (defaults 50 and 100); TokenRate limits assertions per key.
	Rate, Burst, TokenRate float64
	// EmulatorRate limits each project's events published through the
	// device emulator API, per instance (default 10 a second, bursts of
	// twice that).
	EmulatorRate float64
	// MaxBody bounds request bodies (default 64 KiB).
	MaxBody int64
	// LocalMode admits Data Connector URLs on loopback, plain http
	// included: for local runs only.
	LocalMode bool
	// EventRetention is how long events are kept (default 30 days), and
	// so how far back a backfill can reach.
	EventRetention time.Duration
	// ExportURLTTL is how long an export's download URLs are valid
	// (default and maximum 1 hour).
	ExportURLTTL time.Duration
	// Stream tunes devices:stream.
	Stream stream.Config
}

func (c Config) withDefaults() Config {
	if c.Domain == "" {
		c.Domain = "sealedsense.eu"
	}
	if c.AccessTTL <= 0 {
		c.AccessTTL = 30 * time.Second
	}
	if c.TokenLifetime <= 0 || c.TokenLifetime > time.Hour {
		c.TokenLifetime = time.Hour
	}
	if c.Rate <= 0 {
		c.Rate = 50
	}
	if c.Burst <= 0 {
		c.Burst = 2 * c.Rate
	}
	if c.EmulatorRate <= 0 {
		c.EmulatorRate = 10
	}
	if c.TokenRate <= 0 {
		c.TokenRate = 5
	}
	if c.MaxBody <= 0 {
		c.MaxBody = 64 << 10
	}
	if c.EventRetention <= 0 {
		c.EventRetention = 30 * 24 * time.Hour
	}
	if c.ExportURLTTL <= 0 || c.ExportURLTTL > time.Hour {
		c.ExportURLTTL = time.Hour
	}
	c.BaseURL = strings.TrimSuffix(c.BaseURL, "/")
	return c
}

// TokenURL is the token endpoint assertions must name as their audience.
func (c Config) TokenURL() string { return c.BaseURL + "/oauth2/token" }

// Wrapper KMS-wraps the secrets the API stores: service-account key
// secrets and its page-token key.
type Wrapper interface {
	Wrap(ctx context.Context, plaintext custody.Secret, aad []byte) ([]byte, error)
	Unwrap(ctx context.Context, ciphertext, aad []byte) (custody.Secret, error)
}

// Signer issues access tokens; *token.Signer is one.
type Signer interface {
	Sign(ctx context.Context, c token.Claims) (string, error)
}

// Verifier checks access tokens and publishes their keys; *token.KeySet is one.
type Verifier interface {
	Verify(ctx context.Context, tok string, want token.Expect) (token.Claims, error)
	JWKS(ctx context.Context) ([]byte, error)
}

// Deps are the API's clients.
type Deps struct {
	Firestore *firestore.Client
	Secrets   Wrapper
	// SecretReader unwraps secrets, usually a custody.Cache in front of
	// Secrets, so that a key's secret costs one KMS call per instance.
	SecretReader custody.Unwrapper
	Signer       Signer
	Verifier     Verifier
	// WebhookSecrets wraps Data Connector signature secrets (the API
	// never unwraps them); DeliveryKeys checks the certificates of the
	// deliver instances' keys, which the JWKS publishes.
	WebhookSecrets Wrapper
	DeliveryKeys   dataconnector.CertVerifier
	// Events publishes the events the API makes (a configuration's
	// REQUESTED status) for webhooks; nil stores them only.
	Events EventPublisher
	// Exports signs the download URLs of exports; nil answers 503.
	Exports URLSigner
	Logger  *slog.Logger
	Now     func() time.Time
}

// Service serves the API.
type Service struct {
	cfg        Config
	deps       Deps
	log        *slog.Logger
	mux        *http.ServeMux
	db         *store.DB
	principals *expiring.Cache[string, *principal]
	orgs       *expiring.Cache[string, string]
	jwksCache  *expiring.Cache[string, []byte]
	limits     *limiter
	emuLimits  *limiter // per project, on the emulator's publish
	tokenLimit *limiter
	pages      *pager
	streams    *stream.Server
	// openapi is the document, built on first request: it never changes.
	openapi func() ([]byte, error)
}

// New returns a Service.
func New(cfg Config, deps Deps) *Service {
	cfg = cfg.withDefaults()
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.SecretReader == nil {
		deps.SecretReader = deps.Secrets
	}
	db := store.New(deps.Firestore)
	s := &Service{
		cfg: cfg, deps: deps, log: deps.Logger,
		db:         db,
		principals: expiring.New[string, *principal](10000, cfg.AccessTTL, deps.Now),
		orgs:       expiring.New[string, string](10000, cfg.AccessTTL, deps.Now),
		// Entries are put for jwksTTL; the cache's own longer ttl only
		// spares its sweeper, which wakes every hundredth of it.
		jwksCache:  expiring.New[string, []byte](1, time.Minute, deps.Now),
		limits:     newLimiter(cfg.Rate, cfg.Burst, 10000, deps.Now),
		tokenLimit: newLimiter(cfg.TokenRate, 4*cfg.TokenRate, 10000, deps.Now),
		emuLimits:  newLimiter(cfg.EmulatorRate, 2*cfg.EmulatorRate, 10000, deps.Now),
		pages:      &pager{db: db, secrets: deps.Secrets, reader: deps.SecretReader},
	}
	s.openapi = sync.OnceValues(s.OpenAPI)
	if deps.Firestore != nil {
		st, err := stream.New(cfg.Stream, stream.Deps{Firestore: deps.Firestore, Logger: deps.Logger, Now: deps.Now, Audit: s})
		if err != nil {
			s.log.Error("stream server", "error", err.Error())
		}
		s.streams = st
	}
	s.mux = http.NewServeMux()
	for _, rt := range s.routes() {
		s.mux.Handle(rt.Method+" "+muxPath(rt.Pattern), s.serve(rt))
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errNotFound("no such resource"))
	})
	return s
}

// ServeHTTP answers one request.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if p := muxPath(r.URL.Path); p != r.URL.Path {
		r = r.Clone(context.WithValue(r.Context(), sentPathKey{}, r.URL.Path))
		r.URL.Path, r.URL.RawPath = p, ""
	}
	s.mux.ServeHTTP(w, r)
}

// sentPathKey holds the path as the client sent it, before muxPath.
type sentPathKey struct{}

// requestPath is the path the client sent, which audit entries record.
func requestPath(r *http.Request) string {
	if p, ok := r.Context().Value(sentPathKey{}).(string); ok {
		return p
	}
	return r.URL.Path
}

// muxPath moves a custom method (Google's AIP-136 ":verb" on the last
// segment) into a segment of its own, since the mux's wildcards match
// whole segments: /dataconnectors/{id}:sync is served as
// /dataconnectors/{id}/:sync. Patterns and request paths go through the
// same rewrite, so the two always agree.
func muxPath(p string) string {
	i := strings.LastIndexByte(p, '/')
	j := strings.IndexByte(p[i+1:], ':')
	if j <= 0 {
		return p
	}
	return p[:i+1+j] + "/" + p[i+1+j:]
}
