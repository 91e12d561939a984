package rollout

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/sealedsense/sealedsense/shared/event"
)

// Bounds of a plan. A stage's Percent selects the buckets below
// Percent × Buckets / 100, rounded, so MinPercent (one bucket) is the
// finest step.
const (
	Buckets        = 10000
	MinPercent     = 100.0 / Buckets
	MaxStages      = 10
	MaxSoak        = 30 * 24 * time.Hour
	MaxMinDevices  = 1_000_000
	MaxStageLabels = 16
	maxLabelValue  = 255 // as the device API allows
)

// ErrInvalid is wrapped by every error about an input out of its bounds: a
// plan, a state, a gate or a reason.
var ErrInvalid = errors.New("rollout: invalid")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Stage is one step of a plan.
type Stage struct {
	// Percent of the devices, by bucket, that the stage reaches.
	Percent float64
	// Labels restricts the stage to devices carrying every one of them;
	// empty reaches any device.
	Labels map[string]string
	// Soak is the least time the stage runs, healthy, before the next.
	Soak time.Duration
	// MinDevices is how many updated devices must be observed before the
	// stage is judged (see Gate.For).
	MinDevices int
}

// Plan is a rollout's stages in order. Each stage reaches every device the
// one before it reached, and more, so no device updated is ever left out of
// a later stage: Percent never decreases, Labels only drops requirements,
// and one of the two changes. The last stage is at 100%.
type Plan []Stage

// DefaultPlan is 1%, then 10%, then every device: a few devices find a
// crash or a drain within an hour, a tenth of the fleet shows what only a
// larger sample does (a rare fault, a radio environment) within six.
func DefaultPlan() Plan {
	return Plan{
		{Percent: 1, Soak: time.Hour, MinDevices: 10},
		{Percent: 10, Soak: 6 * time.Hour, MinDevices: 50},
		{Percent: 100, MinDevices: 100},
	}
}

// Validate says why a plan cannot run, wrapping ErrInvalid, or nil.
func (p Plan) Validate() error {
	if len(p) == 0 || len(p) > MaxStages {
		return invalid("plan of %d stages, want 1 to %d", len(p), MaxStages)
	}
	for i, s := range p {
		if err := s.validate(); err != nil {
			return fmt.Errorf("stage %d: %w", i, err)
		}
		if i > 0 {
			if err := grows(p[i-1], s); err != nil {
				return fmt.Errorf("stage %d: %w", i, err)
			}
		}
	}
	if last := p[len(p)-1].Percent; last != 100 {
		return invalid("last stage at %v%%, want 100%%", last)
	}
	return nil
}

func (s Stage) validate() error {
	if !(s.Percent >= MinPercent && s.Percent <= 100) {
		return invalid("percent %v, want %v to 100", s.Percent, MinPercent)
	}
	if s.Soak < 0 || s.Soak > MaxSoak {
		return invalid("soak %v, want 0 to %v", s.Soak, MaxSoak)
	}
	if s.MinDevices < 0 || s.MinDevices > MaxMinDevices {
		return invalid("min devices %d, want 0 to %d", s.MinDevices, MaxMinDevices)
	}
	if len(s.Labels) > MaxStageLabels {
		return invalid("%d labels, want at most %d", len(s.Labels), MaxStageLabels)
	}
	for k, v := range s.Labels {
		if !event.ValidLabelKey(k) || len(v) > maxLabelValue {
			return invalid("label %q=%q: a key of 1 to 63 of A-Z a-z 0-9 _ - . and a value of at most %d bytes", k, v, maxLabelValue)
		}
	}
	return nil
}

// grows says why s does not reach every device prev reaches, and more.
func grows(prev, s Stage) error {
	if s.Percent < prev.Percent {
		return invalid("percent %v below the previous stage's %v", s.Percent, prev.Percent)
	}
	for k, v := range s.Labels {
		if pv, ok := prev.Labels[k]; !ok || pv != v {
			return invalid("label %s=%s not required by the previous stage, whose devices would not all stay in", k, v)
		}
	}
	if s.buckets() == prev.buckets() && len(s.Labels) == len(prev.Labels) {
		return invalid("reaches the same devices as the previous stage")
	}
	return nil
}

// buckets is how many buckets the stage reaches: Percent × Buckets / 100,
// rounded, so that a percent written in decimal (64.87) means what it says
// whatever its binary rounding.
func (s Stage) buckets() int {
	return int(math.Round(s.Percent * Buckets / 100))
}

// Bucket is a device's place in a rollout, in [0, Buckets): the first 8
// bytes of SHA-256(rolloutID NUL deviceID), big-endian, modulo Buckets. It
// is stable, so a device keeps its place as stages grow, and differs between
// rollouts, so the same devices do not always go first. Neither id may be
// empty or hold a NUL, which would make two pairs hash alike.
func Bucket(rolloutID, deviceID string) (int, error) {
	for _, id := range []string{rolloutID, deviceID} {
		if id == "" || strings.IndexByte(id, 0) >= 0 {
			return 0, invalid("id %q: want a non-empty id without NUL", id)
		}
	}
	h := sha256.New()
	h.Write([]byte(rolloutID))
	h.Write([]byte{0})
	h.Write([]byte(deviceID))
	return int(binary.BigEndian.Uint64(h.Sum(nil)) % Buckets), nil
}

// InStage says whether stage s of the rollout reaches the device: its
// bucket is below the stage's count of buckets and it carries every label
// of the stage. An invalid id or percent reaches no device.
func InStage(rolloutID, deviceID string, labels map[string]string, s Stage) bool {
	b, err := Bucket(rolloutID, deviceID)
	if err != nil || !(s.Percent >= MinPercent && s.Percent <= 100) {
		return false
	}
	if b >= s.buckets() {
		return false
	}
	for k, v := range s.Labels {
		if dv, ok := labels[k]; !ok || dv != v {
			return false
		}
	}
	return true
}
