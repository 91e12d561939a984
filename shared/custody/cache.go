package custody

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Unwrapper turns a wrapped key back into key material. *Wrapper is one.
type Unwrapper interface {
	Unwrap(ctx context.Context, ciphertext, aad []byte) (Secret, error)
}

// Cache keeps unwrapped keys for a short time, so that a function instance
// pays one KMS call per key rather than one per use, and coalesces concurrent
// misses for the same key into a single KMS call.
//
// The TTL bounds how long a key stays usable in memory after it is disabled
// or rotated in KMS; errors are never cached, so a transient KMS failure is
// retried by the next caller.
type Cache struct {
	next       Unwrapper
	ttl        time.Duration
	maxEntries int
	now        func() time.Time

	mu      sync.Mutex
	entries map[[sha256.Size]byte]cacheEntry
	group   singleflight.Group
}

type cacheEntry struct {
	key     Secret
	expires time.Time
}

// CacheOption configures a Cache.
type CacheOption func(*Cache)

// WithClock replaces time.Now, for tests of expiry.
func WithClock(now func() time.Time) CacheOption { return func(c *Cache) { c.now = now } }

// WithMaxEntries bounds the number of keys held (default 10000); when full,
// expired entries are dropped first, then the entry closest to expiry.
func WithMaxEntries(n int) CacheOption { return func(c *Cache) { c.maxEntries = n } }

// NewCache returns a Cache in front of next whose entries live for ttl.
func NewCache(next Unwrapper, ttl time.Duration, opts ...CacheOption) *Cache {
	c := &Cache{
		next:       next,
		ttl:        ttl,
		maxEntries: 10000,
		now:        time.Now,
		entries:    make(map[[sha256.Size]byte]cacheEntry),
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// unwrapTimeout bounds a shared KMS call, which runs detached from any one
// caller's context so that one caller giving up does not fail the others.
const unwrapTimeout = 30 * time.Second

// Unwrap returns the cached key for (ciphertext, aad), or unwraps it once for
// all concurrent callers. The returned Secret is shared: callers must not
// modify or clear it.
func (c *Cache) Unwrap(ctx context.Context, ciphertext, aad []byte) (Secret, error) {
	id := cacheID(ciphertext, aad)
	if k, ok := c.lookup(id); ok {
		return k, nil
	}
	ch := c.group.DoChan(string(id[:]), func() (any, error) {
		if k, ok := c.lookup(id); ok {
			return k, nil
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unwrapTimeout)
		defer cancel()
		k, err := c.next.Unwrap(sctx, ciphertext, aad)
		if err != nil {
			return nil, err
		}
		c.store(id, k)
		return k, nil
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(Secret), nil
	}
}

// Forget drops one key, for example after its record was revoked.
func (c *Cache) Forget(ciphertext, aad []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, cacheID(ciphertext, aad))
}

// cacheID frames the two inputs unambiguously: without the length prefix,
// (ab, c) and (a, bc) would share an entry.
func cacheID(ciphertext, aad []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(ciphertext))))
	h.Write(ciphertext)
	h.Write(aad)
	var id [sha256.Size]byte
	h.Sum(id[:0])
	return id
}

func (c *Cache) lookup(id [sha256.Size]byte) (Secret, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[id]
	if !ok {
		return nil, false
	}
	if !c.now().Before(e.expires) {
		delete(c.entries, id)
		return nil, false
	}
	return e.key, true
}

func (c *Cache) store(id [sha256.Size]byte, k Secret) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.entries) >= c.maxEntries {
		c.evict(now)
	}
	c.entries[id] = cacheEntry{key: k, expires: now.Add(c.ttl)}
}

// evict runs only when the cache is full, which a sized deployment rarely
// reaches, so a linear scan is cheaper than keeping an ordered index.
func (c *Cache) evict(now time.Time) {
	var oldest [sha256.Size]byte
	var oldestAt time.Time
	first := true
	for id, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, id)
			continue
		}
		if first || e.expires.Before(oldestAt) {
			oldest, oldestAt, first = id, e.expires, false
		}
	}
	if len(c.entries) >= c.maxEntries && !first {
		delete(c.entries, oldest)
	}
}
