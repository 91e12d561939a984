package main

import "testing"

func TestSettled(t *testing.T) {
	for _, c := range []struct {
		name           string
		prev, now, std int
		want           bool
	}{
		{"at the steady level", 90000, 12000, 12800, true},
		{"still draining", 90000, 60000, 12800, false},
		{"draining slowly", 90000, 86000, 12800, true},
		{"growing past capacity", 90000, 95000, 12800, true},
		{"just above steady, shrinking fast", 20000, 13000, 12800, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := settled(c.prev, c.now, c.std); got != c.want {
				t.Errorf("settled(%d, %d, %d) = %v, want %v", c.prev, c.now, c.std, got, c.want)
			}
		})
	}
}
