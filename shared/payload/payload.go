// Package payload is the CBOR (RFC 8949) carried inside sealed radio
// packets: readings and reports from sensor to cloud, and ACKs with optional
// configuration and software updates from cloud to sensor. Integer keys keep it small enough for
// the radio; decoding is strict because a bug in a sensor is untrusted input
// too.
package payload

import (
	"errors"
	"fmt"
	"math"

	"github.com/fxamacker/cbor/v2"
)

// ErrInvalid wraps every decoding and validation failure.
var ErrInvalid = errors.New("payload: invalid")

// Limits on one packet's payload.
const (
	MaxReadings = 32
	MaxSamples  = 8
	MaxAcks     = 64
	MaxReplies  = 16
)

// Reading ranges: what the sensors can measure. Pressure runs from below
// the air on the top of Everest (about 33 kPa) to above the highest sea
// level pressure recorded (108.4 kPa).
const (
	MinCelsius    = -60
	MaxCelsius    = 150
	MaxHumidity   = 100 // relative, %; from 0
	MaxPPM        = 50000
	MinPascal     = 30000
	MaxPascal     = 110000
	MaxPercentage = 100
)

// Kind is a reading's type; each maps to one DT event type.
type Kind uint8

// Reading kinds.
const (
	Temperature   Kind = 1
	Humidity      Kind = 2
	Touch         Kind = 3
	ObjectPresent Kind = 4
	WaterPresent  Kind = 5
	CO2           Kind = 6
	Battery       Kind = 7
	// Counters report a running total, and two-state sensors their
	// state, in Total and State; the CO2 sensor's pressure is in Pascal.
	TouchCount         Kind = 8
	ObjectPresentCount Kind = 9
	Motion             Kind = 10
	DeskOccupancy      Kind = 11
	Contact            Kind = 12
	Pressure           Kind = 13
)

// EventType is the DT event type name, or "" for an unknown kind.
func (k Kind) EventType() string {
	switch k {
	case Temperature:
		return "temperature"
	case Humidity:
		return "humidity"
	case Touch:
		return "touch"
	case ObjectPresent:
		return "objectPresent"
	case WaterPresent:
		return "waterPresent"
	case CO2:
		return "co2"
	case Battery:
		return "batteryStatus"
	case TouchCount:
		return "touchCount"
	case ObjectPresentCount:
		return "objectPresentCount"
	case Motion:
		return "motion"
	case DeskOccupancy:
		return "deskOccupancy"
	case Contact:
		return "contact"
	case Pressure:
		return "pressure"
	}
	return ""
}

// Sample is one of several temperature samples taken between reports.
type Sample struct {
	Time  int64   `cbor:"1,keyasint"` // unix milliseconds
	Value float64 `cbor:"2,keyasint"`
}

// Reading is one measurement. Exactly the value fields its Kind needs are
// set.
type Reading struct {
	// Seq numbers the sensor's readings for good: a reading resent as
	// backfill in a later packet keeps its Seq, so the cloud stores it once.
	Seq        uint64   `cbor:"1,keyasint"`
	Kind       Kind     `cbor:"2,keyasint"`
	Time       int64    `cbor:"3,keyasint"` // unix milliseconds
	Backfilled bool     `cbor:"4,keyasint,omitempty"`
	Celsius    *float64 `cbor:"5,keyasint,omitempty"`
	Humidity   *float64 `cbor:"6,keyasint,omitempty"` // relative, %
	Present    *bool    `cbor:"7,keyasint,omitempty"`
	PPM        *uint32  `cbor:"8,keyasint,omitempty"`
	Percentage *uint8   `cbor:"9,keyasint,omitempty"`
	Samples    []Sample `cbor:"10,keyasint,omitempty"`
	Total      *uint32  `cbor:"11,keyasint,omitempty"` // a counter's running total
	// State is a two-state sensor's state: motion detected (Motion), the
	// desk occupied (DeskOccupancy), the contact closed (Contact).
	State  *bool    `cbor:"12,keyasint,omitempty"`
	Pascal *float64 `cbor:"13,keyasint,omitempty"` // air pressure
}

// Uplink is a sensor's packet payload.
type Uplink struct {
	Readings []Reading `cbor:"1,keyasint"`
	// Replies lists the downlink counters received since the last uplink,
	// which tells the cloud which connector's replies arrive.
	Replies []uint64 `cbor:"2,keyasint,omitempty"`
	// Epoch is the sensor's boot epoch, a counter it keeps across resets
	// and raises at each boot: sequence numbers are unique within an
	// epoch, so a sensor that restarts them after a reset sends a new
	// epoch and its readings keep ids of their own. Optional: a sensor
	// that never sends it is in epoch 0.
	Epoch uint32 `cbor:"3,keyasint,omitempty"`
	// Config reports the configuration version the sensor runs, or the
	// reason it refused the newest it was sent. Optional: a sensor that
	// never got a configuration sends none.
	Config *ConfigReport `cbor:"4,keyasint,omitempty"`
	// Update reports the software the sensor runs and the update it
	// fetches. Optional: a sensor sends it after each boot and handshake
	// and when its update state changes, until an uplink carrying it is
	// acknowledged, and in every pull (an uplink without readings).
	Update *UpdateReport `cbor:"5,keyasint,omitempty"`
}

// ConfigReport is a sensor's answer to a configuration.
type ConfigReport struct {
	// Version is the configuration version the sensor runs, or, with a
	// Reason, the one it refused.
	Version uint32 `cbor:"1,keyasint"`
	// Reason is 0 when the sensor runs Version, else a devconfig.Reason.
	Reason uint8 `cbor:"2,keyasint,omitempty"`
}

// Config is what the cloud may set on a sensor. Zero fields are unchanged.
type Config struct {
	ReportInterval uint32 `cbor:"1,keyasint,omitempty"` // seconds, 10..86400
	// CloudKey is the cloud's newest static X25519 public key (32 bytes),
	// sent to a sensor that still handshakes under an older one. The
	// sensor keeps its old key until a handshake under this one succeeds.
	CloudKey []byte `cbor:"2,keyasint,omitempty"`
	// Version names the settings below (a devconfig.Config); 0 means the
	// reply carries none. A sensor applies a version newer than the one
	// it runs, and reports the version in its uplinks until it changes.
	Version        uint32 `cbor:"3,keyasint,omitempty"`
	SampleInterval uint32 `cbor:"4,keyasint,omitempty"` // seconds
	Batch          uint32 `cbor:"5,keyasint,omitempty"` // readings per packet
	TxPower        *int32 `cbor:"6,keyasint,omitempty"` // dBm
}

// CloudKeySize is the size of Config.CloudKey when present.
const CloudKeySize = 32

// Reply is the cloud's packet payload.
type Reply struct {
	Acks   []uint64     `cbor:"1,keyasint"` // uplink radio counters acknowledged
	Config *Config      `cbor:"2,keyasint,omitempty"`
	Update *UpdateOffer `cbor:"3,keyasint,omitempty"`
}

func encMode() cbor.EncMode {
	m, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err) // constant options: cannot fail at run time
	}
	return m
}

func decMode() cbor.DecMode {
	m, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		MaxNestedLevels:   6,
		MaxArrayElements:  max(MaxReadings, MaxAcks),
		MaxMapPairs:       16, // a reading has 13 keys
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}.DecMode()
	if err != nil {
		panic(err) // constant options: cannot fail at run time
	}
	return m
}

func decode(b []byte, v any) error {
	rest, err := decMode().UnmarshalFirst(b, v)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrInvalid, len(rest))
	}
	return nil
}

// Marshal encodes u deterministically after validating it.
func (u Uplink) Marshal() ([]byte, error) {
	if err := u.Validate(); err != nil {
		return nil, err
	}
	if u.Readings == nil {
		// A pull's readings are an empty array, never null: the key is
		// always there for DecodeUplink to require.
		u.Readings = []Reading{}
	}
	return encMode().Marshal(u)
}

// Refusal is a reading of an uplink refused on its own: the packet's
// other readings stand.
type Refusal struct {
	Index int    // its place in the packet
	Seq   uint64 // 0 when the reading does not decode far enough to tell
	Err   error  // wraps ErrInvalid; never quotes the reading's values
}

// rawUplink is an uplink whose readings are still undecoded. Readings is
// a pointer so that an absent or null key tells from an empty array.
type rawUplink struct {
	Readings *[]cbor.RawMessage `cbor:"1,keyasint"`
	Replies  []uint64           `cbor:"2,keyasint,omitempty"`
	Epoch    uint32             `cbor:"3,keyasint,omitempty"`
	Config   *ConfigReport      `cbor:"4,keyasint,omitempty"`
	Update   *UpdateReport      `cbor:"5,keyasint,omitempty"`
}

// DecodeUplink decodes an uplink payload. The packet as a whole must be
// well-formed CBOR of an uplink's shape, within its bounds; each reading
// is then decoded and validated on its own, so that one bad reading is
// refused alone (in the refusals) rather than costing the packet's other
// readings. The returned uplink holds only the valid readings, in order.
func DecodeUplink(b []byte) (Uplink, []Refusal, error) {
	var raw rawUplink
	if err := decode(b, &raw); err != nil {
		return Uplink{}, nil, err
	}
	if raw.Readings == nil {
		return Uplink{}, nil, fmt.Errorf("%w: no readings array", ErrInvalid)
	}
	rs := *raw.Readings
	u := Uplink{Replies: raw.Replies, Epoch: raw.Epoch, Config: raw.Config, Update: raw.Update, Readings: make([]Reading, 0, len(rs))}
	if err := u.validateShape(len(rs)); err != nil {
		return Uplink{}, nil, err
	}
	var refused []Refusal
	for i, rb := range rs {
		var r Reading
		err := decode(rb, &r)
		if err == nil {
			err = r.Validate()
		}
		if err != nil {
			refused = append(refused, Refusal{Index: i, Seq: seqOf(rb), Err: err})
			continue
		}
		u.Readings = append(u.Readings, r)
	}
	return u, refused, nil
}

// seqOf reads what it can of a reading that failed to decode: its
// sequence number, for the refusal's log line.
func seqOf(b []byte) uint64 {
	var r struct {
		Seq uint64 `cbor:"1,keyasint"`
	}
	if _, err := laxDecMode().UnmarshalFirst(b, &r); err != nil {
		return 0
	}
	return r.Seq
}

func laxDecMode() cbor.DecMode {
	m, err := cbor.DecOptions{MaxNestedLevels: 6, MaxArrayElements: 16, MaxMapPairs: 16}.DecMode()
	if err != nil {
		panic(err) // constant options: cannot fail at run time
	}
	return m
}

// Marshal encodes r deterministically after validating it.
func (r Reply) Marshal() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return encMode().Marshal(r)
}

// DecodeReply decodes and validates a reply payload.
func DecodeReply(b []byte) (Reply, error) {
	var r Reply
	if err := decode(b, &r); err != nil {
		return Reply{}, err
	}
	return r, r.Validate()
}

// Validate checks a reply's bounds.
func (r Reply) Validate() error {
	if len(r.Acks) > MaxAcks {
		return fmt.Errorf("%w: %d acks, limit %d", ErrInvalid, len(r.Acks), MaxAcks)
	}
	if r.Config != nil && r.Config.ReportInterval != 0 && (r.Config.ReportInterval < 10 || r.Config.ReportInterval > 86400) {
		return fmt.Errorf("%w: reportInterval %d outside 10..86400", ErrInvalid, r.Config.ReportInterval)
	}
	if r.Config != nil && r.Config.CloudKey != nil && len(r.Config.CloudKey) != CloudKeySize {
		return fmt.Errorf("%w: cloudKey of %d bytes, want %d", ErrInvalid, len(r.Config.CloudKey), CloudKeySize)
	}
	if r.Update != nil {
		if err := r.Update.Validate(); err != nil {
			return err
		}
	}
	if len(r.Acks) == 0 && r.Config == nil && r.Update == nil {
		return fmt.Errorf("%w: empty reply", ErrInvalid)
	}
	return nil
}

// Validate checks an uplink: bounds, and each reading's fields and ranges.
func (u Uplink) Validate() error {
	if err := u.validateShape(len(u.Readings)); err != nil {
		return err
	}
	for i, r := range u.Readings {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("reading %d: %w", i, err)
		}
	}
	return nil
}

// validateShape checks an uplink's bounds, given its number of readings,
// and its update report. Only a pull, which carries a report, may carry no
// reading.
func (u Uplink) validateShape(readings int) error {
	switch {
	case readings == 0 && u.Update == nil:
		return fmt.Errorf("%w: no readings", ErrInvalid)
	case readings > MaxReadings:
		return fmt.Errorf("%w: %d readings, limit %d", ErrInvalid, readings, MaxReadings)
	case len(u.Replies) > MaxReplies:
		return fmt.Errorf("%w: %d reply counters, limit %d", ErrInvalid, len(u.Replies), MaxReplies)
	}
	if u.Update != nil {
		return u.Update.Validate()
	}
	return nil
}

// Validate checks that a reading has exactly its kind's fields, in range.
func (r Reading) Validate() error {
	if r.Time <= 0 {
		return fmt.Errorf("%w: no time", ErrInvalid)
	}
	has := map[string]bool{
		"celsius": r.Celsius != nil, "humidity": r.Humidity != nil, "present": r.Present != nil,
		"ppm": r.PPM != nil, "percentage": r.Percentage != nil, "samples": len(r.Samples) > 0,
		"total": r.Total != nil, "state": r.State != nil, "pascal": r.Pascal != nil,
	}
	var need, may []string
	switch r.Kind {
	case Temperature:
		need, may = []string{"celsius"}, []string{"samples"}
	case Humidity:
		need = []string{"celsius", "humidity"}
	case Touch:
	case ObjectPresent, WaterPresent:
		need = []string{"present"}
	case CO2:
		need = []string{"ppm"}
	case Battery:
		need = []string{"percentage"}
	case TouchCount, ObjectPresentCount:
		need = []string{"total"}
	case Motion, DeskOccupancy, Contact:
		need = []string{"state"}
	case Pressure:
		need = []string{"pascal"}
	default:
		return fmt.Errorf("%w: unknown kind %d", ErrInvalid, r.Kind)
	}
	allowed := map[string]bool{}
	for _, f := range need {
		if !has[f] {
			return fmt.Errorf("%w: %s reading without %s", ErrInvalid, r.Kind.EventType(), f)
		}
		allowed[f] = true
	}
	for _, f := range may {
		allowed[f] = true
	}
	for f, set := range has {
		if set && !allowed[f] {
			return fmt.Errorf("%w: %s reading with %s", ErrInvalid, r.Kind.EventType(), f)
		}
	}
	return r.checkRanges()
}

func (r Reading) checkRanges() error {
	inRange := func(name string, v, lo, hi float64) error {
		if math.IsNaN(v) || v < lo || v > hi {
			return fmt.Errorf("%w: %s outside %g..%g", ErrInvalid, name, lo, hi)
		}
		return nil
	}
	if r.Celsius != nil {
		if err := inRange("celsius", *r.Celsius, MinCelsius, MaxCelsius); err != nil {
			return err
		}
	}
	if r.Humidity != nil {
		if err := inRange("humidity", *r.Humidity, 0, MaxHumidity); err != nil {
			return err
		}
	}
	if r.Pascal != nil {
		if err := inRange("pascal", *r.Pascal, MinPascal, MaxPascal); err != nil {
			return err
		}
	}
	if r.PPM != nil && *r.PPM > MaxPPM {
		return fmt.Errorf("%w: ppm above %d", ErrInvalid, MaxPPM)
	}
	if r.Percentage != nil && *r.Percentage > MaxPercentage {
		return fmt.Errorf("%w: percentage above %d", ErrInvalid, MaxPercentage)
	}
	if len(r.Samples) > MaxSamples {
		return fmt.Errorf("%w: %d samples, limit %d", ErrInvalid, len(r.Samples), MaxSamples)
	}
	for _, s := range r.Samples {
		if s.Time <= 0 {
			return fmt.Errorf("%w: sample without time", ErrInvalid)
		}
		if err := inRange("sample", s.Value, MinCelsius, MaxCelsius); err != nil {
			return err
		}
	}
	return nil
}
