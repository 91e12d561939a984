package main

import (
	"math"
	"testing"
	"time"
)

func TestPerMillion(t *testing.T) {
	p := prices{docWrite: 1e-6, docRead: 1e-7, docDelete: 1e-8, storedGiBMonth: 1, pubsubTiB: 1 << 10,
		vcpuSecond: 1e-5, gibSecond: 4e-6, request: 1e-6}
	tests := []struct {
		name string
		u    usageWindow
		want map[string]float64
	}{
		{"one reading per packet", usageWindow{readings: 1000, packets: 1000, docWrites: 2000, docReads: 2000,
			pubsubBytes: 3000 * 1000, pushes: 2000, cpuSeconds: 2, eventBytes: 1 << 10, retention: 30 * 24 * time.Hour},
			map[string]float64{
				"Firestore writes":        2,    // 2 writes a reading at $1e-6
				"Firestore reads":         0.2,  // 2 reads at $1e-7
				"Firestore TTL deletes":   0.01, // the event at $1e-8
				"Firestore storage":       1e6 * 1024 / (1 << 30),
				"Pub/Sub throughput":      1e6 * 3000 / (1 << 40) * (1 << 10),
				"function requests":       2,     // 2 pushes at $1e-6
				"function CPU and memory": 0.022, // 2 ms a reading at $1e-5 + 0.25 GiB at $4e-6
			}},
		{"32 readings per packet, kept 15 days", usageWindow{readings: 3200, packets: 100, docWrites: 3200 + 100,
			eventBytes: 1 << 10, retention: 15 * 24 * time.Hour},
			map[string]float64{
				"Firestore writes":      1e6 * 3300 / 3200 * 1e-6,
				"Firestore TTL deletes": 1e6 * 1e-8,
				"Firestore storage":     1e6 * 1024 / (1 << 30) / 2,
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]float64{}
			for _, l := range p.perMillion(tc.u) {
				got[l.what] = l.dollars
			}
			for what, want := range tc.want {
				if math.Abs(got[what]-want) > 1e-9*max(1, want) {
					t.Errorf("%s: $%g per million; want $%g", what, got[what], want)
				}
			}
		})
	}
	if p.perMillion(usageWindow{}) != nil {
		t.Error("a window without readings was priced")
	}
}

func TestStoredSize(t *testing.T) {
	// events/abc: name 7 + 4 + 16 = 27.
	tests := []struct {
		name       string
		fields     map[string]any
		single     []string
		composites int
		want       int
	}{
		{"no fields", nil, nil, 0, 27 + 32},
		{"an unindexed blob", map[string]any{"json": make([]byte, 100)}, nil, 0, 27 + 32 + 5 + 100},
		{"an indexed string, both directions", map[string]any{"eventType": "temp"}, []string{"eventType"}, 0,
			27 + 32 + 10 + 5 + 2*(27+10+5+32)},
		{"a composite index", map[string]any{"deviceId": "d", "n": 3}, []string{"deviceId"}, 1,
			27 + 32 + (9 + 2) + (2 + 8) + 2*(27+9+2+32) + (27 + 2 + 32)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := storedSize("events", "abc", tc.fields, tc.single, tc.composites); got != tc.want {
				t.Errorf("storedSize = %d; want %d", got, tc.want)
			}
		})
	}
}
