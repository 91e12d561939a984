// Package param parses what a stream client sends besides its credentials:
// the filters, the keepalive interval, the resume id parameter and the
// media type it accepts. All of it is untrusted input, so the package
// stands alone and has fuzz targets that need no emulator.
package param

import (
	"errors"
	"fmt"
	"mime"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sealedsense/sealedsense/shared/event"
)

// ErrInvalid wraps every refusal of a parameter.
var ErrInvalid = errors.New("param: invalid")

// ErrNotAcceptable is returned when the client accepts neither NDJSON nor
// SSE.
var ErrNotAcceptable = errors.New("param: not acceptable")

// Bounds of what a request may ask for.
const (
	MinPing = time.Second
	MaxPing = 10 * time.Minute
	// maxValues bounds the entries of one list parameter, so a filter's
	// size (and the work of matching each event) stays bounded.
	maxValues    = 1000
	maxValueLen  = 256
	maxLabelKey  = 63
	maxTypeLen   = 64
	maxIDLen     = 64
	maxAcceptLen = 1024
)

// Format is the framing a stream answers with.
type Format int

// The two framings.
const (
	NDJSON Format = iota + 1 // newline-delimited JSON, for Accept: application/json
	SSE                      // server-sent events, for Accept: text/event-stream
)

func (f Format) String() string {
	switch f {
	case NDJSON:
		return "ndjson"
	case SSE:
		return "sse"
	}
	return "unknown"
}

// Negotiate picks the framing from an Accept header. An absent header or
// */* means NDJSON (DT's Python client sends requests' default */*);
// application/json and application/x-ndjson mean NDJSON;
// text/event-stream means SSE. With several, the highest q wins and, on a
// tie, the first listed.
func Negotiate(accept string) (Format, error) {
	accept = strings.TrimSpace(accept)
	if accept == "" {
		return NDJSON, nil
	}
	if len(accept) > maxAcceptLen {
		return 0, fmt.Errorf("%w: Accept header too long", ErrNotAcceptable)
	}
	best, bestQ := Format(0), 0.0
	for _, r := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(r))
		if err != nil {
			continue
		}
		q := 1.0
		if s, ok := params["q"]; ok {
			if q, err = strconv.ParseFloat(s, 64); err != nil || q < 0 || q > 1 {
				continue
			}
		}
		var f Format
		switch mt {
		case "application/json", "application/x-ndjson", "application/*", "*/*":
			f = NDJSON
		case "text/event-stream", "text/*":
			f = SSE
		default:
			continue
		}
		if q > bestQ {
			best, bestQ = f, q
		}
	}
	if best == 0 {
		return 0, fmt.Errorf("%w: the stream answers application/json (NDJSON) or text/event-stream (SSE)", ErrNotAcceptable)
	}
	return best, nil
}

// Label is one label filter: the device must have Key, and if HasValue,
// with exactly Value.
type Label struct {
	Key, Value string
	HasValue   bool
}

func (l Label) String() string {
	if l.HasValue {
		return l.Key + "=" + l.Value
	}
	return l.Key
}

// Filter selects events. Values within one kind are alternatives (any
// device id of the list); kinds combine with AND, and every label filter
// must hold. The zero Filter selects everything.
type Filter struct {
	deviceIDs, deviceTypes, eventTypes map[string]struct{}
	labels                             []Label
}

// NeedsDevice says whether matching needs the device's type or labels,
// which live on the device, not on the event.
func (f Filter) NeedsDevice() bool { return len(f.deviceTypes) > 0 || len(f.labels) > 0 }

// MatchEvent is the part of the filter an event decides alone.
func (f Filter) MatchEvent(deviceID, eventType string) bool {
	return in(f.deviceIDs, deviceID) && in(f.eventTypes, eventType)
}

// MatchDevice is the part the device decides: its type and labels. A
// device that no longer exists has neither.
func (f Filter) MatchDevice(deviceType string, labels map[string]string) bool {
	if !in(f.deviceTypes, deviceType) {
		return false
	}
	for _, l := range f.labels {
		v, ok := labels[l.Key]
		if !ok || l.HasValue && v != l.Value {
			return false
		}
	}
	return true
}

func in(set map[string]struct{}, v string) bool {
	if len(set) == 0 {
		return true
	}
	_, ok := set[v]
	return ok
}

// String is a canonical description for audit entries and logs. It holds
// ids, types and labels, never event data.
func (f Filter) String() string {
	var parts []string
	for _, kv := range []struct {
		name string
		set  map[string]struct{}
	}{{"device_ids", f.deviceIDs}, {"device_types", f.deviceTypes}, {"event_types", f.eventTypes}} {
		if len(kv.set) > 0 {
			vals := make([]string, 0, len(kv.set))
			for v := range kv.set {
				vals = append(vals, v)
			}
			slices.Sort(vals)
			parts = append(parts, kv.name+"="+strings.Join(vals, ","))
		}
	}
	if len(f.labels) > 0 {
		ls := make([]string, len(f.labels))
		for i, l := range f.labels {
			ls[i] = l.String()
		}
		parts = append(parts, "label_filters="+strings.Join(ls, ","))
	}
	return strings.Join(parts, " ")
}

// Params is a parsed stream request.
type Params struct {
	Filter Filter
	// PingInterval is 0 when the client asked for no keepalives.
	PingInterval time.Duration
	// LastEventID is the raw last_event_id parameter, parsed by package
	// cursor; the Last-Event-ID header takes precedence over it.
	LastEventID string
}

// Parse reads the stream's query parameters. Lists come repeated
// (device_ids=a&device_ids=b, as DT's Python client sends them),
// comma-separated (device_ids=a,b), or both; blanks are ignored. Other
// parameters are left to the caller.
func Parse(q url.Values) (Params, error) {
	var p Params
	var err error
	if p.Filter.deviceIDs, err = set(q["device_ids"], "device_ids", validID); err != nil {
		return Params{}, err
	}
	if p.Filter.deviceTypes, err = set(q["device_types"], "device_types", validType); err != nil {
		return Params{}, err
	}
	if p.Filter.eventTypes, err = set(q["event_types"], "event_types", event.KnownType); err != nil {
		return Params{}, err
	}
	labels, err := list(q["label_filters"], "label_filters")
	if err != nil {
		return Params{}, err
	}
	seen := map[string]bool{}
	for _, lf := range labels {
		k, v, has := strings.Cut(lf, "=")
		if !event.ValidLabelKey(k) || !printable(v) {
			return Params{}, fmt.Errorf("%w: label_filters must be key or key=value, with a key of 1 to %d of A-Z a-z 0-9 _ - and dot, and a printable value", ErrInvalid, maxLabelKey)
		}
		if seen[lf] {
			continue
		}
		seen[lf] = true
		p.Filter.labels = append(p.Filter.labels, Label{Key: k, Value: v, HasValue: has})
	}
	slices.SortFunc(p.Filter.labels, func(a, b Label) int { return strings.Compare(a.String(), b.String()) })
	if v := q["ping_interval"]; len(v) > 0 {
		if len(v) > 1 {
			return Params{}, fmt.Errorf("%w: ping_interval given twice", ErrInvalid)
		}
		if p.PingInterval, err = parsePing(v[0]); err != nil {
			return Params{}, err
		}
	}
	if v := q["last_event_id"]; len(v) > 0 {
		if len(v) > 1 {
			return Params{}, fmt.Errorf("%w: last_event_id given twice", ErrInvalid)
		}
		p.LastEventID = v[0]
	}
	return p, nil
}

// parsePing reads a duration such as "10s" (a Go duration; DT's clients
// send whole seconds with an s), bounded to [MinPing, MaxPing].
func parsePing(s string) (time.Duration, error) {
	if len(s) > 32 {
		return 0, fmt.Errorf("%w: ping_interval", ErrInvalid)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%w: ping_interval must be a duration such as 10s", ErrInvalid)
	}
	if d < MinPing || d > MaxPing {
		return 0, fmt.Errorf("%w: ping_interval must be between %v and %v", ErrInvalid, MinPing, MaxPing)
	}
	return d, nil
}

func list(vals []string, name string) ([]string, error) {
	var out []string
	for _, v := range vals {
		for _, x := range strings.Split(v, ",") {
			if x = strings.TrimSpace(x); x == "" {
				continue
			}
			if len(x) > maxValueLen {
				return nil, fmt.Errorf("%w: a %s value is longer than %d", ErrInvalid, name, maxValueLen)
			}
			if len(out) == maxValues {
				return nil, fmt.Errorf("%w: more than %d %s", ErrInvalid, maxValues, name)
			}
			out = append(out, x)
		}
	}
	return out, nil
}

func set(vals []string, name string, valid func(string) bool) (map[string]struct{}, error) {
	l, err := list(vals, name)
	if err != nil || len(l) == 0 {
		return nil, err
	}
	out := make(map[string]struct{}, len(l))
	for _, v := range l {
		if !valid(v) {
			return nil, fmt.Errorf("%w: %s has an unknown or malformed value", ErrInvalid, name)
		}
		out[v] = struct{}{}
	}
	return out, nil
}

func charset(s string, max int, extra string) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return true
}

// printable refuses control characters, which have no place in a label
// value and would only confuse the logs and audit entries that echo it.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

func validID(s string) bool   { return charset(s, maxIDLen, "_-") }
func validType(s string) bool { return charset(s, maxTypeLen, "") }
