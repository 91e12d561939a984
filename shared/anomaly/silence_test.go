package anomaly_test

import (
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/anomaly"
)

// tick is one event of a silence scenario: a packet (carrying reading seq,
// when seq > 0) or, with review, the sweep looking at the device. next is
// the expected ReviewAt afterwards, as an offset from t0 ("never", or ""
// to skip the check).
type tick struct {
	at       time.Duration
	review   bool
	seq      uint64
	interval time.Duration
	want     string
	next     string
}

func runTicks(t *testing.T, ticks []tick) anomaly.Health {
	t.Helper()
	s := anomaly.DefaultSettings()
	var tr tracker
	var h anomaly.Health
	for i, k := range ticks {
		var ch []anomaly.Change
		if k.review {
			h.Open = tr.open
			ch = anomaly.Review(h, t0.Add(k.at), s)
		} else {
			p := anomaly.Packet{At: t0.Add(k.at), Interval: k.interval}
			if k.seq > 0 {
				p.Seqs = []uint64{k.seq}
			}
			h.Traffic, ch = anomaly.ObservePacket(h.Traffic, tr.open, p, s)
		}
		what := "packet"
		if k.review {
			what = "review"
		}
		if got := join(tr.fold(t, ch)); got != join(splitWant(k.want)) {
			t.Errorf("%s %d at +%v: changes %s, want %s", what, i, k.at, got, join(splitWant(k.want)))
		}
		h.Open = tr.open
		if k.next == "" {
			continue
		}
		got := anomaly.ReviewAt(h, s)
		want := time.Time{}
		if k.next != "never" {
			d, err := time.ParseDuration(k.next)
			if err != nil {
				t.Fatal(err)
			}
			want = t0.Add(d)
		}
		if !got.Equal(want) {
			t.Errorf("after %s %d at +%v: ReviewAt %v, want %v (%s)", what, i, k.at, got, want, k.next)
		}
	}
	return h
}

func TestSilence(t *testing.T) {
	min, sec := time.Minute, time.Second
	// learned is a device without a configured interval that reports every
	// 100 s: three gaps make the gap learned.
	learned := []tick{
		{at: 0, seq: 1, next: "never"},
		{at: 100 * sec, seq: 2, next: "never"},
		{at: 200 * sec, seq: 3, next: "never"},
		{at: 300 * sec, seq: 4, next: "10m"},
	}
	cases := []struct {
		name  string
		ticks []tick
	}{
		{"configured interval: opens once at the deadline, the next packet clears", []tick{
			{at: 0, seq: 1, interval: 10 * min, next: "30m"},
			{at: 30*min - sec, review: true},
			{at: 30 * min, review: true, want: "+SILENT", next: "never"},
			{at: 40 * min, review: true},
			{at: 45 * min, seq: 2, interval: 10 * min, want: "-SILENT", next: "75m"},
			{at: 75 * min, review: true, want: "+SILENT"},
		}},
		{"a fast sensor gets the floor, not k × 5 s", []tick{
			{at: 0, seq: 1, interval: 5 * sec, next: "1m"},
			{at: 59 * sec, review: true},
			{at: 60 * sec, review: true, want: "+SILENT"},
		}},
		{"learned gap, none before three gaps", append(learned,
			tick{at: 599 * sec, review: true},
			tick{at: 600 * sec, review: true, want: "+SILENT"},
		)},
		{"a burst of catch-up or backfill packets does not shorten the gap", append(learned,
			tick{at: 301 * sec, seq: 2},
			tick{at: 301*sec + 100*time.Millisecond, seq: 3},
			tick{at: 301*sec + 200*time.Millisecond},
			tick{at: 301*sec + 300*time.Millisecond, next: "10m1s300ms"},
		)},
		{"an outage is not learned as a gap", append(learned,
			tick{at: 600 * sec, review: true, want: "+SILENT"},
			tick{at: 3000 * sec, seq: 5, want: "-SILENT", next: "55m"},
		)},
		{"time going backwards moves nothing back", append(learned,
			tick{at: 250 * sec, seq: 5, next: "10m"},
		)},
		{"the sweep running late still opens once", []tick{
			{at: 0, seq: 1, interval: min, next: "3m"},
			{at: 3 * time.Hour, review: true, want: "+SILENT"},
			{at: 4 * time.Hour, review: true},
		}},
		{"a device that never spoke is never reviewed", []tick{
			{at: 0, review: true, next: "never"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { runTicks(t, tc.ticks) })
	}
}

// TestSilenceEvidence: what an operator reads about a silent device.
func TestSilenceEvidence(t *testing.T) {
	h := runTicks(t, []tick{
		{at: 0, seq: 1, interval: 15 * time.Minute},
		{at: 46 * time.Minute, review: true, want: "+SILENT"},
	})
	o := h.Open[anomaly.Silent]
	want := map[string]any{"lastPacket": t0, "expectedIntervalSeconds": 900.0, "factor": 3.0}
	for k, v := range want {
		if got := o.Evidence[k]; got != v {
			t.Errorf("evidence %s = %v, want %v (all: %v)", k, got, v, o.Evidence)
		}
	}
	if o.Severity != anomaly.Warning || !o.Since.Equal(t0.Add(45*time.Minute)) {
		t.Errorf("open SILENT = %+v, want WARNING since the deadline %v", o, t0.Add(45*time.Minute))
	}
}

// TestAbsurdTimes: a packet or a sweep with no usable time changes no
// deadline and raises nothing.
func TestAbsurdTimes(t *testing.T) {
	s := anomaly.DefaultSettings()
	var tr tracker
	tf, _ := anomaly.ObservePacket(anomaly.Traffic{}, nil, anomaly.Packet{At: t0, Seqs: []uint64{1}, Interval: time.Minute}, s)
	want := tf.SilentAt
	for _, at := range []time.Time{{}, time.Unix(0, 0), time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), t0.AddDate(-100, 0, 0)} {
		var ch []anomaly.Change
		tf, ch = anomaly.ObservePacket(tf, tr.open, anomaly.Packet{At: at, Seqs: []uint64{2}, Interval: time.Minute}, s)
		tr.fold(t, ch)
		if !tf.SilentAt.Equal(want) {
			t.Errorf("packet at %v moved the deadline to %v, want %v", at, tf.SilentAt, want)
		}
		if ch := anomaly.Review(anomaly.Health{Traffic: tf}, at, s); len(ch) != 0 {
			t.Errorf("review at %v: %v, want none", at, ch)
		}
	}
	if len(tr.all) != 0 {
		t.Errorf("changes %v, want none", tr.all)
	}
}
