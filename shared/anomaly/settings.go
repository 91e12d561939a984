package anomaly

import (
	"math"
	"time"
)

// Settings are the detectors' thresholds. A zero (or non-finite, or
// negative) field takes its default, so Settings{} is DefaultSettings().
type Settings struct {
	// SilentFactor is k: a device is silent when no packet came for k
	// times its reporting interval. 3 lets two packets in a row be lost
	// on the radio (no ACK, no retry yet) without an alarm.
	SilentFactor float64
	// SilentFloor is the shortest silence reported. A sensor that rekeys
	// sends nothing until the handshake is answered, and retries after
	// 5 s, then 10 s (HandshakeTimeout, doubling): two lost answers hold
	// packets back ~25 s on top of the interval. One minute covers that for
	// the fastest sensors (a reading every 10 s), whose k × interval is 30 s.
	SilentFloor time.Duration
	// SilentCap bounds the silence deadline, so that an absurd interval
	// cannot push it past what Firestore can store. The slowest
	// configuration (a reading a day, 32 per packet) reports every 32
	// days; 3 × 32 < 400.
	SilentCap time.Duration
	// LearnGaps is how many gaps between packets must be seen before the
	// learned gap sets a deadline (when the interval is not configured).
	// One gap can be an accident (two packets of a batch split by the
	// packet budget); three are a pattern.
	LearnGaps int64
	// GapAlpha is the weight of a new gap in the learned gap (EWMA): 0.1
	// remembers about the last 10 packets, so a changed configuration is
	// learned within a dozen packets while one late packet moves it
	// little.
	GapAlpha float64

	// MinHandshakeInterval is the fastest a genuine sensor starts
	// handshakes: at most one per HandshakeTimeout (5 s), with retries
	// backing off from there (shared/sensor: needsHandshake, backoff).
	MinHandshakeInterval time.Duration
	// FloodWindow is the window handshakes are counted in. One minute
	// sees a flood of 5 per second within 4 seconds.
	FloodWindow time.Duration
	// FloodSlack multiplies the sensor's own limit (FloodWindow /
	// MinHandshakeInterval, 12 a minute) before a window is a flood: 1.5
	// absorbs a reboot (whose first handshake goes out at once) and the
	// estimate's error at a window's edge.
	FloodSlack float64

	// MaxBacklog is the most readings a sensor keeps unacknowledged
	// (shared/sensor Config.MaxBacklog, 512). New readings below the
	// highest seen may legitimately arrive that far behind (a sensor
	// sends its newest readings first after a gap), and a jump that far
	// is within what one packet can reveal.
	MaxBacklog uint64
	// JumpRateSlack multiplies the readings the learned rate explains
	// over the time since the highest reading: 2 allows for a sensor
	// whose sample interval was halved while it was out of range.
	JumpRateSlack float64
	// UnlearnedJump is the jump (beyond MaxBacklog) allowed before a
	// reading rate is learned: 16384 readings are 170 days of the default
	// 15-minute sampling, or 45 hours at the fastest (10 s).
	UnlearnedJump uint64
	// LearnRates is how many rate samples make the reading rate learned.
	LearnRates int64
	// RateAlpha is the weight of a new sample in the learned reading
	// rate (EWMA).
	RateAlpha float64
	// ReorderAllowance is how far below the highest a new reading may
	// arrive without an owed gap explaining it: two full packets
	// (payload.MaxReadings, 32 readings each) overtaken on their way
	// through different connectors.
	ReorderAllowance uint64
	// CleanPackets is the run of packets, with new readings and neither a
	// jump nor a step back, that clears a counter anomaly.
	CleanPackets int64

	// LearnReceptions is the learning phase of the location detector:
	// no verdict before this many receptions (20 are a few hours at the
	// default interval, and enough for a variance).
	LearnReceptions int64
	// RSSIAlpha is the weight of a new reception in a connector's
	// learned RSSI and hear ratio after the learning phase (during it,
	// every reception counts equally). 0.05 remembers ~20 receptions.
	RSSIAlpha float64
	// RegularShare is the hear ratio that makes a connector a regular
	// hearer of a device, whose RSSI is then checked.
	RegularShare float64
	// MinLinkSamples is the receptions a connector must have heard
	// before its RSSI spread means anything.
	MinLinkSamples int64
	// ZScore is how many standard deviations from its learned mean a
	// regular hearer's RSSI must be to count as shifted: 4σ is rare
	// noise, while moving a sensor a room away shifts it 10-30 dB.
	ZScore float64
	// SigmaFloor is the smallest standard deviation assumed, in dB:
	// RSSI is integer-rounded and fields are noisy, so a connector that
	// happened to report the same value 20 times must not make 1 dB a
	// displacement.
	SigmaFloor float64
	// DisplacedShare is the share of the regular hearers of a reception
	// that must be shifted for it to be displaced. A moved sensor shifts
	// most of its hearers; a connector moved or re-oriented shifts only
	// itself, for every sensor it hears, which is not those sensors'
	// move. (With one regular hearer, one shift is enough.)
	DisplacedShare float64
	// DisplacedRun is how many displaced receptions in a row open
	// LOCATION_CHANGE, and how many normal ones in a row clear it: one
	// reflection or passing truck is not a move.
	DisplacedRun int64
	// MaxLinks bounds the connectors remembered per device (the least
	// heard goes), so a device document stays small.
	MaxLinks int
	// RelearnAfter is how long a device may stay displaced before its
	// new place is learned as its home: the change is then cleared, so a
	// sensor moved on purpose does not alarm for ever.
	RelearnAfter time.Duration

	// NormalDrain is the fastest normal battery drain per device type,
	// in percentage points a day; types not listed use DefaultDrain.
	NormalDrain map[string]float64
	// DefaultDrain is the normal drain of any type: 1 point a day is a
	// battery emptied in 100 days, while our sensors are specified for
	// years (a DT-class sensor: 15 years at the default 15-minute
	// interval, 0.02 points a day; a battery CO2 sensor sampling every 3
	// minutes still lasts over 3 years, 0.08 a day). Generous, because
	// the percentage follows the cell's voltage, which sags in the cold
	// and falls faster near the end.
	DefaultDrain float64
	// DrainSlack multiplies the normal drain before a drop is abnormal.
	DrainSlack float64
	// MinDrop is the smallest drop, in points, that can be a drain:
	// percentages are integers, so 1 or 2 points are rounding and noise.
	// A rise of as much means the battery was replaced.
	MinDrop int64
	// BatteryHorizon is the oldest a drain's reference reading may be:
	// older, the reference moves to the newest reading, so years of normal
	// drain do not hide a fast drain that starts now.
	BatteryHorizon time.Duration
}

// DefaultSettings returns the defaults documented on Settings.
func DefaultSettings() Settings {
	return Settings{
		SilentFactor:         3,
		SilentFloor:          time.Minute,
		SilentCap:            400 * 24 * time.Hour,
		LearnGaps:            3,
		GapAlpha:             0.1,
		MinHandshakeInterval: 5 * time.Second,
		FloodWindow:          time.Minute,
		FloodSlack:           1.5,
		MaxBacklog:           512,
		JumpRateSlack:        2,
		UnlearnedJump:        16384,
		LearnRates:           3,
		RateAlpha:            0.1,
		ReorderAllowance:     64,
		CleanPackets:         5,
		LearnReceptions:      20,
		RSSIAlpha:            0.05,
		RegularShare:         0.5,
		MinLinkSamples:       5,
		ZScore:               4,
		SigmaFloor:           3,
		DisplacedShare:       0.5,
		DisplacedRun:         3,
		MaxLinks:             16,
		RelearnAfter:         24 * time.Hour,
		DefaultDrain:         1,
		DrainSlack:           2,
		MinDrop:              3,
		BatteryHorizon:       7 * 24 * time.Hour,
	}
}

// sane returns s with every unusable field replaced by its default, so that
// no detector ever divides by zero or stores a NaN because of a setting.
func (s Settings) sane() Settings {
	d := DefaultSettings()
	pos := func(v *float64, def float64) {
		if !(*v > 0) || math.IsInf(*v, 0) {
			*v = def
		}
	}
	dur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	num := func(v *int64, def int64) {
		if *v <= 0 {
			*v = def
		}
	}
	pos(&s.SilentFactor, d.SilentFactor)
	dur(&s.SilentFloor, d.SilentFloor)
	dur(&s.SilentCap, d.SilentCap)
	num(&s.LearnGaps, d.LearnGaps)
	pos(&s.GapAlpha, d.GapAlpha)
	dur(&s.MinHandshakeInterval, d.MinHandshakeInterval)
	dur(&s.FloodWindow, d.FloodWindow)
	pos(&s.FloodSlack, d.FloodSlack)
	if s.MaxBacklog == 0 {
		s.MaxBacklog = d.MaxBacklog
	}
	pos(&s.JumpRateSlack, d.JumpRateSlack)
	if s.UnlearnedJump == 0 {
		s.UnlearnedJump = d.UnlearnedJump
	}
	num(&s.LearnRates, d.LearnRates)
	pos(&s.RateAlpha, d.RateAlpha)
	if s.ReorderAllowance == 0 {
		s.ReorderAllowance = d.ReorderAllowance
	}
	num(&s.CleanPackets, d.CleanPackets)
	num(&s.LearnReceptions, d.LearnReceptions)
	pos(&s.RSSIAlpha, d.RSSIAlpha)
	pos(&s.RegularShare, d.RegularShare)
	num(&s.MinLinkSamples, d.MinLinkSamples)
	pos(&s.ZScore, d.ZScore)
	pos(&s.SigmaFloor, d.SigmaFloor)
	pos(&s.DisplacedShare, d.DisplacedShare)
	num(&s.DisplacedRun, d.DisplacedRun)
	if s.MaxLinks <= 0 {
		s.MaxLinks = d.MaxLinks
	}
	dur(&s.RelearnAfter, d.RelearnAfter)
	pos(&s.DefaultDrain, d.DefaultDrain)
	pos(&s.DrainSlack, d.DrainSlack)
	num(&s.MinDrop, d.MinDrop)
	dur(&s.BatteryHorizon, d.BatteryHorizon)
	// Weights and shares are fractions.
	for _, v := range []*float64{&s.GapAlpha, &s.RateAlpha, &s.RSSIAlpha, &s.RegularShare, &s.DisplacedShare} {
		*v = min(*v, 1)
	}
	return s
}

// drain is the normal drain of a device type, in points a day.
func (s Settings) drain(deviceType string) float64 {
	if v, ok := s.NormalDrain[deviceType]; ok && v > 0 && !math.IsInf(v, 0) {
		return v
	}
	return s.DefaultDrain
}

// FloodThreshold is the handshakes in a FloodWindow above which
// HANDSHAKE_FLOOD opens: the sensor's own limit × FloodSlack.
func (s Settings) FloodThreshold() float64 {
	s = s.sane()
	return s.floodLimit() * s.FloodSlack
}

// floodLimit is the most handshakes a genuine sensor can start in a window.
func (s Settings) floodLimit() float64 {
	return float64(s.FloodWindow) / float64(s.MinHandshakeInterval)
}
