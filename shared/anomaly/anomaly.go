package anomaly

import (
	"maps"
	"math"
	"strconv"
	"time"
)

// Kind names one trouble.
type Kind string

// The kinds of trouble.
const (
	Silent           Kind = "SILENT"            // no packet for more than k × its reporting interval
	HandshakeFlood   Kind = "HANDSHAKE_FLOOD"   // more handshakes than a sensor's own limits allow (a cloned key)
	CounterJump      Kind = "COUNTER_JUMP"      // a reading sequence jump larger than the backlog could explain
	CounterBackwards Kind = "COUNTER_BACKWARDS" // a sequence going backwards outside a reset (new boot epoch)
	Moved            Kind = "LOCATION_CHANGE"   // the connectors hearing it and their RSSI shift beyond its learned spread
	BatteryDrain     Kind = "BATTERY_DRAIN"     // battery dropping faster than its type's normal curve
)

// Kinds lists every kind, in a stable order: what a summary counts.
func Kinds() []Kind {
	return []Kind{Silent, HandshakeFlood, CounterJump, CounterBackwards, Moved, BatteryDrain}
}

// Severities.
const (
	Warning  = "WARNING"
	Critical = "CRITICAL"
)

// Open is a trouble that started and has not cleared.
type Open struct {
	Kind     Kind           `firestore:"kind"`
	Severity string         `firestore:"severity"`
	Since    time.Time      `firestore:"since"`
	Evidence map[string]any `firestore:"evidence,omitempty"`
}

// Health is a device's stored state. Each part is written by one kind of
// transaction (see the package comment); Open by whichever detects or
// clears the kind.
type Health struct {
	Traffic    Traffic       `firestore:"traffic"`
	Handshakes Handshakes    `firestore:"handshakes"`
	Location   Location      `firestore:"location"`
	Open       map[Kind]Open `firestore:"open,omitempty"`
}

// Change is a trouble starting (Opened) or clearing. Since is when it
// started; At is when it was seen to start or to clear. Evidence holds only
// values Firestore and JSON store as they are: strings (sequence numbers
// among them, as uint64 does not fit Firestore's integers), int64, float64
// (never NaN or infinite), bool, time.Time, []any and map[string]any.
type Change struct {
	Kind     Kind
	Opened   bool
	Severity string
	Evidence map[string]any
	Since    time.Time
	At       time.Time
}

// Apply folds changes into open: an opened kind is added, a cleared one
// deleted. open itself is not modified; the result is a new map (nil when
// nothing is open).
func Apply(open map[Kind]Open, ch []Change) map[Kind]Open {
	out := maps.Clone(open)
	for _, c := range ch {
		if c.Opened {
			if out == nil {
				out = make(map[Kind]Open)
			}
			out[c.Kind] = Open{Kind: c.Kind, Severity: c.Severity, Since: c.Since, Evidence: c.Evidence}
		} else {
			delete(out, c.Kind)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Review is the sweep's look at a device at now: it opens SILENT when the
// silence deadline has passed and clears a HANDSHAKE_FLOOD whose window has
// gone quiet. It changes no state, so the sweep stores only Apply's result
// and the next ReviewAt.
func Review(h Health, now time.Time, s Settings) []Change {
	if !sane(now) {
		return nil
	}
	s = s.sane()
	var out []Change
	if c, ok := reviewSilence(h.Traffic, h.Open, now); ok {
		out = append(out, c)
	}
	if c, ok := reviewFlood(h.Handshakes, h.Open, now, s); ok {
		out = append(out, c)
	}
	return out
}

// ReviewAt is when the sweep must next look at the device: the silence
// deadline while the device is not yet silent, or the time a flood can
// clear by itself; zero means never (the device's own traffic will clear
// what is open).
func ReviewAt(h Health, s Settings) time.Time {
	s = s.sane()
	var at time.Time
	earliest := func(t time.Time) {
		if !t.IsZero() && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	if _, open := h.Open[Silent]; !open {
		earliest(h.Traffic.SilentAt)
	}
	if o, open := h.Open[HandshakeFlood]; open {
		earliest(floodQuietAt(h.Handshakes, o, s))
	}
	return at
}

// opened and cleared build the Changes; each detector calls them only
// after checking open, which is what keeps a kind from opening twice or
// clearing when it was never open.
func opened(k Kind, severity string, since, at time.Time, ev map[string]any) Change {
	return Change{Kind: k, Opened: true, Severity: severity, Since: since, At: at, Evidence: ev}
}

func cleared(o Open, k Kind, at time.Time, ev map[string]any) Change {
	return Change{Kind: k, Severity: o.Severity, Since: o.Since, At: at, Evidence: ev}
}

func isOpen(open map[Kind]Open, k Kind) bool {
	_, ok := open[k]
	return ok
}

// Times outside these years are absurd: no device speaks before 2000, and
// Firestore stores nothing after 9999. A time outside them is treated as no
// time at all.
var (
	minTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9000, 1, 1, 0, 0, 0, 0, time.UTC)
)

func sane(t time.Time) bool {
	return !t.Before(minTime) && t.Before(maxTime)
}

// seconds is d in seconds, for evidence and rates.
func seconds(d time.Duration) float64 { return d.Seconds() }

// finite returns v, or 0 when v is NaN or infinite, for evidence.
func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// seqString is a sequence number as evidence: a decimal string, as proto3
// JSON writes 64-bit integers, because uint64 fits neither Firestore's
// integers nor a JSON number.
func seqString(v uint64) string { return strconv.FormatUint(v, 10) }
