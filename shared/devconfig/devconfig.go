// Package devconfig is what a device's configuration may hold: the
// settings, their ranges per device type, and the reason codes a sensor
// gives when it refuses one. The API checks a configuration here before it
// is stored, ingest turns a stored one into the sealed reply's, and the
// sensor checks what it receives against the same rules.
package devconfig

import (
	"errors"
	"fmt"
)

// Config is one configuration. A zero field is "not set": the sensor
// keeps what it runs.
type Config struct {
	// SampleInterval is the seconds between readings.
	SampleInterval uint32 `json:"sampleIntervalSeconds,omitempty" firestore:"sampleInterval,omitempty"`
	// ReportInterval is the longest a reading waits before it is sent,
	// in seconds.
	ReportInterval uint32 `json:"reportIntervalSeconds,omitempty" firestore:"reportInterval,omitempty"`
	// Batch is the readings a sensor collects before it transmits.
	Batch uint32 `json:"batchSize,omitempty" firestore:"batch,omitempty"`
	// TxPower is the radio's transmit power in dBm, for the types that
	// can change it; nil leaves it.
	TxPower *int32 `json:"txPowerDbm,omitempty" firestore:"txPower,omitempty"`
}

// Limits are one device type's ranges.
type Limits struct {
	SampleMin, SampleMax uint32
	ReportMin, ReportMax uint32
	BatchMax             uint32
	// TxPower is false for types whose radio power is fixed.
	TxPower          bool
	TxMin, TxMax     int32
	DefaultSample    uint32
	DefaultReport    uint32
	DefaultBatchSize uint32
}

// Common ranges: a reading at most every 10 s (the radio's duty cycle)
// and at least daily; a batch fits one packet (payload.MaxReadings).
const (
	minInterval = 10
	maxInterval = 86400
	maxBatch    = 32
)

// limits are the device types' ranges, one for each sensor type of
// shared/devicetype. Touch, water, counting, motion, desk and contact
// sensors report events as they happen, so their sampling is their
// heartbeat, and each event goes out at once; only the mains-capable CO2
// sensor (whose pressure readings come with its CO2) may raise its
// transmit power.
var limits = map[string]Limits{
	"temperature":      {SampleMin: minInterval, SampleMax: maxInterval, ReportMin: minInterval, ReportMax: maxInterval, BatchMax: maxBatch, DefaultSample: 900, DefaultReport: 900, DefaultBatchSize: 1},
	"humidity":         {SampleMin: minInterval, SampleMax: maxInterval, ReportMin: minInterval, ReportMax: maxInterval, BatchMax: maxBatch, DefaultSample: 900, DefaultReport: 900, DefaultBatchSize: 1},
	"co2":              {SampleMin: 60, SampleMax: maxInterval, ReportMin: 60, ReportMax: maxInterval, BatchMax: maxBatch, TxPower: true, TxMin: 0, TxMax: 14, DefaultSample: 900, DefaultReport: 900, DefaultBatchSize: 1},
	"proximity":        {SampleMin: minInterval, SampleMax: maxInterval, ReportMin: minInterval, ReportMax: maxInterval, BatchMax: maxBatch, DefaultSample: 900, DefaultReport: 900, DefaultBatchSize: 1},
	"touch":            eventLimits,
	"waterDetector":    eventLimits,
	"proximityCounter": eventLimits,
	"touchCounter":     eventLimits,
	"motion":           eventLimits,
	"deskOccupancy":    eventLimits,
	"contact":          eventLimits,
}

// eventLimits are the ranges of a sensor that reports events as they
// happen.
var eventLimits = Limits{SampleMin: 300, SampleMax: maxInterval, ReportMin: minInterval, ReportMax: maxInterval, BatchMax: 1, DefaultSample: 900, DefaultReport: 900, DefaultBatchSize: 1}

// For returns a device type's ranges.
func For(deviceType string) (Limits, bool) {
	l, ok := limits[deviceType]
	return l, ok
}

// Reason is why a sensor refused a configuration; 0 means it applied it.
type Reason uint8

// Reason codes, as sensors send them.
const (
	Applied      Reason = 0
	OutOfRange   Reason = 1 // a value outside the sensor's ranges
	Unsupported  Reason = 2 // a setting the sensor's hardware does not have
	StaleVersion Reason = 3 // older than the configuration it runs
)

func (r Reason) String() string {
	switch r {
	case Applied:
		return "APPLIED"
	case OutOfRange:
		return "OUT_OF_RANGE"
	case Unsupported:
		return "UNSUPPORTED"
	case StaleVersion:
		return "STALE_VERSION"
	}
	return fmt.Sprintf("REASON_%d", uint8(r))
}

// ErrInvalid is a configuration outside its device type's ranges.
var ErrInvalid = errors.New("devconfig: invalid configuration")

// Check reports why c cannot run on a device of type deviceType, with
// the reason code a sensor would give, or nil.
func Check(deviceType string, c Config) (Reason, error) {
	l, ok := For(deviceType)
	if !ok {
		return Unsupported, fmt.Errorf("%w: device type %q takes no configuration", ErrInvalid, deviceType)
	}
	if c == (Config{}) {
		return OutOfRange, fmt.Errorf("%w: no setting", ErrInvalid)
	}
	if r, err := l.checkIntervals(c); err != nil {
		return r, err
	}
	switch {
	case c.Batch > l.BatchMax:
		return OutOfRange, fmt.Errorf("%w: batchSize %d outside 1..%d", ErrInvalid, c.Batch, l.BatchMax)
	case c.TxPower != nil && !l.TxPower:
		return Unsupported, fmt.Errorf("%w: a %s sensor's transmit power is fixed", ErrInvalid, deviceType)
	case c.TxPower != nil && (*c.TxPower < l.TxMin || *c.TxPower > l.TxMax):
		return OutOfRange, fmt.Errorf("%w: txPowerDbm %d outside %d..%d", ErrInvalid, *c.TxPower, l.TxMin, l.TxMax)
	}
	return Applied, nil
}

func (l Limits) checkIntervals(c Config) (Reason, error) {
	switch {
	case c.SampleInterval != 0 && (c.SampleInterval < l.SampleMin || c.SampleInterval > l.SampleMax):
		return OutOfRange, fmt.Errorf("%w: sampleIntervalSeconds %d outside %d..%d", ErrInvalid, c.SampleInterval, l.SampleMin, l.SampleMax)
	case c.ReportInterval != 0 && (c.ReportInterval < l.ReportMin || c.ReportInterval > l.ReportMax):
		return OutOfRange, fmt.Errorf("%w: reportIntervalSeconds %d outside %d..%d", ErrInvalid, c.ReportInterval, l.ReportMin, l.ReportMax)
	}
	return Applied, nil
}
