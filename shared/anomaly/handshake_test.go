package anomaly_test

import (
	"slices"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/anomaly"
)

// every returns n handshake times gap apart, from start.
func every(start time.Duration, n int, gap time.Duration) []time.Duration {
	var out []time.Duration
	for i := range n {
		out = append(out, start+time.Duration(i)*gap)
	}
	return out
}

func sorted(d []time.Duration) []time.Duration {
	slices.Sort(d)
	return d
}

// runHandshakes feeds handshakes at the given offsets from t0 and returns
// each change with the offset it came at, as "+KIND@offset".
func runHandshakes(t *testing.T, at []time.Duration, reviews []time.Duration) ([]string, anomaly.Health, *tracker) {
	t.Helper()
	s := anomaly.DefaultSettings()
	var tr tracker
	var h anomaly.Health
	var got []string
	ri := 0
	for _, a := range at {
		for ; ri < len(reviews) && reviews[ri] <= a; ri++ {
			h.Open = tr.open
			for _, c := range tr.fold(t, anomaly.Review(h, t0.Add(reviews[ri]), s)) {
				got = append(got, c+"@review+"+reviews[ri].String())
			}
		}
		var ch []anomaly.Change
		h.Handshakes, ch = anomaly.ObserveHandshake(h.Handshakes, tr.open, t0.Add(a), s)
		for _, c := range tr.fold(t, ch) {
			got = append(got, c+"@+"+a.String())
		}
	}
	for ; ri < len(reviews); ri++ {
		h.Open = tr.open
		for _, c := range tr.fold(t, anomaly.Review(h, t0.Add(reviews[ri]), s)) {
			got = append(got, c+"@review+"+reviews[ri].String())
		}
	}
	h.Open = tr.open
	return got, h, &tr
}

func TestHandshakeFlood(t *testing.T) {
	sec, ms := time.Second, time.Millisecond
	cases := []struct {
		name       string
		handshakes []time.Duration
		reviews    []time.Duration
		want       string
	}{
		{"one a minute for a day", every(0, 1440, time.Minute), every(30*sec, 1440, time.Minute), ""},
		{"the sensor's fastest, one per 5 s, for an hour", every(0, 720, 5*sec), every(sec, 360, 10*sec), ""},
		{"retries backing off", []time.Duration{0, 5 * sec, 15 * sec, 35 * sec, 75 * sec, 155 * sec}, nil, ""},
		{"the fastest rate and two reboots", sorted(append(every(0, 24, 5*sec), 30500*ms, 31*sec)), nil, ""},
		{"a flood at 5/s is seen within 4 s, once", every(0, 300, 200*ms), nil, "+HANDSHAKE_FLOOD@+3.6s"},
		{"a flood the sweep clears after a quiet window", every(0, 30, 200*ms), []time.Duration{59 * sec, 60 * sec, 119 * sec, 120 * sec, 200 * sec},
			"+HANDSHAKE_FLOOD@+3.6s -HANDSHAKE_FLOOD@review+2m0s"},
		{"a flood cleared by the next handshake after a quiet window", append(every(0, 30, 200*ms), 150*sec, 151*sec),
			nil, "+HANDSHAKE_FLOOD@+3.6s -HANDSHAKE_FLOOD@+2m30s"},
		{"a busy window keeps it open", append(every(0, 30, 200*ms), every(60*sec, 12, 5*sec)...), every(0, 20, 10*sec),
			"+HANDSHAKE_FLOOD@+3.6s -HANDSHAKE_FLOOD@review+3m0s"},
		// 25 in 25 s, 10 in one fixed window and 15 in the next: only the
		// sliding estimate sees them.
		{"a flood split across a window's edge", append([]time.Duration{0}, every(50*sec, 25, sec)...), nil, "+HANDSHAKE_FLOOD@+1m8s"},
		{"clocks slightly back count in the window", []time.Duration{10 * sec, 9 * sec, 20 * sec, 19 * sec}, nil, ""},
		{"a clock far back starts afresh", append(every(10*time.Hour, 12, 5*sec), every(0, 12, 5*sec)...), nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, _, _ := runHandshakes(t, tc.handshakes, tc.reviews)
			if join(got) != join(splitWant(tc.want)) {
				t.Errorf("changes %s, want %s", join(got), join(splitWant(tc.want)))
			}
		})
	}
}

// TestHandshakeFloodReviewAt: the sweep is asked to look exactly when the
// flood can clear, and the evidence says what was counted.
func TestHandshakeFloodReviewAt(t *testing.T) {
	s := anomaly.DefaultSettings()
	_, h, tr := runHandshakes(t, every(0, 30, 200*time.Millisecond), nil)
	o := h.Open[anomaly.HandshakeFlood]
	if o.Severity != anomaly.Critical || o.Evidence["count"] != int64(19) || o.Evidence["limit"] != 12.0 || o.Evidence["windowSeconds"] != 60.0 {
		t.Errorf("open flood = %+v, want CRITICAL, count 19, limit 12, window 60 s", o)
	}
	at := anomaly.ReviewAt(h, s)
	if want := t0.Add(2 * time.Minute); !at.Equal(want) {
		t.Fatalf("ReviewAt = %v, want %v (the end of the empty window after the flood's)", at, want)
	}
	if ch := anomaly.Review(h, at.Add(-time.Nanosecond), s); len(ch) != 0 {
		t.Errorf("review just before ReviewAt: %v, want none", ch)
	}
	tr.fold(t, anomaly.Review(h, at, s))
	h.Open = tr.open
	if len(h.Open) != 0 {
		t.Errorf("open after review at ReviewAt: %v, want none", h.Open)
	}
	if next := anomaly.ReviewAt(h, s); !next.IsZero() {
		t.Errorf("ReviewAt after the clear = %v, want never", next)
	}
}
