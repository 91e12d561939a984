package expiring

import (
	"testing"
	"time"
)

func TestCache(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	tests := []struct {
		name    string
		put     func(c *Cache[string, int])
		advance time.Duration
		want    bool
	}{
		{"fresh", func(c *Cache[string, int]) { c.Put("a", 1) }, 59 * time.Second, true},
		{"past ttl", func(c *Cache[string, int]) { c.Put("a", 1) }, time.Minute, false},
		{"own expiry first", func(c *Cache[string, int]) { c.PutUntil("a", 1, now.Add(time.Second)) }, 2 * time.Second, false},
		{"own expiry capped by ttl", func(c *Cache[string, int]) { c.PutUntil("a", 1, now.Add(time.Hour)) }, 2 * time.Minute, false},
		{"removed", func(c *Cache[string, int]) { c.Put("a", 1); c.Remove("a") }, 0, false},
		{"evicted by size", func(c *Cache[string, int]) { c.Put("a", 1); c.Put("b", 2); c.Put("c", 3) }, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now = time.Unix(1000, 0)
			c := New[string, int](2, time.Minute, clock)
			tc.put(c)
			now = now.Add(tc.advance)
			if _, ok := c.Get("a"); ok != tc.want {
				t.Fatalf("Get(a) found = %v, want %v", ok, tc.want)
			}
		})
	}
}
