// Package ingest is the function that turns relayed radio packets into
// events: it verifies the connector, completes handshakes, deduplicates the
// copies that several connectors heard, opens each packet once, stores its
// readings as DT-shaped events exactly once, publishes them, and answers the
// sensor through the one connector best placed to reach it.
package ingest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"

	"github.com/sealedsense/sealedsense/shared/anomaly"
	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/expiring"
	"github.com/sealedsense/sealedsense/shared/radio"
	"github.com/sealedsense/sealedsense/shared/registry"
	"github.com/sealedsense/sealedsense/shared/relay"
	"github.com/sealedsense/sealedsense/shared/store"
	"github.com/sealedsense/sealedsense/shared/usage"
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
	// ConfigExpireAfter is how long a requested device configuration may
	// stay unconfirmed before the sweep marks it EXPIRED (default 7 days).
	ConfigExpireAfter time.Duration
	// Retention is how long events are kept before Firestore's TTL
	// deletes them (default 30 days).
	Retention time.Duration
	// StatusTopic is the topic id of connector heartbeats (default
	// "connector-status"); every other topic is treated as uplinks.
	StatusTopic string
	// ConnectorCacheTTL bounds how long a revoked connector can still be
	// accepted by an instance that cached it (default 30s).
	ConnectorCacheTTL time.Duration
	// HandshakeRate is how many handshakes per second one connector may
	// relay, ten seconds' worth at once (default 100); UnknownRate is how
	// many lookups per second of unknown sensor keys and receiver indexes
	// its traffic may cause, likewise (default 20). Beyond them its
	// messages are refused "rate-limited" (limits.go).
	HandshakeRate, UnknownRate float64
	// KeyRefresh is how old the instance's unwrapped cloud keys may grow
	// before they are read again (default 5m), so that a rotated or
	// retired key reaches every instance within it. A session sealed
	// under an unknown KEK, or a message 1 that opens under no known
	// static key, reloads them sooner (at most every 10s, keyring.go).
	KeyRefresh time.Duration
	// Anomaly tunes fleet-health detection (zero fields take the
	// defaults of anomaly.DefaultSettings); SilentFactor is the one
	// operators set.
	Anomaly anomaly.Settings
	// OfflineAlertAfter is how long a connector stays offline before the
	// sweep logs it for the long-outage alert, once (default 30m).
	OfflineAlertAfter time.Duration
}

// DefaultKeyRefresh is Config.KeyRefresh's default.
const DefaultKeyRefresh = 5 * time.Minute

// OldKEKLifetime is how long after a session KEK stopped being the newest
// a session sealed under it may still be live, with the default limits: a
// session resealed by an instance that had not learnt the newer KEK yet
// (up to DefaultKeyRefresh later) lives until its age limit. Retiring the
// KEK earlier cuts such sessions off and makes their sensors handshake
// again.
func OldKEKLifetime() time.Duration { return radio.DefaultLimits().MaxAge + DefaultKeyRefresh }

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
	def(&c.ConfigExpireAfter, 7*24*time.Hour)
	def(&c.ConnectorCacheTTL, 30*time.Second)
	def(&c.KeyRefresh, DefaultKeyRefresh)
	def(&c.OfflineAlertAfter, 30*time.Minute)
	if c.HandshakeRate <= 0 {
		c.HandshakeRate = defaultHandshakeRate
	}
	if c.UnknownRate <= 0 {
		c.UnknownRate = defaultUnknownRate
	}
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
	// ReadObject reads a release image from Cloud Storage; nil in an
	// ingest that never serves software updates (tests of other parts).
	ReadObject func(ctx context.Context, bucket, object string) ([]byte, error)
}

// Service processes uplinks and connector status. Its parts each have
// one job: claims deduplicates copies, sessions and the connector caches
// spare Firestore reads, and the reply choice is pure functions (choice.go).
type Service struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	db   *store.DB

	keys       *keyring
	connectors *connectorKeys
	online     *onlineConnectors
	sessions   *sessionCache
	sensorKeys *sensorKeys
	limits     *connectorLimits
	admission  *deviceHandshakes
	releases   *releaseImages
	announced  *expiring.Cache[string, struct{}] // connectors sent a channel-key announcement lately
	claims     *claimer
	retentions *retentions
	// answering and committing bound the packets waiting for their
	// copies and the packet transactions in flight (transport.go).
	answering, committing chan struct{}
	anomaly               anomaly.Settings
	n                     counters
}

// counters are the load figures: commits counts Firestore writes (a
// transaction is one), packets the unique packets stored, readings the
// reading events they created, badReadings the readings refused alone
// and lateCopies the copies too late for their packet's reply.
// The load tool reads them, and the process's billable operations
// (shared/usage), from the "reply sent" log line.
type counters struct {
	// instance names the process the counters are of: on many
	// instances, the fleet's figures are the sum of each one's latest.
	instance                                string
	commits, packets, readings, badReadings atomic.Uint64
	// lateCopies are copies of a data packet that came after it was
	// answered, within the collection window of its first.
	lateCopies atomic.Uint64
	// crossCopies are copies of a packet another instance answered.
	crossCopies atomic.Uint64
}

// logCounters are the counters as the "reply sent" line logs them, with
// the session cache's hits and misses.
func (s *Service) logCounters() []any {
	return append(s.n.logAttrs(), "sessionHits", s.sessions.hits.Load(), "sessionMisses", s.sessions.misses.Load())
}

// logAttrs are the counters as the "reply sent" line logs them.
func (c *counters) logAttrs() []any {
	return append([]any{"instance", c.instance, "commits", c.commits.Load(), "uniquePackets", c.packets.Load(), "storedReadings", c.readings.Load(),
		"refusedReadings", c.badReadings.Load(), "lateCopies", c.lateCopies.Load(), "crossInstanceCopies", c.crossCopies.Load()}, usage.LogAttrs()...)
}

// cloudKeys are the cloud's keys, unwrapped: each wrapped key costs one
// KMS call per instance (the unwrap caches), however often they reload.
type cloudKeys struct {
	statics  []registry.StaticKey // newest first
	channel  ed25519.PrivateKey
	envelope *custody.Envelope
	// newestKEK is the newest KEK version: the envelope holds every
	// stored version up to it, so an older one it lacks was retired.
	newestKEK int

	// endorsements of channel by the older stored channel keys travel
	// with every downlink, so connectors that trust only those learn it.
	endorsements []relay.Endorsement
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
	cfg = cfg.withDefaults()
	db := store.New(deps.Firestore)
	s := &Service{
		cfg: cfg, deps: deps, log: deps.Logger, db: db, anomaly: cfg.Anomaly,
		connectors: newConnectorKeys(deps.Registry, cfg.ConnectorCacheTTL, deps.Now),
		online:     newOnlineConnectors(db, cfg.ConnectorCacheTTL, deps.Now),
		sessions:   newSessionCache(db, cfg.Limits, deps.Now),
		sensorKeys: newSensorKeys(db, deps.Now),
		limits:     newConnectorLimits(cfg, deps.Now, deps.Logger),
		admission:  newDeviceHandshakes(cfg.Anomaly, deps.Now, deps.Logger),
		releases:   newReleaseImages(db, deps.ReadObject, deps.Now, deps.Logger),
		announced:  expiring.New[string, struct{}](maxConnectors, announceEvery, deps.Now),
		retentions: newRetentions(db, cfg.Retention, deps.Now),
		answering:  make(chan struct{}, maxAnswering),
		committing: make(chan struct{}, maxCommitting),
	}
	s.n.instance = rand.Text()
	s.claims = &claimer{db: db, window: cfg.Window, now: deps.Now, commits: &s.n.commits, instance: s.n.instance,
		recent: expiring.New[string, answeredPacket](maxAnswered, answeredTTL, deps.Now)}
	// A failure is not remembered, so a transient KMS error heals on the
	// next message.
	s.keys = newKeyring(func(ctx context.Context) (*cloudKeys, error) { return loadCloudKeys(ctx, deps) },
		cfg.KeyRefresh, deps.Now, deps.Logger)
	return s
}

// cloud returns the unwrapped cloud keys, loading them on first use and
// again once they are KeyRefresh old.
func (s *Service) cloud(ctx context.Context) (*cloudKeys, error) { return s.keys.get(ctx) }

func loadCloudKeys(ctx context.Context, deps Deps) (*cloudKeys, error) {
	ck, err := deps.Registry.CloudKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("ingest: cloud keys: %w", err)
	}
	statics, err := deps.Registry.CloudStatics(ctx, ck)
	if err != nil {
		return nil, err
	}
	channels, err := deps.Registry.ChannelKeys(ctx, ck)
	if err != nil {
		return nil, err
	}
	channel := channels[0].Private
	endorsements := endorseChannel(channels)
	env, err := deps.Registry.SessionEnvelope(ctx, deps.KEKReader, ck)
	if err != nil {
		return nil, err
	}
	newestKEK, _ := ck.Newest(store.RoleKEK)
	return &cloudKeys{statics: statics, channel: channel, endorsements: endorsements, envelope: env, newestKEK: newestKEK.Version}, nil
}
