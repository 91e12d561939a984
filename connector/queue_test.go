package connector

import (
	"fmt"
	"testing"
)

func TestQueueDropsOldest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		size, pushes int
		wantFirst    int
		wantDropped  uint64
	}{
		{size: 4, pushes: 3, wantFirst: 0, wantDropped: 0},
		{size: 4, pushes: 4, wantFirst: 0, wantDropped: 0},
		{size: 4, pushes: 10, wantFirst: 6, wantDropped: 6},
		{size: 1, pushes: 5, wantFirst: 4, wantDropped: 4},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d into %d", tc.pushes, tc.size), func(t *testing.T) {
			q := newQueue(tc.size)
			for i := range tc.pushes {
				q.push([]byte{byte(i)})
			}
			n, dropped := q.stats()
			if dropped != tc.wantDropped || n != min(tc.pushes, tc.size) {
				t.Fatalf("len %d dropped %d, want %d and %d", n, dropped, min(tc.pushes, tc.size), tc.wantDropped)
			}
			for want := tc.wantFirst; want < tc.pushes; want++ {
				b, ok := q.pop()
				if !ok || b[0] != byte(want) {
					t.Fatalf("pop = %v %v, want %d (oldest survivors first)", b, ok, want)
				}
			}
			if _, ok := q.pop(); ok {
				t.Fatal("queue not empty after popping everything")
			}
		})
	}
}
