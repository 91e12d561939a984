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

// TestRequeue: envelopes whose publish failed go back in front, in order;
// when the queue fills, the earliest of them, the oldest, are dropped.
func TestRequeue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		size, queued int
		back         []byte
		want         []byte
		wantDropped  uint64
	}{
		{size: 8, queued: 2, back: []byte{10, 11}, want: []byte{10, 11, 0, 1}},
		{size: 4, queued: 2, back: []byte{10, 11}, want: []byte{10, 11, 0, 1}},
		{size: 4, queued: 3, back: []byte{10, 11}, want: []byte{11, 0, 1, 2}, wantDropped: 1},
		{size: 2, queued: 2, back: []byte{10, 11}, want: []byte{0, 1}, wantDropped: 2},
		{size: 2, queued: 0, back: []byte{10, 11, 12}, want: []byte{11, 12}, wantDropped: 1},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d back onto %d of %d", len(tc.back), tc.queued, tc.size), func(t *testing.T) {
			q := newQueue(tc.size)
			for i := range tc.queued {
				q.push([]byte{byte(i)})
			}
			var back [][]byte
			for _, b := range tc.back {
				back = append(back, []byte{b})
			}
			if dropped := q.requeue(back); uint64(dropped) != tc.wantDropped {
				t.Fatalf("requeue dropped %d, want %d", dropped, tc.wantDropped)
			}
			var got []byte
			for b, ok := q.pop(); ok; b, ok = q.pop() {
				got = append(got, b[0])
			}
			if _, dropped := q.stats(); string(got) != string(tc.want) || dropped != tc.wantDropped {
				t.Fatalf("queue %v, %d dropped; want %v, %d dropped", got, dropped, tc.want, tc.wantDropped)
			}
		})
	}
}
