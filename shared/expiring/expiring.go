// Package expiring is the one bounded, expiring cache the functions use:
// hashicorp's expirable LRU, with an entry's own expiry checked against an
// injectable clock so tests can move time.
package expiring

import (
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
)

// Cache keeps at most size entries, the least recently used leaving
// first; an entry is never returned past its expiry.
type Cache[K comparable, V any] struct {
	lru *expirable.LRU[K, entry[V]]
	ttl time.Duration
	now func() time.Time
}

type entry[V any] struct {
	v   V
	exp time.Time
}

// New returns a cache of size entries that keeps each for ttl at most.
// now is the clock entries expire by (nil: time.Now).
func New[K comparable, V any](size int, ttl time.Duration, now func() time.Time) *Cache[K, V] {
	if now == nil {
		now = time.Now
	}
	// The LRU's own expiry, on the real clock, only frees memory; the
	// entry's expiry on now decides what Get returns.
	return &Cache[K, V]{lru: expirable.NewLRU[K, entry[V]](size, nil, ttl), ttl: ttl, now: now}
}

// Get returns k's value if it is cached and has not expired.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	e, ok := c.lru.Get(k)
	if !ok || !c.now().Before(e.exp) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// Put keeps v for the cache's ttl.
func (c *Cache[K, V]) Put(k K, v V) { c.PutUntil(k, v, c.now().Add(c.ttl)) }

// PutUntil keeps v until exp, or the cache's ttl if that is sooner.
func (c *Cache[K, V]) PutUntil(k K, v V, exp time.Time) {
	if limit := c.now().Add(c.ttl); exp.After(limit) {
		exp = limit
	}
	c.lru.Add(k, entry[V]{v: v, exp: exp})
}

// Remove forgets k.
func (c *Cache[K, V]) Remove(k K) { c.lru.Remove(k) }

// Len is the number of entries held, expired or not.
func (c *Cache[K, V]) Len() int { return c.lru.Len() }
