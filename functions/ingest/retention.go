package ingest

import (
	"context"
	"time"

	"github.com/sealedsense/sealedsense/shared/expiring"
	"github.com/sealedsense/sealedsense/shared/store"
)

// Each project sets how long its events are kept; every event carries its
// expiry, written when it is stored, for Firestore's TTL. An instance
// reads a project's retention at most once a minute: a change reaches new
// events within that, and a data-rights job rewrites the older ones.
const (
	retentionTTL  = time.Minute
	maxRetentions = 10000
	retentionRead = 2 * time.Second
)

type retentions struct {
	db    *store.DB
	def   time.Duration
	cache *expiring.Cache[string, time.Duration]
}

func newRetentions(db *store.DB, def time.Duration, now func() time.Time) *retentions {
	return &retentions{db: db, def: def, cache: expiring.New[string, time.Duration](maxRetentions, retentionTTL, now)}
}

// of says project's retention. A read that fails keeps the default, not
// remembered, rather than hold a packet up: events then expire by the
// platform's default, which a project's next retention change rewrites.
func (r *retentions) of(project string) time.Duration {
	if project == "" {
		return r.def
	}
	if d, ok := r.cache.Get(project); ok {
		return d
	}
	ctx, cancel := context.WithTimeout(context.Background(), retentionRead)
	defer cancel()
	p, err := r.db.Project(ctx, project)
	if err != nil && !store.IsNotFound(err) {
		return r.def
	}
	d := p.EventRetention(r.def)
	r.cache.Put(project, d)
	return d
}
