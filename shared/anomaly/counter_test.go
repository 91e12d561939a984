package anomaly_test

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/anomaly"
)

// pkt is one packet of a scenario: when (after t0), its epoch and new
// sequence numbers, and the changes expected from it ("" for none).
type pkt struct {
	at    time.Duration
	epoch uint32
	seqs  []uint64
	want  string
}

// steady is n packets every gap, each carrying per new readings, the first
// starting at seq from, beginning at start; the epoch is epoch.
func steady(start time.Duration, from uint64, n, per int, gap time.Duration, epoch uint32) []pkt {
	var out []pkt
	for i := range n {
		lo := from + uint64(i*per)
		out = append(out, pkt{at: start + time.Duration(i)*gap, epoch: epoch, seqs: seqs(lo, lo+uint64(per)-1)})
	}
	return out
}

func with(ps []pkt, i int, want string) []pkt {
	ps[i].want = want
	return ps
}

func cat(parts ...[]pkt) []pkt {
	var out []pkt
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// catchUp is what a sensor sends after holding readings from..to unsent
// (no session): the newest 32 first, then the next older 32, and so on,
// all as new readings, one packet a second from start.
func catchUp(start time.Duration, from, to uint64, epoch uint32) []pkt {
	var out []pkt
	for hi := to; hi >= from; {
		lo := max(from, hi-31)
		if hi < 31 {
			lo = from
		}
		out = append(out, pkt{at: start + time.Duration(len(out))*time.Second, epoch: epoch, seqs: seqs(lo, hi)})
		if lo == from {
			break
		}
		hi = lo - 1
	}
	return out
}

func runPackets(t *testing.T, steps []pkt, s anomaly.Settings) *tracker {
	t.Helper()
	var tr tracker
	var st anomaly.Traffic
	for i, p := range steps {
		var ch []anomaly.Change
		st, ch = anomaly.ObservePacket(st, tr.open, anomaly.Packet{At: t0.Add(p.at), Epoch: p.epoch, Seqs: p.seqs}, s)
		if got := join(tr.fold(t, ch)); got != join(splitWant(p.want)) {
			t.Errorf("packet %d (at +%v, epoch %d, seqs %s): changes %s, want %s", i, p.at, p.epoch, brief(p.seqs), got, join(splitWant(p.want)))
		}
		if err := finiteState(st); err != nil {
			t.Fatalf("packet %d: state %v", i, err)
		}
	}
	return &tr
}

func splitWant(w string) []string { return strings.Fields(w) }

func brief(q []uint64) string {
	if len(q) <= 4 {
		return fmt.Sprint(q)
	}
	return fmt.Sprintf("[%d .. %d] (%d)", q[0], q[len(q)-1], len(q))
}

func TestCounters(t *testing.T) {
	sec := time.Second
	swap := func(ps []pkt, i int) []pkt {
		ps[i].seqs, ps[i+1].seqs = ps[i+1].seqs, ps[i].seqs
		return ps
	}
	cases := []struct {
		name  string
		steps []pkt
	}{
		{"in order", steady(0, 1, 100, 1, 10*sec, 0)},
		{"batches of 32", steady(0, 1000, 50, 32, 320*sec, 0)},
		{"out of order across connectors", swap(swap(swap(steady(0, 1, 50, 1, 10*sec, 0), 10), 20), 30)},
		{"two full packets overtaken", cat(steady(0, 1, 9, 32, 320*sec, 0), []pkt{
			{at: 3200 * sec, seqs: seqs(353, 384)}, {at: 3201 * sec, seqs: seqs(321, 352)}, {at: 3202 * sec, seqs: seqs(289, 320)}})},
		{"backfill only", cat(steady(0, 1, 10, 1, 10*sec, 0), []pkt{{at: 100 * sec}, {at: 101 * sec}}, steady(110*sec, 11, 10, 1, 10*sec, 0))},
		{"duplicate packet", cat(steady(0, 1, 10, 1, 10*sec, 0), []pkt{{at: 95 * sec, seqs: seqs(10, 10)}, {at: 96 * sec, seqs: seqs(5, 5)}})},
		{"new epoch restarts the sequence", cat(steady(0, 5000, 20, 1, 10*sec, 3), steady(200*sec, 0, 20, 1, 10*sec, 4))},
		{"a late packet from before the reset", cat(steady(0, 5000, 20, 1, 10*sec, 3), steady(200*sec, 0, 3, 1, 10*sec, 4),
			[]pkt{{at: 231 * sec, epoch: 3, seqs: seqs(5020, 5020)}}, steady(240*sec, 3, 10, 1, 10*sec, 4))},
		{"an epoch that went back is adopted, not flagged", cat(steady(0, 5000, 20, 1, 10*sec, 7), steady(200*sec, 0, 20, 1, 10*sec, 2))},
		{"catch-up after a lost session (newest first)", cat(steady(0, 1, 30, 1, sec, 0), catchUp(330*sec, 31, 330, 0), steady(340*sec, 331, 30, 1, sec, 0))},
		{"outage before the rate is learned", cat(steady(0, 1, 2, 1, 10*sec, 0), []pkt{{at: 24 * time.Hour, seqs: seqs(8640, 8640)}})},
		{"jump opens once, then clears", cat(
			steady(0, 1, 20, 1, 10*sec, 0),
			with(steady(200*sec, 100_000, 1, 1, 10*sec, 0), 0, "+COUNTER_JUMP"),
			with(steady(210*sec, 100_001, 5, 1, 10*sec, 0), 4, "-COUNTER_JUMP"))},
		{"a second jump while open does not re-open", cat(
			steady(0, 1, 20, 1, 10*sec, 0),
			with(steady(200*sec, 100_000, 1, 1, 10*sec, 0), 0, "+COUNTER_JUMP"),
			steady(210*sec, 900_000, 1, 1, 10*sec, 0),
			with(steady(220*sec, 900_001, 5, 1, 10*sec, 0), 4, "-COUNTER_JUMP"))},
		{"jump beyond the generous constant before a rate", cat(
			steady(0, 1, 1, 1, 10*sec, 0), with(steady(10*sec, 20_000, 1, 1, 10*sec, 0), 0, "+COUNTER_JUMP"))},
		{"jump after an outage the rate explains is none", cat(steady(0, 1, 20, 1, 10*sec, 0), steady(20*sec+10*time.Hour, 3620, 5, 1, 10*sec, 0))},
		{"backwards opens once, then clears", cat(
			steady(0, 900, 101, 1, 10*sec, 0),
			with(steady(1010*sec, 100, 1, 1, 10*sec, 0), 0, "+COUNTER_BACKWARDS"),
			steady(1020*sec, 50, 1, 1, 10*sec, 0),
			with(steady(1030*sec, 1001, 5, 1, 10*sec, 0), 4, "-COUNTER_BACKWARDS"))},
		{"counter restarted without a new epoch", cat(
			steady(0, 5000, 20, 1, 10*sec, 0),
			with(steady(200*sec, 0, 30, 1, 10*sec, 0), 0, "+COUNTER_BACKWARDS"))},
		{"a clone with a counter far ahead", cat(
			steady(0, 1000, 20, 1, 10*sec, 0),
			[]pkt{
				{at: 201 * sec, seqs: seqs(90_000_000, 90_000_000), want: "+COUNTER_JUMP"},
				{at: 202 * sec, seqs: seqs(1020, 1020), want: "+COUNTER_BACKWARDS"},
				{at: 211 * sec, seqs: seqs(90_000_001, 90_000_001)},
				{at: 212 * sec, seqs: seqs(1021, 1021)},
				{at: 221 * sec, seqs: seqs(90_000_002, 90_000_002)},
				{at: 222 * sec, seqs: seqs(1022, 1022)},
			})},
		{"near the top of uint64, then wrapped", cat(
			steady(0, math.MaxUint64-40, 40, 1, 10*sec, 0),
			with(steady(400*sec, 0, 1, 1, 10*sec, 0), 0, "+COUNTER_BACKWARDS"))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			runPackets(t, tc.steps, anomaly.DefaultSettings())
		})
	}
}

// TestCounterEvidence: what an operator reads when a counter jumps.
func TestCounterEvidence(t *testing.T) {
	steps := cat(steady(0, 1, 20, 1, 10*time.Second, 2), with(steady(200*time.Second, 1<<40, 1, 1, 0, 2), 0, "+COUNTER_JUMP"))
	tr := runPackets(t, steps, anomaly.Settings{})
	o := tr.open[anomaly.CounterJump]
	if o.Severity != anomaly.Critical || o.Evidence["got"] != "1099511627776" || o.Evidence["previousHighest"] != "20" || o.Evidence["epoch"] != int64(2) {
		t.Errorf("open COUNTER_JUMP = %+v, want CRITICAL, got 1099511627776, previousHighest 20, epoch 2", o)
	}
	if !o.Since.Equal(t0.Add(200 * time.Second)) {
		t.Errorf("since %v, want the jumping packet's time %v", o.Since, t0.Add(200*time.Second))
	}
}
