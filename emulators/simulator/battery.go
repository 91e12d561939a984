package simulator

import (
	"math"
	"sync"
	"time"
)

// secondsPerDay converts BatteryDrainPerDay to a rate per second.
const secondsPerDay = 24 * 60 * 60

// battery is a sensor's charge, in points of 100: its level at a moment
// and the rate it falls at since, so it drains with time, not with the
// number of readings taken.
type battery struct {
	mu    sync.Mutex
	level float64 // at `at`
	at    time.Time
	rate  float64 // points per second of real time
}

// normalDrain is BatteryDrainPerDay in points per second of real time.
func (s *Simulator) normalDrain() float64 {
	return max(0, s.cfg.BatteryDrainPerDay) * s.cfg.TimeScale / secondsPerDay
}

// levelAt is the charge at now, between 0 and 100.
func (b *battery) levelAt(now time.Time) float64 {
	return min(100, max(0, b.level-b.rate*now.Sub(b.at).Seconds()))
}

// set makes the battery hold level at now, falling at rate from then on.
func (b *battery) set(now time.Time, level, rate float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.level, b.at, b.rate = level, now, rate
}

// drain makes the battery fall at rate from now on, from where it is.
func (b *battery) drain(now time.Time, rate float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.level, b.at, b.rate = b.levelAt(now), now, rate
}

// percent is what the sensor's battery reading says at now: the charge
// in whole points.
func (b *battery) percent(now time.Time) uint8 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return uint8(math.Round(b.levelAt(now)))
}
