// Package ingest is the function that turns relayed radio packets into
// events: it verifies the connector, completes handshakes, deduplicates the
// copies that several connectors heard, opens each packet once, stores its
// readings as DT-shaped events exactly once, publishes them, and answers the
// sensor through the one connector best placed to reach it.
package ingest

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"

	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/radio"
	"github.com/sealedsense/sealedsense/shared/registry"
)

// Publisher is the part of a Pub/Sub publisher ingest needs.
type Publisher interface {
	Publish(ctx context.Context, msg *pubsub.Message) *pubsub.PublishResult
}

// Config tunes the pipeline. Zero values take the defaults.
type Config struct {
	// Window is the collection window: copies of a packet that arrive
	// within it add their reception metadata (default 200ms).
	Window time.Duration
	// MaxWindow bounds how long the reply waits for the copies of
	// connectors that usually hear the device (default 1s).
	MaxWindow time.Duration
	// Limits bound a session's age and packet count.
	Limits radio.Limits
	// DownlinkTTL is how long a connector may still transmit a reply
	// (default 5s); a sensor has stopped listening after that.
	DownlinkTTL time.Duration
	// NetworkStatusEvery spaces a device's networkStatus events (default 15m).
	NetworkStatusEvery time.Duration
	// OfflineAfter is the heartbeat silence after which a connector is
	// marked offline (default 90s, three missed 30s heartbeats).
	OfflineAfter time.Duration
	// Retention is how long events are kept before Firestore's TTL
	// deletes them (default 30 days).
	Retention time.Duration
	// StatusTopic is the topic id of connector heartbeats (default
	// "connector-status"); every other topic is treated as uplinks.
	StatusTopic string
	// ConnectorCacheTTL bounds how long a revoked connector can still be
	// accepted by an instance that cached it (default 30s).
	ConnectorCacheTTL time.Duration
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Window, 200*time.Millisecond)
	def(&c.MaxWindow, max(time.Second, c.Window))
	def(&c.DownlinkTTL, 5*time.Second)
	def(&c.NetworkStatusEvery, 15*time.Minute)
	def(&c.OfflineAfter, 90*time.Second)
	def(&c.Retention, 30*24*time.Hour)
	def(&c.ConnectorCacheTTL, 30*time.Second)
	if c.StatusTopic == "" {
		c.StatusTopic = "connector-status"
	}
	if c.Limits == (radio.Limits{}) {
		c.Limits = radio.DefaultLimits()
	}
	return c
}

// Deps are the clients the Service works through.
type Deps struct {
	Firestore *firestore.Client
	Registry  *registry.Registry
	KEKReader custody.Unwrapper // the session-KEK CryptoKey, behind a cache
	Events    Publisher
	Downlinks Publisher
	Logger    *slog.Logger
	Now       func() time.Time
	// After runs f once d has passed (default time.AfterFunc). The reply
	// waits out the collection window this way rather than inside the
	// request: a push handler that sleeps holds one of the few concurrent
	// pushes a subscription gets (the Pub/Sub emulator has two each).
	After func(d time.Duration, f func())
}

// Service processes uplinks and connector status.
type Service struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	keysMu sync.Mutex
	keys   *cloudKeys

	connMu   sync.Mutex
	conns    map[string]cachedConnector
	online   map[string]bool // connectors with current heartbeats
	onlineAt time.Time

	// commits counts Firestore writes (a transaction is one), packets the
	// unique packets stored and readings the reading events they created;
	// the load tool reads them from the logs.
	commits, packets, readings atomic.Uint64

	live liveClaims

	sessMu   sync.Mutex
	sessions map[uint32]cachedSession
}

// cachedSession is a recent snapshot of a session, good for authenticating
// packets without a Firestore read: its keys never change, and a window
// that is a little stale only sends a copy down the slower path.
type cachedSession struct {
	sess    *radio.Session
	meta    sessionMeta
	fetched time.Time
}

// sessionMeta is what a session document says besides the sealed session.
type sessionMeta struct {
	DeviceID, ProjectID string
}

// cloudKeys are unwrapped once per instance: one KMS call each, then none.
type cloudKeys struct {
	static   radio.KeyPair
	channel  ed25519.PrivateKey
	envelope *custody.Envelope
}

type cachedConnector struct {
	c       registry.Connector
	err     error
	fetched time.Time
}

// New returns a Service.
func New(cfg Config, deps Deps) *Service {
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.After == nil {
		deps.After = func(d time.Duration, f func()) { time.AfterFunc(d, f) }
	}
	return &Service{cfg: cfg.withDefaults(), deps: deps, log: deps.Logger, conns: make(map[string]cachedConnector), sessions: make(map[uint32]cachedSession)}
}

// cloud returns the unwrapped cloud keys, loading them on first use. A
// failure is not remembered, so a transient KMS error heals on the next
// message.
func (s *Service) cloud(ctx context.Context) (*cloudKeys, error) {
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	if s.keys != nil {
		return s.keys, nil
	}
	ck, err := s.deps.Registry.CloudKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("ingest: cloud keys: %w", err)
	}
	static, err := s.deps.Registry.CloudStatic(ctx, ck)
	if err != nil {
		return nil, err
	}
	channel, err := s.deps.Registry.ChannelKey(ctx, ck)
	if err != nil {
		return nil, err
	}
	env, err := s.deps.Registry.SessionEnvelope(ctx, s.deps.KEKReader, ck)
	if err != nil {
		return nil, err
	}
	s.keys = &cloudKeys{static: static, channel: channel, envelope: env}
	return s.keys, nil
}

// connector returns a registered, unrevoked connector's public key, caching
// the answer (good or bad) for ConnectorCacheTTL.
func (s *Service) connector(ctx context.Context, id string) (ed25519.PublicKey, error) {
	now := s.deps.Now()
	s.connMu.Lock()
	cc, ok := s.conns[id]
	s.connMu.Unlock()
	if !ok || now.Sub(cc.fetched) > s.cfg.ConnectorCacheTTL {
		c, err := s.deps.Registry.Connector(ctx, id)
		if err != nil && !errors.Is(err, registry.ErrNotFound) {
			return nil, err // transient: not cached
		}
		cc = cachedConnector{c: c, err: err, fetched: now}
		s.connMu.Lock()
		if len(s.conns) > 10000 {
			clear(s.conns)
		}
		s.conns[id] = cc
		s.connMu.Unlock()
	}
	if cc.err != nil {
		return nil, cc.err
	}
	if cc.c.Revoked {
		return nil, registry.ErrRevoked
	}
	return ed25519.PublicKey(cc.c.PublicKey), nil
}
