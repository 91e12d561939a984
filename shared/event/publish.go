package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/sealedsense/sealedsense/shared/payload"
)

// Bounds on a body published through the device emulator API, so that a
// hostile one stays small: DT's data objects are flat, a list at most
// holds an object of scalars, and no DT field is a long text.
const (
	MaxPublishBody   = 16 << 10 // bytes
	maxPublishDepth  = 3        // the data object, a list, an object in it
	maxPublishString = 128      // bytes, keys and values alike
	maxPublishList   = 16
	// maxPublishAhead is how far past the time of publication an
	// updateTime or sampleTime may be: clocks disagree a little, and no
	// more.
	maxPublishAhead = 5 * time.Minute
)

// RSSI range a publisher may claim, in dBm: -200 is what
// NetworkStatusFor reports for a packet no connector heard.
const (
	minRSSI = -200
	maxRSSI = 0
)

// DT's enumerations besides the two-state types' (twoStates).
var (
	probeWireStates   = []string{"INVALID_WIRE_CONFIGURATION", "INVALID_COEFFICIENT_CONFIGURATION", "TWO_WIRE", "THREE_WIRE", "FOUR_WIRE"}
	transmissionModes = []string{"LOW_POWER_STANDARD_MODE", "HIGH_POWER_BOOST_MODE"}
	connections       = []string{"SDS", "ETHERNET", "CELLULAR", "OFFLINE"}
	// links are the connections that can be available: OFFLINE is the
	// absence of one.
	links = connections[:3]
)

// publishKeys are the field names of every publishable data object.
// encoding/json matches a key to a field regardless of case; DT's are
// case-sensitive, so a key must also be one of these exactly.
var publishKeys = map[string]bool{
	"updateTime": true, "value": true, "samples": true, "sampleTime": true, "isBackfilled": true,
	"temperature": true, "relativeHumidity": true, "state": true, "remarks": true, "total": true,
	"ppm": true, "pascal": true, "percentage": true, "signalStrength": true, "rssi": true,
	"cloudConnectors": true, "id": true, "transmissionMode": true, "connection": true, "available": true,
	"macAddress": true, "ipAddress": true, "errors": true, "code": true, "message": true,
}

// publisher reads one event type's data object into its normalized data
// and its update time; r holds the first error.
type publisher func(r *reader, data []byte) (inner any, updateTime time.Time)

// publishers are the event types a device publishes: labelsChanged comes
// from the API, and configurationStatus, deviceAnomaly,
// softwareUpdateStatus and connectionLatency from SealedSense itself.
var publishers = map[string]publisher{
	"touch":              publishTouch,
	"temperature":        publishTemperature,
	"humidity":           publishHumidity,
	"objectPresent":      publishState(statesOf("objectPresent")...),
	"waterPresent":       publishState(statesOf("waterPresent")...),
	"motion":             publishState(statesOf("motion")...),
	"contact":            publishState(statesOf("contact")...),
	"probeWireStatus":    publishState(probeWireStates...),
	"deskOccupancy":      publishDesk,
	"touchCount":         publishCount,
	"objectPresentCount": publishCount,
	"co2":                publishCO2,
	"pressure":           publishPressure,
	"batteryStatus":      publishBattery,
	"networkStatus":      publishNetworkStatus,
	"connectionStatus":   publishConnectionStatus,
	"ethernetStatus":     publishEthernetStatus,
	"cellularStatus":     publishCellularStatus,
}

// statesOf lists a two-state event type's states.
func statesOf(eventType string) []string {
	s := twoStates[eventType]
	return s[:]
}

// Publishable says whether an emulated device may publish eventType.
func Publishable(eventType string) bool {
	_, ok := publishers[eventType]
	return ok
}

// FromPublished makes the event an emulated device publishes through the
// device emulator API. body is DT's publish body, {"<eventType>": {...}},
// one key. It is parsed strictly (unknown fields, wrong JSON types, null,
// a key twice, enum values outside DT's, out-of-range numbers, trailing
// data, more than one key refused, all wrapping ErrInvalid) and
// re-encoded in our normalized form; a missing updateTime (and
// sampleTime) is at, the time of publication. labelsChanged and
// SealedSense's own types (configurationStatus, deviceAnomaly,
// softwareUpdateStatus, connectionLatency) cannot be published.
func FromPublished(project, deviceID, id string, at time.Time, body []byte) (Event, error) {
	if project == "" || deviceID == "" || id == "" {
		return Event{}, errors.New("event: a published event needs a project, a device and an id")
	}
	typ, data, err := splitPublished(body)
	if err != nil {
		return Event{}, err
	}
	publish, ok := publishers[typ]
	if !ok {
		return Event{}, fmt.Errorf("%w: %.*q cannot be published", ErrInvalid, maxPublishString, typ)
	}
	if err := checkShape(data); err != nil {
		return Event{}, fmt.Errorf("%w: %s: %v", ErrInvalid, typ, err)
	}
	r := &reader{at: at.UTC()}
	inner, updated := publish(r, data)
	if r.err != nil {
		return Event{}, fmt.Errorf("%w: %s: %v", ErrInvalid, typ, r.err)
	}
	return build(project, deviceID, id, typ, updated, inner)
}

// splitPublished reads a publish body's one key, the event type, and its
// data. Token by token, so that a second key, even the same one again,
// is refused rather than merged.
func splitPublished(body []byte) (string, json.RawMessage, error) {
	if len(body) > MaxPublishBody {
		return "", nil, fmt.Errorf("%w: a body of %d bytes, limit %d", ErrInvalid, len(body), MaxPublishBody)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", nil, fmt.Errorf("%w: the body is not a JSON object", ErrInvalid)
	}
	tok, err := dec.Token()
	typ, ok := tok.(string)
	if err != nil || !ok {
		return "", nil, fmt.Errorf("%w: the body names no event type", ErrInvalid)
	}
	var data json.RawMessage
	if err := dec.Decode(&data); err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return "", nil, fmt.Errorf("%w: the body holds more than the one event type", ErrInvalid)
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", nil, fmt.Errorf("%w: trailing data", ErrInvalid)
	}
	return typ, data, nil
}

// shapeFrame is an object or a list checkShape is inside.
type shapeFrame struct {
	keys    map[string]bool // nil for a list
	wantKey bool            // an object's next token is a key or its end
	n       int             // a list's elements so far
}

// checkShape walks a data object's tokens and refuses what encoding/json
// would let into a typed struct but DT never sends: null, a key not
// spelled as DT spells it, a key twice. It bounds depth, lists and
// strings before anything is decoded.
func checkShape(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var stack []*shapeFrame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err == nil {
			stack, err = shapeStep(stack, tok)
		}
		if err != nil {
			return err
		}
	}
}

// shapeStep takes one token of checkShape's walk; Token has checked the
// syntax (a '}' comes only where a key could).
func shapeStep(stack []*shapeFrame, tok json.Token) ([]*shapeFrame, error) {
	n := len(stack)
	switch v := tok.(type) {
	case json.Delim:
		if v == '{' || v == '[' {
			if n == maxPublishDepth {
				return nil, fmt.Errorf("nested deeper than %d", maxPublishDepth)
			}
			return append(stack, newShapeFrame(v)), nil
		}
		stack = stack[:n-1]
	case string:
		if n > 0 && stack[n-1].wantKey {
			return stack, stack[n-1].key(v)
		}
		if len(v) > maxPublishString {
			return nil, fmt.Errorf("a text of %d bytes, limit %d", len(v), maxPublishString)
		}
	case nil:
		return nil, errors.New("null")
	}
	return stack, valueDone(stack)
}

func newShapeFrame(open json.Delim) *shapeFrame {
	if open == '{' {
		return &shapeFrame{keys: map[string]bool{}, wantKey: true}
	}
	return &shapeFrame{}
}

// key takes an object's next key.
func (f *shapeFrame) key(k string) error {
	switch {
	case !publishKeys[k]:
		return fmt.Errorf("unknown field %.*q", maxPublishString, k)
	case f.keys[k]:
		return fmt.Errorf("field %q twice", k)
	}
	f.keys[k] = true
	f.wantKey = false
	return nil
}

// valueDone counts a value finished in the innermost object or list.
func valueDone(stack []*shapeFrame) error {
	if len(stack) == 0 {
		return nil
	}
	top := stack[len(stack)-1]
	if top.keys != nil {
		top.wantKey = true
		return nil
	}
	if top.n++; top.n > maxPublishList {
		return fmt.Errorf("a list of more than %d", maxPublishList)
	}
	return nil
}

// reader reads a data object's fields, keeping the first error, so that a
// publisher states its fields one per line and checks once at the end.
type reader struct {
	at  time.Time // the time of publication: a missing time's value
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

// decode decodes data strictly into v: a field v lacks, or a value of
// the wrong JSON type, is an error.
func (r *reader) decode(data []byte, v any) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		r.fail("%s", describe(err))
	}
}

// describe says what a decoding error means in JSON's terms: encoding/json
// names Go types, which a publisher does not know.
func describe(err error) string {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	want := "an object"
	switch te.Type.Kind() {
	case reflect.Float64:
		want = "a number"
	case reflect.Int:
		want = "a whole number"
	case reflect.Uint32:
		want = "a whole number from 0 to 4294967295"
	case reflect.String:
		want = "a text"
	case reflect.Bool:
		want = "true or false"
	case reflect.Slice:
		want = "a list"
	}
	field := te.Field
	if field == "" {
		field = "the data"
	}
	return fmt.Sprintf("%s must be %s, not %s", field, want, te.Value)
}

func (r *reader) required(name string, present bool) bool {
	if !present {
		r.fail("%s is required", name)
	}
	return present
}

// when is an RFC 3339 time, or at if it is absent. It must fall after
// 1970 (as a reading's time must) and not ahead of at by more than
// maxPublishAhead.
func (r *reader) when(name string, s *string) time.Time {
	if s == nil {
		return r.at
	}
	t, err := time.Parse(time.RFC3339Nano, *s)
	switch {
	case err != nil:
		r.fail("%s is not an RFC 3339 time", name)
	case t.UnixMilli() <= 0:
		r.fail("%s is not after 1970", name)
	case t.Sub(r.at) > maxPublishAhead:
		r.fail("%s is more than %v in the future", name, maxPublishAhead)
	}
	return t.UTC()
}

func (r *reader) number(name string, v *float64, lo, hi float64) float64 {
	if !r.required(name, v != nil) {
		return 0
	}
	if *v < lo || *v > hi {
		r.fail("%s outside %g..%g", name, lo, hi)
	}
	return *v
}

func (r *reader) integer(name string, v *int, lo, hi int) int {
	if !r.required(name, v != nil) {
		return 0
	}
	if *v < lo || *v > hi {
		r.fail("%s outside %d..%d", name, lo, hi)
	}
	return *v
}

func (r *reader) enum(name string, v *string, values ...string) string {
	if !r.required(name, v != nil) {
		return ""
	}
	if !slices.Contains(values, *v) {
		r.fail("%s %q is none of %v", name, *v, values)
	}
	return *v
}

// timed is the updateTime every data object may carry, embedded.
type timed struct {
	UpdateTime *string `json:"updateTime"`
}

func (u timed) read(r *reader) (time.Time, string) {
	t := r.when("updateTime", u.UpdateTime)
	return t, stamp(t)
}

func publishTouch(r *reader, data []byte) (any, time.Time) {
	var in struct{ timed }
	r.decode(data, &in)
	t, up := in.read(r)
	return updateJSON{UpdateTime: up}, t
}

func publishTemperature(r *reader, data []byte) (any, time.Time) {
	var in struct {
		Value   *float64 `json:"value"`
		Samples []struct {
			Value      *float64 `json:"value"`
			SampleTime *string  `json:"sampleTime"`
		} `json:"samples"`
		IsBackfilled bool `json:"isBackfilled"`
		timed
	}
	r.decode(data, &in)
	t, up := in.read(r)
	out := temperatureJSON{Value: r.number("value", in.Value, payload.MinCelsius, payload.MaxCelsius), UpdateTime: up, IsBackfilled: in.IsBackfilled}
	if in.Samples == nil {
		// As a sensor's reading: its value is its newest sample.
		out.Samples = []sampleJSON{{Value: out.Value, SampleTime: up}}
	}
	for _, s := range in.Samples {
		out.Samples = append(out.Samples, sampleJSON{Value: r.number("samples.value", s.Value, payload.MinCelsius, payload.MaxCelsius),
			SampleTime: stamp(r.when("samples.sampleTime", s.SampleTime))})
	}
	if out.Samples == nil {
		out.Samples = []sampleJSON{} // "samples": [] as published
	}
	return out, t
}

func publishHumidity(r *reader, data []byte) (any, time.Time) {
	var in struct {
		Temperature      *float64 `json:"temperature"`
		RelativeHumidity *float64 `json:"relativeHumidity"`
		Samples          []struct {
			Temperature      *float64 `json:"temperature"`
			RelativeHumidity *float64 `json:"relativeHumidity"`
			SampleTime       *string  `json:"sampleTime"`
		} `json:"samples"`
		IsBackfilled bool `json:"isBackfilled"`
		timed
	}
	r.decode(data, &in)
	t, up := in.read(r)
	// Without samples, none, as a sensor's humidity reading has.
	out := humidityJSON{Temperature: r.number("temperature", in.Temperature, payload.MinCelsius, payload.MaxCelsius),
		RelativeHumidity: r.number("relativeHumidity", in.RelativeHumidity, 0, payload.MaxHumidity),
		UpdateTime:       up, Samples: []humiditySampleJSON{}, IsBackfilled: in.IsBackfilled}
	for _, s := range in.Samples {
		out.Samples = append(out.Samples, humiditySampleJSON{
			Temperature:      r.number("samples.temperature", s.Temperature, payload.MinCelsius, payload.MaxCelsius),
			RelativeHumidity: r.number("samples.relativeHumidity", s.RelativeHumidity, 0, payload.MaxHumidity),
			SampleTime:       stamp(r.when("samples.sampleTime", s.SampleTime))})
	}
	return out, t
}

// publishState reads a data object that is a state among values.
func publishState(values ...string) publisher {
	return func(r *reader, data []byte) (any, time.Time) {
		var in struct {
			State *string `json:"state"`
			timed
		}
		r.decode(data, &in)
		t, up := in.read(r)
		return stateJSON{State: r.enum("state", in.State, values...), UpdateTime: up}, t
	}
}

func publishDesk(r *reader, data []byte) (any, time.Time) {
	var in struct {
		State   *string  `json:"state"`
		Remarks []string `json:"remarks"`
		timed
	}
	r.decode(data, &in)
	t, up := in.read(r)
	out := deskJSON{State: r.enum("state", in.State, statesOf("deskOccupancy")...), Remarks: in.Remarks, UpdateTime: up}
	if out.Remarks == nil {
		out.Remarks = []string{}
	}
	return out, t
}

func publishCount(r *reader, data []byte) (any, time.Time) {
	var in struct {
		Total *uint32 `json:"total"`
		timed
	}
	r.decode(data, &in)
	t, up := in.read(r)
	out := countJSON{UpdateTime: up}
	if r.required("total", in.Total != nil) {
		out.Total = *in.Total
	}
	return out, t
}

func publishCO2(r *reader, data []byte) (any, time.Time) {
	var in struct {
		PPM *int `json:"ppm"`
		timed
	}
	r.decode(data, &in)
	t, up := in.read(r)
	return co2JSON{PPM: uint32(r.integer("ppm", in.PPM, 0, payload.MaxPPM)), UpdateTime: up}, t
}

func publishPressure(r *reader, data []byte) (any, time.Time) {
	var in struct {
		Pascal *float64 `json:"pascal"`
		timed
	}
	r.decode(data, &in)
	t, up := in.read(r)
	return pressureJSON{Pascal: r.number("pascal", in.Pascal, payload.MinPascal, payload.MaxPascal), UpdateTime: up}, t
}

func publishBattery(r *reader, data []byte) (any, time.Time) {
	var in struct {
		Percentage *int `json:"percentage"`
		timed
	}
	r.decode(data, &in)
	t, up := in.read(r)
	return batteryJSON{Percentage: uint8(r.integer("percentage", in.Percentage, 0, payload.MaxPercentage)), UpdateTime: up}, t
}

func publishNetworkStatus(r *reader, data []byte) (any, time.Time) {
	var in struct {
		SignalStrength  *int     `json:"signalStrength"`
		RSSI            *float64 `json:"rssi"`
		CloudConnectors []struct {
			ID             *string  `json:"id"`
			SignalStrength *int     `json:"signalStrength"`
			RSSI           *float64 `json:"rssi"`
		} `json:"cloudConnectors"`
		TransmissionMode *string `json:"transmissionMode"`
		timed
	}
	r.decode(data, &in)
	t, up := in.read(r)
	if in.TransmissionMode == nil {
		mode := transmissionModes[0] // a sensor's default
		in.TransmissionMode = &mode
	}
	out := networkStatusJSON{SignalStrength: r.integer("signalStrength", in.SignalStrength, 0, 100),
		RSSI: r.number("rssi", in.RSSI, minRSSI, maxRSSI), UpdateTime: up, CloudConnectors: []connectorJSON{},
		TransmissionMode: r.enum("transmissionMode", in.TransmissionMode, transmissionModes...)}
	for _, c := range in.CloudConnectors {
		cc := connectorJSON{SignalStrength: r.integer("cloudConnectors.signalStrength", c.SignalStrength, 0, 100),
			RSSI: r.number("cloudConnectors.rssi", c.RSSI, minRSSI, maxRSSI)}
		if r.required("cloudConnectors.id", c.ID != nil && *c.ID != "") {
			cc.ID = *c.ID
		}
		out.CloudConnectors = append(out.CloudConnectors, cc)
	}
	return out, t
}

func publishConnectionStatus(r *reader, data []byte) (any, time.Time) {
	var in struct {
		Connection *string  `json:"connection"`
		Available  []string `json:"available"`
		timed
	}
	r.decode(data, &in)
	t, up := in.read(r)
	out := connectionStatusJSON{Connection: r.enum("connection", in.Connection, connections...), Available: []string{}, UpdateTime: up}
	if in.Available == nil && out.Connection != "OFFLINE" && out.Connection != "" {
		in.Available = []string{out.Connection} // the link in use is up
	}
	for _, a := range in.Available {
		if slices.Contains(out.Available, a) {
			r.fail("available lists %s twice", a)
		}
		out.Available = append(out.Available, r.enum("available", &a, links...))
	}
	return out, t
}

// linkErrorsIn is the errors list of ethernetStatus and cellularStatus.
type linkErrorsIn []struct {
	Code    *string `json:"code"`
	Message *string `json:"message"`
}

func (in linkErrorsIn) read(r *reader) []LinkError {
	out := []LinkError{}
	for _, e := range in {
		var le LinkError
		if r.required("errors.code", e.Code != nil && *e.Code != "") {
			le.Code = *e.Code
		}
		if r.required("errors.message", e.Message != nil) {
			le.Message = *e.Message
		}
		out = append(out, le)
	}
	return out
}

func publishEthernetStatus(r *reader, data []byte) (any, time.Time) {
	var in struct {
		MACAddress *string      `json:"macAddress"`
		IPAddress  *string      `json:"ipAddress"`
		Errors     linkErrorsIn `json:"errors"`
		timed
	}
	r.decode(data, &in)
	t, up := in.read(r)
	out := ethernetStatusJSON{Errors: in.Errors.read(r), UpdateTime: up}
	if r.required("macAddress", in.MACAddress != nil) {
		if _, err := net.ParseMAC(*in.MACAddress); err != nil {
			r.fail("macAddress is not a MAC address")
		}
		out.MACAddress = *in.MACAddress
	}
	if in.IPAddress != nil && *in.IPAddress != "" {
		// "" is what our own connectors send: no address.
		if _, err := netip.ParseAddr(*in.IPAddress); err != nil {
			r.fail("ipAddress is not an IP address")
		}
		out.IPAddress = *in.IPAddress
	}
	return out, t
}

func publishCellularStatus(r *reader, data []byte) (any, time.Time) {
	var in struct {
		SignalStrength *int         `json:"signalStrength"`
		Errors         linkErrorsIn `json:"errors"`
		timed
	}
	r.decode(data, &in)
	t, up := in.read(r)
	return cellularStatusJSON{SignalStrength: r.integer("signalStrength", in.SignalStrength, 0, 100), Errors: in.Errors.read(r), UpdateTime: up}, t
}
