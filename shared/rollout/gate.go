package rollout

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/sealedsense/sealedsense/shared/anomaly"
)

// Cohort is the health of a set of devices over the same period: the
// devices a stage reached (updated, counting those still updating or that
// failed to, so a device the release kills counts against it) or the
// devices it did not (the baseline, which shares their weather and radio).
type Cohort struct {
	Devices int
	// Anomalous is how many of the devices have an open anomaly;
	// AnomaliesByKind how many have one of each kind.
	Anomalous       int
	AnomaliesByKind map[anomaly.Kind]int
	// Sent is how many packets the devices were expected to deliver, Acked
	// how many of them the cloud acknowledged.
	Sent, Acked int64
	// BatteryDrainPerDay is the devices' mean battery drop, in percentage
	// points a day; 0 when none is known.
	BatteryDrainPerDay float64
}

// Gate bounds how much worse than the baseline the updated devices may
// fare. Each ratio bound comes with an absolute slack, so a baseline at
// zero does not block a rollout forever.
type Gate struct {
	// MinDevices is how many updated devices must be observed before
	// judging; at least 1 always is. See For.
	MinDevices int
	// MaxAnomalyRatio bounds the updated devices' share with an open
	// anomaly (overall and of each kind) to that many times the baseline's,
	// or the baseline's plus AnomalySlack, whichever is larger.
	MaxAnomalyRatio, AnomalySlack float64
	// MaxAckDrop bounds how far the updated devices' ACK rate may fall
	// below the baseline's (0.05: five points).
	MaxAckDrop float64
	// MaxDrainRatio bounds the updated devices' battery drain to that many
	// times the baseline's, or the baseline's plus DrainSlack (points a
	// day), whichever is larger.
	MaxDrainRatio, DrainSlack float64
	// NoAcks leaves ACK rates out: the devices send nothing a reply
	// acknowledges (connectors, whose health is their own trial of a
	// release and their anomalies).
	NoAcks bool
}

// DefaultGate tolerates twice the baseline's anomalies (or 2 points more),
// an ACK rate 5 points lower, and 1.5 times its drain (or half a point a
// day more): wider than the noise of a few dozen devices, narrower than a
// release that breaks something.
func DefaultGate() Gate {
	return Gate{MinDevices: 1, MaxAnomalyRatio: 2, AnomalySlack: 0.02, MaxAckDrop: 0.05, MaxDrainRatio: 1.5, DrainSlack: 0.5}
}

// For is the gate for stage s when the stage reaches selected devices: it
// waits for the stage's MinDevices, or for every device when fewer are
// selected, so that a small fleet is not held back forever.
func (g Gate) For(s Stage, selected int) Gate {
	g.MinDevices = max(0, min(s.MinDevices, selected))
	return g
}

// Bounds of a gate.
const (
	// eps lets a figure at its bound pass whatever the rounding of the
	// arithmetic that computed it (1 - 0.95 > 0.05 in floating point).
	eps = 1e-9

	MaxRatio      = 100
	MaxDrainSlack = 100 // percentage points a day
)

// Validate says why a gate cannot judge, wrapping ErrInvalid, or nil.
func (g Gate) Validate() error {
	switch {
	case g.MinDevices < 0 || g.MinDevices > MaxMinDevices:
		return invalid("gate min devices %d, want 0 to %d", g.MinDevices, MaxMinDevices)
	case !within(g.MaxAnomalyRatio, 1, MaxRatio) || !within(g.MaxDrainRatio, 1, MaxRatio):
		return invalid("gate ratios %v (anomalies) and %v (drain), want 1 to %d", g.MaxAnomalyRatio, g.MaxDrainRatio, MaxRatio)
	case !within(g.AnomalySlack, 0, 1) || !within(g.MaxAckDrop, 0, 1):
		return invalid("gate anomaly slack %v and ACK drop %v, want 0 to 1", g.AnomalySlack, g.MaxAckDrop)
	case !within(g.DrainSlack, 0, MaxDrainSlack):
		return invalid("gate drain slack %v, want 0 to %d", g.DrainSlack, MaxDrainSlack)
	}
	return nil
}

// within is lo <= x <= hi, false for NaN.
func within(x, lo, hi float64) bool { return x >= lo && x <= hi }

func (c Cohort) validate() error {
	switch {
	case c.Devices < 0 || c.Anomalous < 0 || c.Anomalous > c.Devices:
		return invalid("%d anomalous of %d devices", c.Anomalous, c.Devices)
	case c.Sent < 0 || c.Acked < 0 || c.Acked > c.Sent || (c.Devices == 0 && c.Sent > 0):
		return invalid("%d packets acknowledged of %d sent by %d devices", c.Acked, c.Sent, c.Devices)
	case !within(c.BatteryDrainPerDay, 0, math.MaxFloat64) || (c.Devices == 0 && c.BatteryDrainPerDay > 0):
		return invalid("battery drain %v points a day of %d devices, want a finite drain, 0 without devices", c.BatteryDrainPerDay, c.Devices)
	}
	for k, n := range c.AnomaliesByKind {
		if k == "" || n < 0 || n > c.Anomalous {
			return invalid("%d devices with anomaly %q of %d anomalous", n, k, c.Anomalous)
		}
	}
	return nil
}

// Outcome is what a verdict lets a rollout do.
type Outcome uint8

// Outcomes. The zero Outcome is Wait, so a verdict never set holds a
// rollout where it is.
const (
	Wait Outcome = iota // too little to judge: stay
	OK                  // healthy: advance once soaked
	Fail                // worse than the baseline, or absurd figures: pause
)

func (o Outcome) String() string {
	switch o {
	case Wait:
		return "Wait"
	case OK:
		return "OK"
	case Fail:
		return "Fail"
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}

// Verdict is a judgement of a stage's health, with the reason an operator
// reads: the signal and both cohorts' figures.
type Verdict struct {
	Outcome Outcome
	Reason  string
}

// Judge compares the updated devices with the baseline. Figures that
// cannot be true (negative, NaN, more anomalous devices than devices) or
// an invalid gate Fail, so that a bug upstream alerts rather than passes;
// too few updated devices, no baseline, or no packets yet Wait. Every
// signal out of bounds is named, not just the first.
func Judge(updated, baseline Cohort, g Gate) Verdict {
	if err := g.Validate(); err != nil {
		return Verdict{Fail, err.Error()}
	}
	if err := updated.validate(); err != nil {
		return Verdict{Fail, "updated devices: " + err.Error()}
	}
	if err := baseline.validate(); err != nil {
		return Verdict{Fail, "baseline devices: " + err.Error()}
	}
	if need := max(1, g.MinDevices); updated.Devices < need {
		return Verdict{Wait, fmt.Sprintf("%d updated devices observed, %d needed", updated.Devices, need)}
	}
	if baseline.Devices == 0 {
		return Verdict{Wait, "no device left that is not updated to compare with"}
	}
	fails := anomalies(updated, baseline, g)
	if f := drain(updated, baseline, g); f != "" {
		fails = append(fails, f)
	}
	ack, ok := "", true
	if !g.NoAcks {
		ack, ok = acks(updated, baseline, g)
	}
	if ok && ack != "" {
		fails = append(fails, ack)
	}
	switch {
	case len(fails) > 0:
		return Verdict{Fail, strings.Join(fails, "; ")}
	case !ok:
		return Verdict{Wait, ack}
	}
	return Verdict{OK, fmt.Sprintf("%d updated devices within the bounds of %d others", updated.Devices, baseline.Devices)}
}

// anomalies names the anomaly shares out of bounds: any anomaly, then
// each kind in order.
func anomalies(u, b Cohort, g Gate) []string {
	var fails []string
	check := func(what string, nu, nb int) {
		su, sb := float64(nu)/float64(u.Devices), float64(nb)/float64(b.Devices)
		if bound := max(sb*g.MaxAnomalyRatio, sb+g.AnomalySlack); su > bound+eps {
			fails = append(fails, fmt.Sprintf("%s: %d of %d updated devices (%.1f%%), above %.1f%%; baseline %d of %d (%.1f%%)",
				what, nu, u.Devices, 100*su, 100*bound, nb, b.Devices, 100*sb))
		}
	}
	check("devices with an anomaly", u.Anomalous, b.Anomalous)
	kinds := slices.Collect(maps.Keys(u.AnomaliesByKind))
	slices.Sort(kinds)
	for _, k := range kinds {
		check("devices with "+string(k), u.AnomaliesByKind[k], b.AnomaliesByKind[k])
	}
	return fails
}

// drain names a battery drain out of bounds, or returns "".
func drain(u, b Cohort, g Gate) string {
	du, db := u.BatteryDrainPerDay, b.BatteryDrainPerDay
	if bound := max(db*g.MaxDrainRatio, db+g.DrainSlack); du > bound+eps {
		return fmt.Sprintf("battery drain: %.2f points a day on updated devices, above %.2f; baseline %.2f", du, bound, db)
	}
	return ""
}

// acks names an ACK rate out of bounds, or returns ""; ok is false, with
// why, when a cohort has no packet to judge by. The updated devices' rate
// is a sample, small in the first stages: the drop allowed widens by two
// standard errors of it, so that 2 replies lost of 34 (94%, against a
// baseline of 100%) is noise, while 60 of 1000 is not.
func acks(u, b Cohort, g Gate) (fail string, ok bool) {
	if u.Sent == 0 || b.Sent == 0 {
		return fmt.Sprintf("no packets to judge ACKs by: %d sent by updated devices, %d by the baseline", u.Sent, b.Sent), false
	}
	ru, rb := float64(u.Acked)/float64(u.Sent), float64(b.Acked)/float64(b.Sent)
	// The error of a rate near 1 or 0 is taken at no less than that of
	// one reply in the sample either way, so a clean sample still has
	// a margin.
	p := min(max(ru, 1/float64(u.Sent)), 1-1/float64(u.Sent))
	margin := 2 * math.Sqrt(max(p*(1-p), 0)/float64(u.Sent))
	if rb-ru > g.MaxAckDrop+margin+eps {
		return fmt.Sprintf("ACK rate: %.1f%% (%d of %d) on updated devices, more than %.1f points (%.1f and %.1f for the sample's size) below the baseline's %.1f%% (%d of %d)",
			100*ru, u.Acked, u.Sent, 100*(g.MaxAckDrop+margin), 100*g.MaxAckDrop, 100*margin, 100*rb, b.Acked, b.Sent), true
	}
	return "", true
}
