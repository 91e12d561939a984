package rollout_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/sealedsense/sealedsense/shared/anomaly"
	"github.com/sealedsense/sealedsense/shared/rollout"
)

// baseline is a fleet with 1% of devices anomalous, 99% of packets
// acknowledged and a drain of 0.3 points a day.
func baseline() rollout.Cohort {
	return rollout.Cohort{Devices: 1000, Anomalous: 10, AnomaliesByKind: map[anomaly.Kind]int{anomaly.Silent: 8, anomaly.BatteryDrain: 3},
		Sent: 100000, Acked: 99000, BatteryDrainPerDay: 0.3}
}

// updated is 100 devices as healthy as the baseline, changed by edit.
func updated(edit func(*rollout.Cohort)) rollout.Cohort {
	c := rollout.Cohort{Devices: 100, Anomalous: 1, AnomaliesByKind: map[anomaly.Kind]int{anomaly.Silent: 1},
		Sent: 10000, Acked: 9900, BatteryDrainPerDay: 0.3}
	if edit != nil {
		edit(&c)
	}
	return c
}

// gateWith is the default gate changed by edit.
func gateWith(edit func(*rollout.Gate)) rollout.Gate {
	g := rollout.DefaultGate()
	edit(&g)
	return g
}

// baseWith is the baseline changed by edit.
func baseWith(edit func(*rollout.Cohort)) rollout.Cohort {
	b := baseline()
	edit(&b)
	return b
}

func TestJudge(t *testing.T) {
	g := rollout.DefaultGate()
	zeroBase := baseWith(func(b *rollout.Cohort) { b.Anomalous, b.AnomaliesByKind, b.BatteryDrainPerDay = 0, nil, 0 })
	drainy := baseWith(func(b *rollout.Cohort) { b.BatteryDrainPerDay = 2 })
	cases := []struct {
		name     string
		updated  rollout.Cohort
		baseline rollout.Cohort
		gate     rollout.Gate
		want     rollout.Outcome
		reason   []string // what the reason must name
	}{
		{"as healthy as the baseline", updated(nil), baseline(), g, rollout.OK, []string{"100 updated", "1000 others"}},
		{"anomalies at the bound", updated(func(c *rollout.Cohort) { c.Anomalous = 3 }), baseline(), g, rollout.OK, nil},
		{"anomalies above the bound", updated(func(c *rollout.Cohort) { c.Anomalous = 4 }), baseline(), g, rollout.Fail,
			[]string{"devices with an anomaly", "4 of 100", "4.0%", "above 3.0%", "10 of 1000", "1.0%"}},
		{"anomalies within the ratio", updated(func(c *rollout.Cohort) { c.Anomalous = 20 }), baseWith(func(b *rollout.Cohort) { b.Anomalous = 100 }), g, rollout.OK, nil},
		{"anomalies above the ratio", updated(func(c *rollout.Cohort) { c.Anomalous = 21 }), baseWith(func(b *rollout.Cohort) { b.Anomalous = 100 }), g, rollout.Fail, []string{"21 of 100", "above 20.0%", "100 of 1000"}},
		{"zero baseline, within the slack", updated(func(c *rollout.Cohort) { c.Anomalous, c.AnomaliesByKind[anomaly.Silent] = 2, 2 }), zeroBase, g, rollout.OK, nil},
		{"zero baseline, above the slack", updated(func(c *rollout.Cohort) { c.Anomalous = 3 }), zeroBase, g, rollout.Fail, []string{"3 of 100", "0 of 1000"}},
		{"one kind above its bound", updated(func(c *rollout.Cohort) {
			c.Anomalous, c.AnomaliesByKind = 3, map[anomaly.Kind]int{anomaly.CounterBackwards: 3}
		}), baseline(), g, rollout.Fail, []string{"devices with COUNTER_BACKWARDS: 3 of 100", "0 of 1000"}},
		{"ACK rate at the bound", updated(func(c *rollout.Cohort) { c.Acked = 9400 }), baseline(), g, rollout.OK, nil},
		{"ACK rate below the bound", updated(func(c *rollout.Cohort) { c.Acked = 9000 }), baseline(), g, rollout.Fail,
			[]string{"ACK rate", "90.0% (9000 of 10000)", "99.0% (99000 of 100000)"}},
		{"ACK rate of a small sample: 2 lost of 34 is noise", updated(func(c *rollout.Cohort) { c.Sent, c.Acked = 34, 32 }),
			baseWith(func(b *rollout.Cohort) { b.Sent, b.Acked = 146, 146 }), g, rollout.OK, nil},
		{"ACK rate of a large sample: 6 points below is not", updated(func(c *rollout.Cohort) { c.Acked = 9300 }), baseline(), g, rollout.Fail,
			[]string{"ACK rate", "93.0% (9300 of 10000)"}},
		{"drain at the slack", updated(func(c *rollout.Cohort) { c.BatteryDrainPerDay = 0.8 }), baseline(), g, rollout.OK, nil},
		{"drain at the ratio", updated(func(c *rollout.Cohort) { c.BatteryDrainPerDay = 3 }), drainy, g, rollout.OK, nil},
		{"drain above the ratio", updated(func(c *rollout.Cohort) { c.BatteryDrainPerDay = 3.1 }), drainy, g, rollout.Fail, []string{"3.10", "above 3.00", "baseline 2.00"}},
		{"drain above the bound", updated(func(c *rollout.Cohort) { c.BatteryDrainPerDay = 0.81 }), baseline(), g, rollout.Fail,
			[]string{"battery drain", "0.81", "above 0.80", "baseline 0.30"}},
		{"zero baseline drain, within the slack", updated(func(c *rollout.Cohort) { c.BatteryDrainPerDay = 0.5 }), zeroBase, g, rollout.OK, nil},
		{"zero baseline drain, above the slack", updated(func(c *rollout.Cohort) { c.BatteryDrainPerDay = 0.6 }), zeroBase, g, rollout.Fail, []string{"battery drain"}},
		{"every signal out of bounds is named", updated(func(c *rollout.Cohort) { c.Anomalous, c.Acked, c.BatteryDrainPerDay = 50, 5000, 9 }), baseline(), g, rollout.Fail,
			[]string{"devices with an anomaly", "ACK rate", "battery drain"}},
		{"a failure without packets still fails", updated(func(c *rollout.Cohort) { c.Sent, c.Acked, c.BatteryDrainPerDay = 0, 0, 5 }), baseline(), g, rollout.Fail, []string{"battery drain"}},

		{"fewer updated devices than needed", updated(nil), baseline(), gateWith(func(g *rollout.Gate) { g.MinDevices = 101 }), rollout.Wait, []string{"100 updated", "101 needed"}},
		{"no updated device, none needed", rollout.Cohort{}, baseline(), gateWith(func(g *rollout.Gate) { g.MinDevices = 0 }), rollout.Wait, []string{"0 updated", "1 needed"}},
		{"no baseline", updated(nil), rollout.Cohort{}, g, rollout.Wait, []string{"compare"}},
		{"no packets from updated devices", updated(func(c *rollout.Cohort) { c.Sent, c.Acked = 0, 0 }), baseline(), g, rollout.Wait, []string{"0 sent by updated"}},
		{"no packets from the baseline", updated(nil), baseWith(func(b *rollout.Cohort) { b.Sent, b.Acked = 0, 0 }), g, rollout.Wait, []string{"0 by the baseline"}},
		{"connectors: no packets, ACKs not judged", updated(func(c *rollout.Cohort) { c.Sent, c.Acked = 0, 0 }), baseWith(func(b *rollout.Cohort) { b.Sent, b.Acked = 0, 0 }),
			gateWith(func(g *rollout.Gate) { g.NoAcks = true }), rollout.OK, nil},
		{"connectors: anomalies still judged", updated(func(c *rollout.Cohort) { c.Sent, c.Acked, c.Anomalous = 0, 0, 50 }), baseline(),
			gateWith(func(g *rollout.Gate) { g.NoAcks = true }), rollout.Fail, []string{"devices with an anomaly"}},

		{"NaN drain", updated(func(c *rollout.Cohort) { c.BatteryDrainPerDay = math.NaN() }), baseline(), g, rollout.Fail, []string{"updated devices", "drain NaN"}},
		{"infinite baseline drain", updated(nil), baseWith(func(b *rollout.Cohort) { b.BatteryDrainPerDay = math.Inf(1) }), g, rollout.Fail, []string{"baseline devices"}},
		{"negative drain", updated(func(c *rollout.Cohort) { c.BatteryDrainPerDay = -1 }), baseline(), g, rollout.Fail, []string{"drain -1"}},
		{"negative devices", rollout.Cohort{Devices: -1}, baseline(), g, rollout.Fail, []string{"of -1 devices"}},
		{"more anomalous than devices", updated(func(c *rollout.Cohort) { c.Anomalous = 101 }), baseline(), g, rollout.Fail, []string{"101 anomalous of 100"}},
		{"negative anomalous", updated(func(c *rollout.Cohort) { c.Anomalous = -1 }), baseline(), g, rollout.Fail, []string{"-1 anomalous"}},
		{"more of a kind than anomalous", updated(func(c *rollout.Cohort) { c.AnomaliesByKind[anomaly.Moved] = 2 }), baseline(), g, rollout.Fail, []string{"LOCATION_CHANGE"}},
		{"negative of a kind", updated(func(c *rollout.Cohort) { c.AnomaliesByKind[anomaly.Moved] = -1 }), baseline(), g, rollout.Fail, []string{"LOCATION_CHANGE"}},
		{"empty kind", updated(func(c *rollout.Cohort) { c.AnomaliesByKind[""] = 1 }), baseline(), g, rollout.Fail, []string{`anomaly ""`}},
		{"more acked than sent", updated(func(c *rollout.Cohort) { c.Acked = 10001 }), baseline(), g, rollout.Fail, []string{"10001 packets acknowledged of 10000"}},
		{"negative sent", updated(func(c *rollout.Cohort) { c.Sent = -1 }), baseline(), g, rollout.Fail, []string{"of -1 sent"}},
		{"packets without devices", rollout.Cohort{Sent: 5}, baseline(), g, rollout.Fail, []string{"of 5 sent by 0 devices"}},
		{"drain without devices", rollout.Cohort{BatteryDrainPerDay: 1}, baseline(), g, rollout.Fail, []string{"of 0 devices"}},
		{"zero gate", updated(nil), baseline(), rollout.Gate{}, rollout.Fail, []string{"gate ratios"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := rollout.Judge(tc.updated, tc.baseline, tc.gate)
			if v.Outcome != tc.want || v.Reason == "" {
				t.Fatalf("Judge(%+v, %+v, %+v) = %v %q, want %v with a reason", tc.updated, tc.baseline, tc.gate, v.Outcome, v.Reason, tc.want)
			}
			for _, s := range tc.reason {
				if !strings.Contains(v.Reason, s) {
					t.Errorf("reason %q does not name %q", v.Reason, s)
				}
			}
		})
	}
}

// TestGateValidate: a gate that would pass anything, or nothing, Fails
// every judgement.
func TestGateValidate(t *testing.T) {
	cases := []struct {
		name string
		gate rollout.Gate
	}{
		{"zero", rollout.Gate{}},
		{"negative min devices", gateWith(func(g *rollout.Gate) { g.MinDevices = -1 })},
		{"too many min devices", gateWith(func(g *rollout.Gate) { g.MinDevices = rollout.MaxMinDevices + 1 })},
		{"anomaly ratio below 1", gateWith(func(g *rollout.Gate) { g.MaxAnomalyRatio = 0.5 })},
		{"NaN anomaly ratio", gateWith(func(g *rollout.Gate) { g.MaxAnomalyRatio = math.NaN() })},
		{"infinite drain ratio", gateWith(func(g *rollout.Gate) { g.MaxDrainRatio = math.Inf(1) })},
		{"drain ratio too large", gateWith(func(g *rollout.Gate) { g.MaxDrainRatio = rollout.MaxRatio + 1 })},
		{"negative anomaly slack", gateWith(func(g *rollout.Gate) { g.AnomalySlack = -0.01 })},
		{"anomaly slack above 1", gateWith(func(g *rollout.Gate) { g.AnomalySlack = 1.5 })},
		{"NaN ACK drop", gateWith(func(g *rollout.Gate) { g.MaxAckDrop = math.NaN() })},
		{"ACK drop above 1", gateWith(func(g *rollout.Gate) { g.MaxAckDrop = 2 })},
		{"negative drain slack", gateWith(func(g *rollout.Gate) { g.DrainSlack = -1 })},
		{"drain slack too large", gateWith(func(g *rollout.Gate) { g.DrainSlack = rollout.MaxDrainSlack + 1 })},
	}
	if err := rollout.DefaultGate().Validate(); err != nil {
		t.Fatalf("DefaultGate().Validate() = %v", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.gate.Validate(); !errors.Is(err, rollout.ErrInvalid) {
				t.Errorf("Validate(%+v) = %v, want ErrInvalid", tc.gate, err)
			}
			if v := rollout.Judge(updated(nil), baseline(), tc.gate); v.Outcome != rollout.Fail || !strings.Contains(v.Reason, "gate") {
				t.Errorf("Judge with gate %+v = %v %q, want Fail naming the gate", tc.gate, v.Outcome, v.Reason)
			}
		})
	}
}

func TestGateFor(t *testing.T) {
	cases := []struct {
		name       string
		stageMin   int
		selected   int
		wantMinDev int
	}{
		{"many selected", 50, 1000, 50},
		{"fewer selected than the stage's minimum", 50, 7, 7},
		{"none selected", 50, 0, 0},
		{"no minimum", 0, 1000, 0},
		{"a negative count", 50, -3, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := rollout.DefaultGate().For(rollout.Stage{Percent: 10, MinDevices: tc.stageMin}, tc.selected)
			if g.MinDevices != tc.wantMinDev {
				t.Errorf("For(stage min %d, %d selected).MinDevices = %d, want %d", tc.stageMin, tc.selected, g.MinDevices, tc.wantMinDev)
			}
		})
	}
}
