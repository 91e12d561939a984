package ingest

import (
	"context"
	"fmt"
	"time"

	"github.com/sealedsense/sealedsense/shared/expiring"
	"github.com/sealedsense/sealedsense/shared/registry"
	"github.com/sealedsense/sealedsense/shared/store"
)

// keyLookup finds the device of a public-key hash.
type keyLookup interface {
	DeviceIDByKeyHash(ctx context.Context, hash string) (string, error)
}

// sensorKeys maps sensors' static keys to their devices, cached both
// ways: a key's device never changes (the lookup is written once, at
// manufacture), and an unknown key (a forged handshake) is remembered
// briefly, so a flood of one costs one read per negativeTTL per instance.
type sensorKeys struct {
	db      keyLookup
	known   *expiring.Cache[string, string]
	unknown *expiring.Cache[string, struct{}]
}

const (
	// negativeTTL is how long an unknown key or receiver index is
	// remembered as unknown.
	negativeTTL = 30 * time.Second
	// maxUnknown bounds each negative cache; it is apart from the
	// positive ones, so a flood of unknowns cannot evict known sensors.
	maxUnknown = 10000
	// knownKeyTTL is how long a key's device is remembered.
	knownKeyTTL = time.Hour
)

func newSensorKeys(db keyLookup, now func() time.Time) *sensorKeys {
	return &sensorKeys{db: db,
		known:   expiring.New[string, string](maxSessions, knownKeyTTL, now),
		unknown: expiring.New[string, struct{}](maxUnknown, negativeTTL, now)}
}

// device returns the device of a sensor's static key; an unknown key is
// refused ("unknown-sensor") without a write. A lookup the caches cannot
// answer is allowed by the connector's limits first.
func (k *sensorKeys) device(ctx context.Context, pub [32]byte, limits *connectorLimits, connectorID string) (string, error) {
	hash := registry.PublicKeyHash(pub)
	if id, ok := k.known.Get(hash); ok {
		return id, nil
	}
	if _, ok := k.unknown.Get(hash); ok {
		return "", reject("unknown-sensor", fmt.Errorf("key %s, known unknown", hash))
	}
	if err := limits.beforeLookup(connectorID); err != nil {
		return "", err
	}
	id, err := k.db.DeviceIDByKeyHash(ctx, hash)
	if store.IsNotFound(err) {
		limits.missed(connectorID)
		k.unknown.Put(hash, struct{}{})
		return "", reject("unknown-sensor", fmt.Errorf("key %s: %w", hash, err))
	}
	if err != nil {
		return "", err
	}
	k.known.Put(hash, id)
	return id, nil
}
