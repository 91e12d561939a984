// Package event is the DT v2 event JSON that SealedSense stores and hands
// to customers, so that code written against DT's API reads ours: the
// envelope, the data shape of each event type, and deterministic ids.
package event

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/sealedsense/sealedsense/shared/payload"
)

// ErrInvalid wraps every parsing failure.
var ErrInvalid = errors.New("event: invalid")

// TimeFormat is DT's timestamp form: RFC 3339, UTC, always nine fraction
// digits (time.RFC3339Nano would drop trailing zeros).
const TimeFormat = "2006-01-02T15:04:05.000000000Z"

// twoStates are DT's names for the states of each two-state event type:
// first the one a reading's true stands for (payload.Reading's Present
// and State), then the other.
var twoStates = map[string][2]string{
	"objectPresent": {"PRESENT", "NOT_PRESENT"},
	"waterPresent":  {"PRESENT", "NOT_PRESENT"},
	"motion":        {"MOTION_DETECTED", "NO_MOTION_DETECTED"},
	"deskOccupancy": {"OCCUPIED", "NOT_OCCUPIED"},
	"contact":       {"CLOSED", "OPEN"},
}

// stateName is DT's name of a two-state event type's state.
func stateName(eventType string, on bool) string {
	if on {
		return twoStates[eventType][0]
	}
	return twoStates[eventType][1]
}

// Event is one event in DT's shape.
type Event struct {
	EventID    string
	TargetName string // projects/{p}/devices/{d}
	EventType  string
	Data       json.RawMessage // {"<eventType>": {...}}
	Timestamp  time.Time
}

type wire struct {
	EventID    string          `json:"eventId"`
	TargetName string          `json:"targetName"`
	EventType  string          `json:"eventType"`
	Data       json.RawMessage `json:"data"`
	Timestamp  string          `json:"timestamp"`
}

// MarshalJSON writes DT's field names and timestamp form.
func (e Event) MarshalJSON() ([]byte, error) {
	return json.Marshal(wire{e.EventID, e.TargetName, e.EventType, e.Data, e.Timestamp.UTC().Format(TimeFormat)})
}

// Parse reads an event strictly: unknown fields and trailing data are
// refused, as the events topic is input to our own consumers.
func Parse(b []byte) (Event, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var w wire
	if err := dec.Decode(&w); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if dec.More() {
		return Event{}, fmt.Errorf("%w: trailing data", ErrInvalid)
	}
	ts, err := time.Parse(time.RFC3339Nano, w.Timestamp)
	if err != nil {
		return Event{}, fmt.Errorf("%w: timestamp", ErrInvalid)
	}
	if w.EventID == "" || w.TargetName == "" || w.EventType == "" {
		return Event{}, fmt.Errorf("%w: eventId, targetName and eventType are required", ErrInvalid)
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(w.Data, &data); err != nil || len(data) != 1 || data[w.EventType] == nil {
		return Event{}, fmt.Errorf("%w: data must hold exactly the %q object", ErrInvalid, w.EventType)
	}
	return Event{EventID: w.EventID, TargetName: w.TargetName, EventType: w.EventType, Data: w.Data, Timestamp: ts.UTC()}, nil
}

// TargetName is a device's resource name.
func TargetName(project, deviceID string) string {
	return "projects/" + project + "/devices/" + deviceID
}

// idEncoding gives DT-style identifiers: lowercase base32hex, no padding.
func idEncoding() *base32.Encoding {
	return base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)
}

// ID is the id of a reading's event in boot epoch 0: derived from the
// device and the reading's own sequence number, so a backfilled resend or a
// Pub/Sub redelivery names the same event and is stored once.
func ID(deviceID string, seq uint64) string { return ReadingID(deviceID, 0, seq) }

// ReadingID is the id of a reading's event: derived from the device, the
// sensor's boot epoch and the reading's sequence number, which is unique
// within its epoch. Epoch 0 (a sensor that sends none) keeps the ids
// events had before epochs existed; any other epoch is an id space of its
// own, so a sensor that restarts its sequence numbers after a reset, in a
// new epoch, never names an event it stored before.
func ReadingID(deviceID string, epoch uint32, seq uint64) string {
	if epoch == 0 {
		return DerivedID(deviceID, "reading", seq)
	}
	return DerivedID(deviceID, "reading/epoch/"+strconv.FormatUint(uint64(epoch), 10), seq)
}

// DerivedID is the id of an event the cloud makes (networkStatus,
// connectionStatus): kind separates id spaces, n is what makes it unique
// within them.
func DerivedID(deviceID, kind string, n uint64) string {
	h := sha256.New()
	h.Write([]byte("sealedsense/event/v1"))
	for _, s := range []string{deviceID, kind} {
		h.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(s))))
		h.Write([]byte(s))
	}
	h.Write(binary.LittleEndian.AppendUint64(nil, n))
	return idEncoding().EncodeToString(h.Sum(nil)[:13])[:20]
}

func build(project, deviceID, id, typ string, at time.Time, inner any) (Event, error) {
	data, err := json.Marshal(map[string]any{typ: inner})
	if err != nil {
		return Event{}, fmt.Errorf("event: %w", err)
	}
	return Event{EventID: id, TargetName: TargetName(project, deviceID), EventType: typ, Data: data, Timestamp: at.UTC()}, nil
}

func stamp(t time.Time) string { return t.UTC().Format(TimeFormat) }

type sampleJSON struct {
	Value      float64 `json:"value"`
	SampleTime string  `json:"sampleTime"`
}

type temperatureJSON struct {
	Value        float64      `json:"value"`
	UpdateTime   string       `json:"updateTime"`
	Samples      []sampleJSON `json:"samples"`
	IsBackfilled bool         `json:"isBackfilled"`
}

type humidityJSON struct {
	Temperature      float64              `json:"temperature"`
	RelativeHumidity float64              `json:"relativeHumidity"`
	UpdateTime       string               `json:"updateTime"`
	Samples          []humiditySampleJSON `json:"samples"`
	IsBackfilled     bool                 `json:"isBackfilled"`
}

type humiditySampleJSON struct {
	Temperature      float64 `json:"temperature"`
	RelativeHumidity float64 `json:"relativeHumidity"`
	SampleTime       string  `json:"sampleTime"`
}

type updateJSON struct {
	UpdateTime string `json:"updateTime"`
}

type stateJSON struct {
	State      string `json:"state"`
	UpdateTime string `json:"updateTime"`
}

// deskJSON is deskOccupancy's data. DT's clients read remarks as a list
// whether or not there are any, so it is [] when empty, never null.
type deskJSON struct {
	State      string   `json:"state"`
	Remarks    []string `json:"remarks"`
	UpdateTime string   `json:"updateTime"`
}

type countJSON struct {
	Total      uint32 `json:"total"`
	UpdateTime string `json:"updateTime"`
}

type co2JSON struct {
	PPM        uint32 `json:"ppm"`
	UpdateTime string `json:"updateTime"`
}

type pressureJSON struct {
	Pascal     float64 `json:"pascal"`
	UpdateTime string  `json:"updateTime"`
}

type batteryJSON struct {
	Percentage uint8  `json:"percentage"`
	UpdateTime string `json:"updateTime"`
}

// FromReading makes the event for a validated reading of boot epoch 0.
func FromReading(project, deviceID string, r payload.Reading) (Event, error) {
	return FromEpochReading(project, deviceID, 0, r)
}

// FromEpochReading makes the event for a validated reading sent in the
// given boot epoch.
func FromEpochReading(project, deviceID string, epoch uint32, r payload.Reading) (Event, error) {
	if err := r.Validate(); err != nil {
		return Event{}, err
	}
	at := time.UnixMilli(r.Time).UTC()
	return build(project, deviceID, ReadingID(deviceID, epoch, r.Seq), r.Kind.EventType(), at, readingData(r, stamp(at)))
}

// readingData is the DT data of a validated reading taken at up.
func readingData(r payload.Reading, up string) any {
	switch r.Kind {
	case payload.Temperature:
		samples := []sampleJSON{{Value: *r.Celsius, SampleTime: up}}
		for _, s := range r.Samples {
			samples = append(samples, sampleJSON{Value: s.Value, SampleTime: stamp(time.UnixMilli(s.Time))})
		}
		return temperatureJSON{Value: *r.Celsius, UpdateTime: up, Samples: samples, IsBackfilled: r.Backfilled}
	case payload.Humidity:
		return humidityJSON{Temperature: *r.Celsius, RelativeHumidity: *r.Humidity, UpdateTime: up,
			Samples: []humiditySampleJSON{}, IsBackfilled: r.Backfilled}
	case payload.Touch:
		return updateJSON{UpdateTime: up}
	case payload.TouchCount, payload.ObjectPresentCount:
		return countJSON{Total: *r.Total, UpdateTime: up}
	case payload.CO2:
		return co2JSON{PPM: *r.PPM, UpdateTime: up}
	case payload.Pressure:
		return pressureJSON{Pascal: *r.Pascal, UpdateTime: up}
	case payload.Battery:
		return batteryJSON{Percentage: *r.Percentage, UpdateTime: up}
	case payload.ObjectPresent, payload.WaterPresent:
		return stateJSON{State: stateName(r.Kind.EventType(), *r.Present), UpdateTime: up}
	case payload.DeskOccupancy:
		return deskJSON{State: stateName("deskOccupancy", *r.State), Remarks: []string{}, UpdateTime: up}
	}
	// Motion and Contact: Validate let no other kind through.
	return stateJSON{State: stateName(r.Kind.EventType(), *r.State), UpdateTime: up}
}

// SignalStrength maps RSSI to DT's 0..100: linear from -120 dBm (0), about
// the sensitivity of a sub-GHz receiver, to -50 dBm (100), already more
// than any link needs.
func SignalStrength(rssi float64) int {
	return int(math.Round(math.Max(0, math.Min(100, (rssi+120)*100/70))))
}

// Reception is one connector's hearing of a device.
type Reception struct {
	ConnectorID string
	RSSI        float64
}

type connectorJSON struct {
	ID             string  `json:"id"`
	SignalStrength int     `json:"signalStrength"`
	RSSI           float64 `json:"rssi"`
}

type networkStatusJSON struct {
	SignalStrength   int             `json:"signalStrength"`
	RSSI             float64         `json:"rssi"`
	UpdateTime       string          `json:"updateTime"`
	CloudConnectors  []connectorJSON `json:"cloudConnectors"`
	TransmissionMode string          `json:"transmissionMode"`
}

// NetworkStatusFor is the networkStatus event for one packet heard by the
// given connectors; the strongest sets the device's signal strength. An
// RSSI that JSON cannot carry (NaN, an infinity) is an error.
func NetworkStatusFor(project, deviceID string, at time.Time, heard []Reception) (Event, error) {
	ns := networkStatusJSON{RSSI: -200, UpdateTime: stamp(at), TransmissionMode: "LOW_POWER_STANDARD_MODE", CloudConnectors: []connectorJSON{}}
	for _, h := range heard {
		ns.CloudConnectors = append(ns.CloudConnectors, connectorJSON{ID: h.ConnectorID, SignalStrength: SignalStrength(h.RSSI), RSSI: h.RSSI})
		ns.RSSI = math.Max(ns.RSSI, h.RSSI)
	}
	ns.SignalStrength = SignalStrength(ns.RSSI)
	return build(project, deviceID, DerivedID(deviceID, "networkStatus", uint64(at.UnixNano())), "networkStatus", at, ns)
}

// KnownType says whether t is one of DT's event types: filters and
// subscriptions refuse any other, so that a typo is an error rather than a
// filter that silently matches nothing.
func KnownType(t string) bool {
	switch t {
	case "touch", "temperature", "objectPresent", "humidity", "objectPresentCount", "touchCount",
		"waterPresent", "co2", "pressure", "motion", "deskOccupancy", "contact", "probeWireStatus",
		"batteryStatus", "networkStatus", "connectionStatus", "ethernetStatus", "cellularStatus",
		"connectionLatency", "labelsChanged", "configurationStatus", "deviceAnomaly", "softwareUpdateStatus":
		return true
	}
	return false
}

// ValidLabelKey says whether k can be a device label's key: 1 to 63 of
// A-Z a-z 0-9 _ - and dot, as labelsChanged events and filters carry them.
func ValidLabelKey(k string) bool {
	if len(k) == 0 || len(k) > 63 {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}
