package anomaly

import (
	"slices"
	"time"
)

// observeBattery judges a packet's battery readings in the order they were
// read. Readings older than the reference (late backfill) say nothing new.
func (t *Traffic) observeBattery(open map[Kind]Open, rs []BatteryReading, deviceType string, s Settings) []Change {
	if len(rs) == 0 {
		return nil
	}
	rs = slices.Clone(rs)
	slices.SortStableFunc(rs, func(a, b BatteryReading) int { return a.At.Compare(b.At) })
	o, isOpen := open[BatteryDrain]
	var out []Change
	for _, r := range rs {
		if !sane(r.At) || r.Percentage < 0 || r.Percentage > 100 {
			continue
		}
		c, ok := t.battery(o, isOpen, int64(r.Percentage), r.At, s.drain(deviceType), s)
		if !ok {
			continue
		}
		out = append(out, c)
		o, isOpen = Open{Kind: c.Kind, Severity: c.Severity, Since: c.Since, Evidence: c.Evidence}, c.Opened
	}
	return out
}

// battery judges one reading against the reference, whose drop must reach
// MinDrop points at more than the normal drain × DrainSlack. normal is the
// device type's normal drain, in points a day.
func (t *Traffic) battery(o Open, open bool, pct int64, at time.Time, normal float64, s Settings) (Change, bool) {
	if !sane(t.BatteryRefAt) {
		t.BatteryRef, t.BatteryRefAt = pct, at
		return Change{}, false
	}
	if at.Before(t.BatteryRefAt) {
		return Change{}, false
	}
	// The level a rise is measured from: the reference, or while a drain
	// is open the level it was seen at, which is lower.
	from := t.BatteryRef
	if open && sane(t.DrainFromAt) {
		from = min(from, t.DrainFrom)
	}
	if pct >= from+s.MinDrop {
		// A rise as large as a drain: the battery was replaced.
		t.BatteryRef, t.BatteryRefAt = pct, at
		t.DrainFrom, t.DrainFromAt = 0, time.Time{}
		if open {
			return cleared(o, BatteryDrain, at, map[string]any{"reason": "replaced", "percentage": pct}), true
		}
		return Change{}, false
	}
	if open {
		return t.drainRecovered(o, pct, at, normal, s)
	}
	drop, span := t.BatteryRef-pct, days(at.Sub(t.BatteryRefAt))
	if drop >= s.MinDrop && float64(drop) > normal*s.DrainSlack*span {
		ev := map[string]any{
			"from": t.BatteryRef, "fromAt": t.BatteryRefAt, "to": pct, "at": at,
			// The rate over at least a minute: a step within one reading
			// interval would otherwise be infinite.
			"pointsPerDay":       float64(drop) / max(span, days(time.Minute)),
			"normalPointsPerDay": normal,
		}
		t.DrainFrom, t.DrainFromAt = pct, at
		return opened(BatteryDrain, Warning, at, at, ev), true
	}
	if at.Sub(t.BatteryRefAt) > s.BatteryHorizon {
		t.BatteryRef, t.BatteryRefAt = pct, at
	}
	return Change{}, false
}

// drainRecovered clears BATTERY_DRAIN once the drop since it opened is
// back within the normal drain, over at least the time the normal drain
// needs for MinDrop points (so that one reading cannot clear it).
func (t *Traffic) drainRecovered(o Open, pct int64, at time.Time, normal float64, s Settings) (Change, bool) {
	if !sane(t.DrainFromAt) {
		t.DrainFrom, t.DrainFromAt = pct, at
		return Change{}, false
	}
	span := days(at.Sub(t.DrainFromAt))
	if span < float64(s.MinDrop)/normal || float64(t.DrainFrom-pct) > normal*span {
		return Change{}, false
	}
	ev := map[string]any{"reason": "normal", "from": t.DrainFrom, "fromAt": t.DrainFromAt, "to": pct}
	t.BatteryRef, t.BatteryRefAt = pct, at
	t.DrainFrom, t.DrainFromAt = 0, time.Time{}
	return cleared(o, BatteryDrain, at, ev), true
}

func days(d time.Duration) float64 { return max(d.Hours()/24, 0) }
