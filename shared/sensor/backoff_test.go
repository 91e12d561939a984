package sensor

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		base     time.Duration
		attempts int
		want     time.Duration
	}{
		{5 * time.Second, 0, 5 * time.Second},
		{5 * time.Second, 1, 5 * time.Second},
		{5 * time.Second, 2, 10 * time.Second},
		{5 * time.Second, 4, 40 * time.Second},
		{5 * time.Second, 30, maxBackoff},
	}
	for _, tc := range tests {
		if got := backoff(tc.base, tc.attempts); got != tc.want {
			t.Errorf("backoff(%v, %d) = %v, want %v", tc.base, tc.attempts, got, tc.want)
		}
	}
}
