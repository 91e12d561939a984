package ingest

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/sealedsense/sealedsense/shared/expiring"
)

// Per-connector limits. A connector relays what its radio hears, and
// anyone with a radio and the cloud's public key can make it relay
// handshakes from keys no sensor has, or packets to sessions that do not
// exist: each costs X25519 work and a Firestore read. The limits bound
// what one connector's traffic can cost; beyond them its messages are
// refused ("rate-limited"), logged for the fleet-health alert and
// acknowledged. The defaults are far above what honest traffic needs, a
// fleet's worth of handshakes after an outage included.
const (
	// defaultHandshakeRate is the handshakes (message 1s) per second one
	// connector may relay; it may relay limitBurst seconds' worth at once.
	defaultHandshakeRate = 100
	// defaultUnknownRate is the lookups per second, of static keys and
	// receiver indexes that turn out unknown, one connector may cause.
	defaultUnknownRate = 20
	// limitBurst is how many seconds of its rate a connector may use at
	// once.
	limitBurst = 10
	// limitsTTL is how long an idle connector's limiters are kept; a new
	// one starts full, so this only needs to be long next to a burst.
	limitsTTL = 10 * time.Minute
)

// connectorLimits holds one pair of limiters per connector.
type connectorLimits struct {
	handshakeRate, unknownRate float64
	now                        func() time.Time
	log                        *slog.Logger

	mu    sync.Mutex // makes get-or-create atomic
	cache *expiring.Cache[string, *connectorLimiters]
}

type connectorLimiters struct {
	handshakes, unknown *rate.Limiter
}

func newConnectorLimits(cfg Config, now func() time.Time, log *slog.Logger) *connectorLimits {
	return &connectorLimits{handshakeRate: cfg.HandshakeRate, unknownRate: cfg.UnknownRate, now: now, log: log,
		cache: expiring.New[string, *connectorLimiters](maxConnectors, limitsTTL, now)}
}

func (l *connectorLimits) of(connectorID string) *connectorLimiters {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.cache.Get(connectorID)
	if !ok {
		c = &connectorLimiters{
			handshakes: rate.NewLimiter(rate.Limit(l.handshakeRate), int(l.handshakeRate*limitBurst)),
			unknown:    rate.NewLimiter(rate.Limit(l.unknownRate), int(l.unknownRate*limitBurst)),
		}
		l.cache.Put(connectorID, c)
	}
	return c
}

// handshake spends one of the connector's handshakes, or refuses.
func (l *connectorLimits) handshake(connectorID string) error {
	if l.of(connectorID).handshakes.AllowN(l.now(), 1) {
		return nil
	}
	return l.refuse(connectorID, "handshakes")
}

// beforeLookup refuses a lookup the cache cannot answer while the
// connector has used up its unknown lookups. It spends nothing: only a
// lookup that finds nothing does (missed). So a connector over its limit
// still gets its known sensors' packets through whenever their sessions
// or keys are cached, and honest traffic never spends the budget.
func (l *connectorLimits) beforeLookup(connectorID string) error {
	if l.of(connectorID).unknown.TokensAt(l.now()) >= 1 {
		return nil
	}
	return l.refuse(connectorID, "unknown-lookups")
}

// missed spends one of the connector's unknown lookups.
func (l *connectorLimits) missed(connectorID string) { l.of(connectorID).unknown.AllowN(l.now(), 1) }

func (l *connectorLimits) refuse(connectorID, limit string) error {
	l.log.Warn("connector rate-limited", "metric", "connector-rate-limited", "connectorId", connectorID, "limit", limit)
	return reject("rate-limited", fmt.Errorf("connector %s is over its %s limit", connectorID, limit))
}
