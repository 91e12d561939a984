package ingest

import (
	"context"
	"errors"
	"maps"
	"time"

	"github.com/sealedsense/sealedsense/shared/expiring"
	"github.com/sealedsense/sealedsense/shared/registry"
	"github.com/sealedsense/sealedsense/shared/relay"
	"github.com/sealedsense/sealedsense/shared/store"
)

// connectorRegistry is where connectors' keys are registered.
type connectorRegistry interface {
	Connector(ctx context.Context, id string) (registry.Connector, error)
}

// connectorKeys are the keys that verify connectors' envelopes, cached:
// every envelope needs one, and connectors are few.
type connectorKeys struct {
	reg   connectorRegistry
	cache *expiring.Cache[string, knownConnector]
	now   func() time.Time
}

// knownConnector is a registry answer, good or bad.
type knownConnector struct {
	c   registry.Connector
	err error
}

// maxConnectors bounds the connector cache; unknown ids are cached too,
// so a flood of them cannot grow it without end.
const maxConnectors = 10000

// newConnectorKeys caches answers for ttl, which bounds how long a revoked
// connector can still be accepted.
func newConnectorKeys(reg connectorRegistry, ttl time.Duration, now func() time.Time) *connectorKeys {
	return &connectorKeys{reg: reg, cache: expiring.New[string, knownConnector](maxConnectors, ttl, now), now: now}
}

// key returns the keys a registered, unrevoked connector's envelopes
// verify under now. Unknown connectors are remembered as such; transient
// failures are not. What is cached is the registry's answer, and which
// keys are valid is decided at each use by the clock: a previous key stops
// being accepted at its deadline, not when the cache next expires (a
// rotation itself reaches a cached entry within the cache's ttl).
func (k *connectorKeys) key(ctx context.Context, id string) (relay.ConnectorKeys, error) {
	kc, ok := k.cache.Get(id)
	if !ok {
		c, err := k.reg.Connector(ctx, id)
		if err != nil && !errors.Is(err, registry.ErrNotFound) {
			return relay.ConnectorKeys{}, err // transient: not cached
		}
		kc = knownConnector{c: c, err: err}
		k.cache.Put(id, kc)
	}
	if kc.err != nil {
		return relay.ConnectorKeys{}, kc.err
	}
	if kc.c.Revoked {
		return relay.ConnectorKeys{}, registry.ErrRevoked
	}
	valid, retired := kc.c.Keys(k.now())
	return relay.ConnectorKeys{Valid: valid, Retired: retired}, nil
}

// onlineLister lists the connectors whose last status was online.
type onlineLister interface {
	OnlineConnectors(ctx context.Context) (map[string]store.Connector, error)
}

// onlineConnectors are the connectors with current heartbeats, cached
// briefly: they only shape how long a first reply waits.
type onlineConnectors struct {
	db    onlineLister
	cache *expiring.Cache[struct{}, map[string]bool]
}

func newOnlineConnectors(db onlineLister, ttl time.Duration, now func() time.Time) *onlineConnectors {
	return &onlineConnectors{db: db, cache: expiring.New[struct{}, map[string]bool](1, ttl, now)}
}

// list returns the online connectors' ids, a copy the caller may change.
// A failure lists none: it is not worth failing a reply over.
func (o *onlineConnectors) list(ctx context.Context) map[string]bool {
	if online, ok := o.cache.Get(struct{}{}); ok {
		return maps.Clone(online)
	}
	conns, err := o.db.OnlineConnectors(ctx)
	if err != nil {
		return map[string]bool{}
	}
	online := make(map[string]bool, len(conns))
	for id := range conns {
		online[id] = true
	}
	if len(online) > 0 {
		// An empty answer is not cached: at start-up the first heartbeats
		// are seconds away.
		o.cache.Put(struct{}{}, maps.Clone(online))
	}
	return online
}
