package api

import (
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/sealedsense/sealedsense/shared/expiring"
)

// limiter is a token bucket per key, on one instance: rate tokens a
// second, at most burst of them. It bounds what one account (or one key's
// token requests) can cost an instance; it is not a global quota.
type limiter struct {
	rate  rate.Limit
	burst int
	now   func() time.Time
	// mu makes finding or making a key's bucket one step, so that two
	// first requests of a key share one bucket.
	mu sync.Mutex
	// buckets keeps each bucket until it would be full again, the same as
	// a new one: dropping it then loses nothing, and memory stays bounded.
	buckets *expiring.Cache[string, *rate.Limiter]
}

// newLimiter returns a limiter of at most size keys on the clock now.
func newLimiter(r, burst float64, size int, now func() time.Time) *limiter {
	b := max(1, int(burst))
	// A bucket must be kept at least until it would be full again; longer
	// only holds memory the size bounds anyway, and spares the cache's
	// sweeper, which wakes every hundredth of its ttl.
	refill := time.Duration(float64(b) / r * float64(time.Second))
	return &limiter{rate: rate.Limit(r), burst: b, now: now,
		buckets: expiring.New[string, *rate.Limiter](size, max(refill, time.Minute), now)}
}

// allow takes one token for key, or says how long until one is there.
func (l *limiter) allow(key string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	b, ok := l.buckets.Get(key)
	if !ok {
		b = rate.NewLimiter(l.rate, l.burst)
	}
	l.buckets.Put(key, b) // in use: kept for another refill time
	l.mu.Unlock()
	r := b.ReserveN(now, 1)
	if wait := r.DelayFrom(now); wait > 0 {
		// Refused: the token stays in the bucket for a later request.
		r.CancelAt(now)
		return false, wait
	}
	return true, 0
}
