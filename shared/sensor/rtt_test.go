package sensor

import (
	"testing"
	"time"
)

func TestRTTTimeout(t *testing.T) {
	const floor = 10 * time.Second
	tests := []struct {
		name    string
		samples []time.Duration
		want    time.Duration
	}{
		{"no ACK timed yet: the floor", nil, floor},
		{"fast ACKs: the floor", []time.Duration{300 * time.Millisecond, 400 * time.Millisecond}, floor},
		// 15s, then rttvar 7.5s: 15 + 30.
		{"one slow ACK", []time.Duration{15 * time.Second}, 45 * time.Second},
		// Steady at 20s: rttvar decays, srtt stays, so the wait nears 20s.
		{"a steady slow cloud", repeat(20*time.Second, 30), 20*time.Second + 4*time.Duration(float64(10*time.Second)*pow(0.75, 29))},
		{"capped", []time.Duration{5 * time.Minute}, maxBackoff},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var e rttEstimate
			for _, s := range tc.samples {
				e.add(s)
			}
			if got := e.timeout(floor); (got - tc.want).Abs() > time.Millisecond {
				t.Errorf("timeout = %v; want %v", got, tc.want)
			}
		})
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

func pow(x float64, n int) float64 {
	r := 1.0
	for range n {
		r *= x
	}
	return r
}
