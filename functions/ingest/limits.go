package ingest

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/sealedsense/sealedsense/shared/anomaly"
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
	// softwareRate is the software envelopes per second the cloud sends
	// one connector, with softwareBurst at once: its heartbeats ask for
	// them, and a connector that sent heartbeats as fast as it could must
	// not turn each 200-byte status into 32 KiB of downlinks. A 1 MiB
	// image is 32 envelopes: 16 s at this pace.
	softwareRate, softwareBurst = 2, 4
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
	handshakes, unknown, software *rate.Limiter
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
			software:   rate.NewLimiter(softwareRate, softwareBurst),
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

// software spends one of the connector's software envelopes, or says
// there is none left; the status that asked goes unanswered, and the
// next asks again.
func (l *connectorLimits) software(connectorID string) bool {
	return l.of(connectorID).software.AllowN(l.now(), 1)
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

// Per-device handshake admission. A cloned key floods handshakes through
// honest connectors, under every connector's limit. Each one admitted
// writes its device's document in its transaction and again with its
// reply, and a document takes about one sustained write a second: a flood
// left alone holds ingest's push slots in lock waits, and every other
// sensor's packets queue behind it. So a device may have twice the
// handshakes that open HANDSHAKE_FLOOD admitted per window (the flood
// stays open for as long as it lasts); the rest are refused
// ("rate-limited", with the device): before the claim once the device is
// over its limit, so the flood costs no Firestore operation, and after
// the claim, before any device read, KMS call or device write, for the
// handshake that spends the last admission. Like the connector limits, the count is
// per instance.
const (
	// admissionOverFlood is the admitted handshakes per window, as a
	// multiple of what opens HANDSHAKE_FLOOD.
	admissionOverFlood = 2
	// maxDeviceLimiters bounds the devices whose recent handshakes are
	// counted; a device dropped from the cache starts full again.
	maxDeviceLimiters = 50_000
)

// deviceHandshakes holds one handshake limiter per device that has
// handshaked lately.
type deviceHandshakes struct {
	limit rate.Limit
	burst int
	now   func() time.Time
	log   *slog.Logger

	mu    sync.Mutex // makes get-or-create atomic
	cache *expiring.Cache[string, *rate.Limiter]
}

func newDeviceHandshakes(s anomaly.Settings, now func() time.Time, log *slog.Logger) *deviceHandshakes {
	perWindow := admissionOverFlood * s.FloodThreshold()
	window := s.FloodWindow
	if window <= 0 {
		window = anomaly.DefaultSettings().FloodWindow
	}
	return &deviceHandshakes{
		limit: rate.Limit(perWindow / window.Seconds()), burst: max(1, int(perWindow)), now: now, log: log,
		cache: expiring.New[string, *rate.Limiter](maxDeviceLimiters, 2*window, now),
	}
}

func (d *deviceHandshakes) of(deviceID string) *rate.Limiter {
	d.mu.Lock()
	defer d.mu.Unlock()
	l, ok := d.cache.Get(deviceID)
	if !ok {
		l = rate.NewLimiter(d.limit, d.burst)
		d.cache.Put(deviceID, l)
	}
	return l
}

// beforeClaim refuses a handshake of a device that has used up its
// admissions, before the claim, so that a flood past the limit costs no
// Firestore operation at all. It spends nothing: each of a handshake's
// copies passes here, and only the copy that owns the claim is admitted.
func (d *deviceHandshakes) beforeClaim(deviceID, connectorID string) error {
	if d.of(deviceID).TokensAt(d.now()) >= 1 {
		return nil
	}
	return d.refuse(deviceID, connectorID)
}

// admit spends one of the device's handshakes, or refuses.
func (d *deviceHandshakes) admit(deviceID, connectorID string) error {
	if d.of(deviceID).AllowN(d.now(), 1) {
		return nil
	}
	return d.refuse(deviceID, connectorID)
}

func (d *deviceHandshakes) refuse(deviceID, connectorID string) error {
	d.log.Warn("device rate-limited", "metric", "device-rate-limited", "deviceId", deviceID, "connectorId", connectorID, "limit", "handshakes")
	return reject("rate-limited", fmt.Errorf("device %s is over its handshake limit of %.0f a minute", deviceID, float64(d.limit)*60))
}
