package api

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	type step struct {
		at   time.Duration // since the start
		key  string
		ok   bool
		wait time.Duration // when refused
	}
	// 2 a second, bursts of 4: the API's default shape (burst twice the rate).
	tests := []struct {
		name  string
		steps []step
	}{
		{"burst then refused", []step{
			{0, "a", true, 0}, {0, "a", true, 0}, {0, "a", true, 0}, {0, "a", true, 0},
			{0, "a", false, 500 * time.Millisecond},
		}},
		{"refill", []step{
			{0, "a", true, 0}, {0, "a", true, 0}, {0, "a", true, 0}, {0, "a", true, 0},
			{250 * time.Millisecond, "a", false, 250 * time.Millisecond},
			{500 * time.Millisecond, "a", true, 0},
			{500 * time.Millisecond, "a", false, 500 * time.Millisecond},
		}},
		{"refusals cost nothing", []step{
			{0, "a", true, 0}, {0, "a", true, 0}, {0, "a", true, 0}, {0, "a", true, 0},
			{0, "a", false, 500 * time.Millisecond}, {0, "a", false, 500 * time.Millisecond},
			{500 * time.Millisecond, "a", true, 0},
		}},
		{"keys apart", []step{
			{0, "a", true, 0}, {0, "a", true, 0}, {0, "a", true, 0}, {0, "a", true, 0},
			{0, "b", true, 0}, {0, "a", false, 500 * time.Millisecond},
		}},
		{"full after idle", []step{
			{0, "a", true, 0}, {0, "a", true, 0}, {0, "a", true, 0}, {0, "a", true, 0},
			{time.Hour, "a", true, 0}, {time.Hour, "a", true, 0}, {time.Hour, "a", true, 0}, {time.Hour, "a", true, 0},
			{time.Hour, "a", false, 500 * time.Millisecond},
		}},
		{"kept while in use", []step{
			// Past the cache's expiry of an idle bucket (2s) but never idle
			// that long: the bucket must not be dropped and start full.
			{0, "a", true, 0}, {0, "a", true, 0}, {0, "a", true, 0}, {0, "a", true, 0},
			{1500 * time.Millisecond, "a", true, 0}, {1500 * time.Millisecond, "a", true, 0}, {1500 * time.Millisecond, "a", true, 0},
			{2500 * time.Millisecond, "a", true, 0}, {2500 * time.Millisecond, "a", true, 0},
			{2500 * time.Millisecond, "a", false, 500 * time.Millisecond},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Unix(1_700_000_000, 0)
			now := start
			l := newLimiter(2, 4, 100, func() time.Time { return now })
			for i, s := range tt.steps {
				now = start.Add(s.at)
				ok, wait := l.allow(s.key)
				if ok != s.ok || wait != s.wait {
					t.Fatalf("step %d (%v, %s): allowed %v wait %v, want %v %v", i, s.at, s.key, ok, wait, s.ok, s.wait)
				}
			}
		})
	}
}

func TestLimiterBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newLimiter(1, 2, 10, func() time.Time { return now })
	for i := range 100 {
		l.allow(string(rune('a' + i)))
	}
	if n := l.buckets.Len(); n > 10 {
		t.Fatalf("%d buckets held, want at most 10", n)
	}
}
