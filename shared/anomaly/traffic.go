package anomaly

import (
	"math"
	"slices"
	"time"
)

// Traffic is the state the packet transaction keeps: silence, the reading
// sequence and the battery. Sequence numbers are uint64, which Firestore
// cannot store, so they are kept as the int64 with the same bits.
type Traffic struct {
	// LastPacket is when the latest packet was observed.
	LastPacket time.Time `firestore:"lastPacket,omitempty"`
	// Gap is the learned time between packets that carry the newest
	// readings (EWMA), learned from Gaps samples.
	Gap  time.Duration `firestore:"gap,omitempty"`
	Gaps int64         `firestore:"gaps,omitempty"`
	// Expected is the interval SilentAt was computed from (configured or
	// learned), SilentAt the silence deadline; zero when none is known.
	Expected time.Duration `firestore:"expected,omitempty"`
	SilentAt time.Time     `firestore:"silentAt,omitempty"`

	// Epoch is the boot epoch the sequence state belongs to; StaleEpochs
	// counts packets in a row from an older one.
	Epoch       uint32 `firestore:"epoch,omitempty"`
	StaleEpochs int64  `firestore:"staleEpochs,omitempty"`
	// Readings counts the new readings seen in this epoch; 0 means no
	// baseline yet.
	Readings int64 `firestore:"readings,omitempty"`
	// Highest is the highest sequence number seen (uint64 bits), first
	// seen at HighestAt.
	Highest   int64     `firestore:"highest,omitempty"`
	HighestAt time.Time `firestore:"highestAt,omitempty"`
	// Owing says the sensor may still send, as new, the readings
	// OwedLow..OwedHigh (uint64 bits): it sends its newest unsent
	// readings first, so after a gap the older ones arrive below the
	// highest.
	Owing    bool  `firestore:"owing,omitempty"`
	OwedLow  int64 `firestore:"owedLow,omitempty"`
	OwedHigh int64 `firestore:"owedHigh,omitempty"`
	// Rate is the learned readings per second (EWMA of Rates samples).
	Rate  float64 `firestore:"rate,omitempty"`
	Rates int64   `firestore:"rates,omitempty"`
	// Clean counts packets in a row without a counter anomaly while one
	// is open.
	Clean int64 `firestore:"clean,omitempty"`

	// BatteryRef is the battery level drops are measured from, read at
	// BatteryRefAt (zero: none yet).
	BatteryRef   int64     `firestore:"batteryRef,omitempty"`
	BatteryRefAt time.Time `firestore:"batteryRefAt,omitempty"`
	// DrainFrom is the level when BATTERY_DRAIN opened, at DrainFromAt.
	DrainFrom   int64     `firestore:"drainFrom,omitempty"`
	DrainFromAt time.Time `firestore:"drainFromAt,omitempty"`
}

// Packet is what one decrypted uplink tells the detectors.
type Packet struct {
	// At is when the cloud received it.
	At time.Time
	// Epoch is the boot epoch; a new one is a reset: sequence state
	// restarts, and it is no COUNTER_BACKWARDS.
	Epoch uint32
	// Seqs are the sequence numbers of the packet's NEW (not backfilled)
	// readings.
	Seqs []uint64
	// Battery are the packet's battery readings, new or backfilled.
	Battery []BatteryReading
	// Interval is the configured time between packets (sample interval
	// × batch), 0 when unknown: then the learned gap is used.
	Interval time.Duration
	// DeviceType chooses the normal battery curve.
	DeviceType string
}

// BatteryReading is one battery level, in percent, as the sensor read it.
type BatteryReading struct {
	Percentage int
	At         time.Time
}

// ObservePacket runs the packet transaction's detectors: it clears
// SILENT, checks the sequence numbers (COUNTER_JUMP, COUNTER_BACKWARDS)
// and the battery (BATTERY_DRAIN), and moves the silence deadline. open is
// not modified.
func ObservePacket(t Traffic, open map[Kind]Open, p Packet, s Settings) (Traffic, []Change) {
	s = s.sane()
	t.repair(s)
	at := p.At
	if !sane(at) {
		at = time.Time{}
	}
	when := at
	if when.IsZero() {
		when = t.LastPacket
	}
	var out []Change
	if o, ok := open[Silent]; ok {
		// Any packet proves the device alive again.
		out = append(out, cleared(o, Silent, when, map[string]any{"lastPacket": t.LastPacket}))
	}
	prevHighestAt := t.HighestAt
	regular, ch := t.observeSeqs(p, at, when, open, s)
	out = append(out, ch...)
	if !at.IsZero() {
		if regular && !isOpen(open, Silent) {
			t.learnGap(at.Sub(prevHighestAt), prevHighestAt, s)
		}
		if at.After(t.LastPacket) || !sane(t.LastPacket) {
			t.LastPacket = at
		}
	}
	t.deadline(p.Interval, s)
	out = append(out, t.observeBattery(open, p.Battery, p.DeviceType, s)...)
	return t, out
}

// repair resets what no version of this package stores (a hand-edited or
// corrupted document), so that nonsense is relearned rather than trusted.
func (t *Traffic) repair(s Settings) {
	if t.Gap < 0 || t.Gap > s.SilentCap || t.Gaps < 0 {
		t.Gap, t.Gaps = 0, 0
	}
	if !(t.Rate >= 0 && t.Rate <= maxRate) || t.Rates < 0 {
		t.Rate, t.Rates = 0, 0
	}
	if t.Readings < 0 || (t.Owing && uint64(t.OwedLow) > uint64(t.OwedHigh)) {
		t.Readings, t.Owing, t.OwedLow, t.OwedHigh = 0, false, 0, 0
	}
	t.Clean, t.StaleEpochs = max(t.Clean, 0), max(t.StaleEpochs, 0)
	if t.BatteryRef < 0 || t.BatteryRef > 100 {
		t.BatteryRef, t.BatteryRefAt = 0, time.Time{}
	}
}

// learnGap learns the gap between packets that raised the highest reading,
// so that backfill and catch-up packets (which may come in bursts) never
// shorten it. A gap past the silence deadline is an outage, not a gap.
func (t *Traffic) learnGap(g time.Duration, prev time.Time, s Settings) {
	if !sane(prev) || g <= 0 || g > s.SilentCap {
		return
	}
	if t.Gaps >= s.LearnGaps && float64(g) > s.SilentFactor*float64(t.Gap) {
		return
	}
	a := max(1/float64(t.Gaps+1), s.GapAlpha)
	t.Gap += time.Duration(a * float64(g-t.Gap))
	t.Gaps = satInc(t.Gaps)
}

// deadline sets SilentAt from the configured interval, else from the
// learned gap once it is learned.
func (t *Traffic) deadline(interval time.Duration, s Settings) {
	expect := interval
	if expect <= 0 && t.Gaps >= s.LearnGaps && t.Gap > 0 {
		expect = t.Gap
	}
	if expect <= 0 || !sane(t.LastPacket) {
		t.Expected, t.SilentAt = 0, time.Time{}
		return
	}
	expect = min(expect, s.SilentCap)
	span := min(s.SilentFactor*float64(expect), float64(s.SilentCap))
	span = max(span, float64(s.SilentFloor))
	t.Expected, t.SilentAt = expect, t.LastPacket.Add(time.Duration(span))
}

// reviewSilence opens SILENT once the deadline has passed.
func reviewSilence(t Traffic, open map[Kind]Open, now time.Time) (Change, bool) {
	if isOpen(open, Silent) || !sane(t.SilentAt) || now.Before(t.SilentAt) {
		return Change{}, false
	}
	factor := 0.0
	if t.Expected > 0 {
		factor = finite(float64(t.SilentAt.Sub(t.LastPacket)) / float64(t.Expected))
	}
	ev := map[string]any{
		"lastPacket":              t.LastPacket,
		"expectedIntervalSeconds": seconds(t.Expected),
		"factor":                  factor,
	}
	return opened(Silent, Warning, t.SilentAt, now, ev), true
}

// maxRate bounds a learned reading rate (readings per second). The fastest
// configuration takes a reading every 10 s; 100 a second is far beyond any
// sensor and keeps absurd input from growing the rate without end.
const maxRate = 100

// observeSeqs checks the packet's new sequence numbers against the highest
// seen in the epoch. regular reports that the packet raised the highest
// without a jump: a packet carrying the sensor's newest readings on time.
func (t *Traffic) observeSeqs(p Packet, at, when time.Time, open map[Kind]Open, s Settings) (regular bool, out []Change) {
	if len(p.Seqs) == 0 || !t.epoch(p.Epoch, s) {
		return false, nil
	}
	hi := slices.Max(p.Seqs)
	if t.Readings == 0 {
		// A baseline. What came before it is unknown, so anything the
		// backlog could hold below it may still arrive.
		t.Highest, t.HighestAt = int64(hi), at
		t.Owing, t.OwedLow, t.OwedHigh = true, int64(satSub(hi, s.MaxBacklog)), int64(hi)
		t.Readings = satAdd(0, int64(len(p.Seqs)))
		return false, nil
	}
	high := uint64(t.Highest)
	back, backSeq := t.behind(p.Seqs, high, s)
	jump, allowed := false, 0.0
	if hi > high {
		allowed = t.allowedJump(at, s)
		jump = float64(hi-high) > allowed
		t.owe(p.Seqs, high, hi, s)
		if !jump {
			t.learnRate(float64(hi-high), at, s)
		}
		t.Highest = int64(hi)
		if !at.IsZero() {
			t.HighestAt = at
		}
	}
	t.Readings = satAdd(t.Readings, int64(len(p.Seqs)))
	if jump && !isOpen(open, CounterJump) {
		out = append(out, opened(CounterJump, Critical, when, when, map[string]any{
			"epoch": int64(p.Epoch), "previousHighest": seqString(high), "got": seqString(hi),
			"allowed": seqString(uint64(min(allowed, math.MaxUint64/2))),
		}))
	}
	if back > 0 && !isOpen(open, CounterBackwards) {
		out = append(out, opened(CounterBackwards, Critical, when, when, map[string]any{
			"epoch": int64(p.Epoch), "highest": seqString(high), "got": seqString(backSeq),
			"behind": seqString(back),
		}))
	}
	out = append(out, t.clean(jump || back > 0, open, when, s)...)
	return hi > high && !jump, out
}

// epoch moves the sequence state to the packet's epoch and reports whether
// the packet's numbers can be judged. A newer epoch is a reset. An older one
// is a packet from before a reset delivered late, and is not judged; but
// CleanPackets of them in a row mean the sensor's epoch itself went back
// (lost flash), and are adopted, so checking is not blind for ever.
func (t *Traffic) epoch(e uint32, s Settings) bool {
	switch {
	case e == t.Epoch && t.Readings > 0:
		t.StaleEpochs = 0
		return true
	case e < t.Epoch && t.Readings > 0:
		t.StaleEpochs = satInc(t.StaleEpochs)
		if t.StaleEpochs < s.CleanPackets {
			return false
		}
	}
	t.Epoch, t.StaleEpochs, t.Readings = e, 0, 0
	t.Highest, t.HighestAt = 0, time.Time{}
	t.Owing, t.OwedLow, t.OwedHigh = false, 0, 0
	return true
}

// behind returns the farthest a new reading fell below high that neither
// reordering nor an owed gap explains (0: none), and that reading; and it
// narrows the owed range: the sensor sends owed readings newest first, so
// none far above the lowest one seen is still to come.
func (t *Traffic) behind(seqs []uint64, high uint64, s Settings) (worst, seq uint64) {
	lowOwed, sawOwed := uint64(math.MaxUint64), false
	for _, q := range seqs {
		if q >= high || high-q <= s.ReorderAllowance {
			continue
		}
		if t.Owing && q >= uint64(t.OwedLow) && q <= uint64(t.OwedHigh) {
			lowOwed, sawOwed = min(lowOwed, q), true
			continue
		}
		if high-q > worst {
			worst, seq = high-q, q
		}
	}
	if sawOwed {
		t.OwedHigh = int64(min(uint64(t.OwedHigh), satAddU(lowOwed, s.ReorderAllowance)))
	}
	return worst, seq
}

// owe records the readings skipped between the old highest and the lowest
// of the packet's numbers above it, as the sensor may still send them, and
// forgets what the sensor's backlog can no longer hold.
func (t *Traffic) owe(seqs []uint64, high, hi uint64, s Settings) {
	floor := satSub(hi, s.MaxBacklog)
	lowAbove := hi
	for _, q := range seqs {
		if q > high {
			lowAbove = min(lowAbove, q)
		}
	}
	if lowAbove > high+1 {
		from, to := max(high+1, floor), lowAbove-1
		if from <= to {
			if t.Owing {
				from, to = min(from, uint64(t.OwedLow)), max(to, uint64(t.OwedHigh))
			}
			t.Owing, t.OwedLow, t.OwedHigh = true, int64(from), int64(to)
		}
	}
	if t.Owing {
		t.OwedLow = int64(max(uint64(t.OwedLow), floor))
		if uint64(t.OwedLow) > uint64(t.OwedHigh) {
			t.Owing, t.OwedLow, t.OwedHigh = false, 0, 0
		}
	}
}

// allowedJump is how far above the highest the newest reading may be: what
// the backlog can hold, plus what the learned rate explains over the time
// since the highest (with slack), or a generous constant before a rate is
// learned.
func (t *Traffic) allowedJump(at time.Time, s Settings) float64 {
	base := float64(s.MaxBacklog)
	if t.Rates < s.LearnRates || at.IsZero() || !sane(t.HighestAt) || !(t.Rate >= 0) {
		return base + float64(s.UnlearnedJump)
	}
	elapsed := max(at.Sub(t.HighestAt).Seconds(), 0)
	return base + s.JumpRateSlack*min(t.Rate, maxRate)*elapsed
}

// learnRate learns the readings per second from the highest's advance.
// Advances less than a second apart (packets overtaking each other) say
// nothing about the rate.
func (t *Traffic) learnRate(advance float64, at time.Time, s Settings) {
	if at.IsZero() || !sane(t.HighestAt) {
		return
	}
	dt := at.Sub(t.HighestAt).Seconds()
	if dt < 1 {
		return
	}
	sample := min(advance/dt, maxRate)
	a := max(1/float64(t.Rates+1), s.RateAlpha)
	t.Rate += a * (sample - t.Rate)
	t.Rates = satInc(t.Rates)
}

// clean counts packets without a counter anomaly while one is open, and
// clears the open ones after CleanPackets in a row.
func (t *Traffic) clean(dirty bool, open map[Kind]Open, when time.Time, s Settings) []Change {
	jo, jOpen := open[CounterJump]
	bo, bOpen := open[CounterBackwards]
	if dirty || (!jOpen && !bOpen) {
		t.Clean = 0
		return nil
	}
	t.Clean = satInc(t.Clean)
	if t.Clean < s.CleanPackets {
		return nil
	}
	t.Clean = 0
	ev := map[string]any{"cleanPackets": s.CleanPackets}
	var out []Change
	if jOpen {
		out = append(out, cleared(jo, CounterJump, when, ev))
	}
	if bOpen {
		out = append(out, cleared(bo, CounterBackwards, when, ev))
	}
	return out
}

// Saturating arithmetic: absurd input must not wrap a counter around.
func satInc(v int64) int64 { return satAdd(v, 1) }

func satAdd(v, d int64) int64 {
	if v > math.MaxInt64-d {
		return math.MaxInt64
	}
	return v + d
}

func satSub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

func satAddU(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}
