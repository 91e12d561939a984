package main

import (
	"strings"
	"testing"
	"time"
)

func TestPerSensor(t *testing.T) {
	for _, tc := range []struct {
		name     string
		o        offered
		raw      float64
		interval time.Duration
	}{
		{"half of raw", offered{share: 0.5}, 8000, 50 * time.Millisecond},
		{"absolute rate wins over the share", offered{share: 0.5, rate: 1000}, 8000, 200 * time.Millisecond},
		{"interval wins over both", offered{share: 0.5, rate: 1000, interval: 36 * time.Millisecond}, 8000, 36 * time.Millisecond},
		{"never below a millisecond", offered{rate: 1e9}, 8000, time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iv, rate := tc.o.perSensor(200, tc.raw)
			if iv != tc.interval || rate != 200/iv.Seconds() {
				t.Fatalf("perSensor = %v, %.1f/s; want %v", iv, rate, tc.interval)
			}
		})
	}
}

func TestStepBroken(t *testing.T) {
	good := step{offered: 1000, stored: 1000, p99: "800ms", p99ok: true, backlogFrom: 500, backlogTo: 600}
	for _, tc := range []struct {
		name string
		edit func(*step)
		says string
	}{
		{"holds", func(*step) {}, ""},
		{"slow ACKs", func(s *step) { s.p99, s.p99ok = "2.5s", false }, "p99 2.5s"},
		{"ACKs that never came", func(s *step) { s.p99, s.p99ok = "never", false }, "p99 never"},
		{"stored too little", func(s *step) { s.stored = 850 }, "stored 850/s of 1000/s"},
		{"backlog growing", func(s *step) { s.backlogTo = 500 + 3001 }, "grew from 500 to 3501"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := good
			tc.edit(&s)
			got := s.broken()
			if (tc.says == "") != (got == "") || !strings.Contains(got, tc.says) {
				t.Fatalf("broken() = %q; want %q", got, tc.says)
			}
		})
	}
}
