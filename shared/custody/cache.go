package custody

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/sealedsense/sealedsense/shared/expiring"
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

	entries *expiring.Cache[[sha256.Size]byte, Secret]
	group   singleflight.Group
}

// CacheOption configures a Cache.
type CacheOption func(*Cache)

// WithClock replaces time.Now, for tests of expiry.
func WithClock(now func() time.Time) CacheOption { return func(c *Cache) { c.now = now } }

// WithMaxEntries bounds the number of keys held (default 10000); when full,
// the least recently used leaves first.
func WithMaxEntries(n int) CacheOption { return func(c *Cache) { c.maxEntries = n } }

// NewCache returns a Cache in front of next whose entries live for ttl.
func NewCache(next Unwrapper, ttl time.Duration, opts ...CacheOption) *Cache {
	c := &Cache{
		next:       next,
		ttl:        ttl,
		maxEntries: 10000,
		now:        time.Now,
	}
	for _, o := range opts {
		o(c)
	}
	c.entries = expiring.New[[sha256.Size]byte, Secret](c.maxEntries, ttl, c.now)
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
	c.entries.Remove(cacheID(ciphertext, aad))
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

func (c *Cache) lookup(id [sha256.Size]byte) (Secret, bool) { return c.entries.Get(id) }

func (c *Cache) store(id [sha256.Size]byte, k Secret) { c.entries.Put(id, k) }
