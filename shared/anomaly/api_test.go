package anomaly_test

import (
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/anomaly"
)

func TestApply(t *testing.T) {
	open := anomaly.Change{Kind: anomaly.Silent, Opened: true, Severity: anomaly.Warning, Since: t0, At: t0.Add(time.Minute), Evidence: map[string]any{"factor": 3.0}}
	clear := anomaly.Change{Kind: anomaly.Silent, Severity: anomaly.Warning, Since: t0, At: t0.Add(time.Hour)}
	flood := anomaly.Change{Kind: anomaly.HandshakeFlood, Opened: true, Severity: anomaly.Critical, Since: t0}
	cases := []struct {
		name string
		in   map[anomaly.Kind]anomaly.Open
		ch   []anomaly.Change
		want map[anomaly.Kind]anomaly.Open
	}{
		{"nothing to nothing", nil, nil, nil},
		{"an opening into nil", nil, []anomaly.Change{open},
			map[anomaly.Kind]anomaly.Open{anomaly.Silent: {Kind: anomaly.Silent, Severity: anomaly.Warning, Since: t0, Evidence: open.Evidence}}},
		{"opened and cleared", nil, []anomaly.Change{open, flood, clear},
			map[anomaly.Kind]anomaly.Open{anomaly.HandshakeFlood: {Kind: anomaly.HandshakeFlood, Severity: anomaly.Critical, Since: t0}}},
		{"the last one cleared", map[anomaly.Kind]anomaly.Open{anomaly.Silent: {Kind: anomaly.Silent}}, []anomaly.Change{clear}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := map[anomaly.Kind]anomaly.Open{}
			for k, v := range tc.in {
				before[k] = v
			}
			got := anomaly.Apply(tc.in, tc.ch)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Apply = %v, want %v", got, tc.want)
			}
			if len(tc.in) != len(before) {
				t.Errorf("Apply changed its input: %v, was %v", tc.in, before)
			}
		})
	}
}

// TestSettings: zero fields and absurd ones take the defaults, so a
// misconfigured sweep behaves like a default one.
func TestSettings(t *testing.T) {
	absurd := anomaly.Settings{
		SilentFactor: math.NaN(), SilentFloor: -time.Second, GapAlpha: math.Inf(1), FloodSlack: -1,
		ZScore: math.NaN(), SigmaFloor: math.Inf(-1), DisplacedShare: 7, RegularShare: math.NaN(),
		NormalDrain: map[string]float64{"temperature": math.NaN()},
	}
	p := anomaly.Packet{At: t0, Seqs: []uint64{1}, Interval: 15 * time.Minute}
	for _, s := range []anomaly.Settings{{}, absurd} {
		tf, _ := anomaly.ObservePacket(anomaly.Traffic{}, nil, p, s)
		want, _ := anomaly.ObservePacket(anomaly.Traffic{}, nil, p, anomaly.DefaultSettings())
		if !reflect.DeepEqual(tf, want) {
			t.Errorf("settings %+v: traffic %+v, want the defaults' %+v", s, tf, want)
		}
	}
	r := newRadio(9)
	for range 30 {
		r.l, _ = anomaly.ObserveReception(r.l, nil, r.hearers(home), t0, absurd)
	}
	for range 10 {
		var ch []anomaly.Change
		r.l, ch = anomaly.ObserveReception(r.l, nil, r.hearers(home), t0, absurd)
		if len(ch) != 0 {
			t.Fatalf("absurd settings: changes %v on normal receptions", ch)
		}
	}
}

// TestReviewAtEarliest: with a flood open and a silence due, the sweep is
// asked for the earlier, and one review handles both.
func TestReviewAtEarliest(t *testing.T) {
	s := anomaly.DefaultSettings()
	var tr tracker
	var h anomaly.Health
	var ch []anomaly.Change
	h.Traffic, ch = anomaly.ObservePacket(h.Traffic, nil, anomaly.Packet{At: t0, Seqs: []uint64{1}, Interval: 20 * time.Second}, s)
	tr.fold(t, ch)
	for i := range 30 {
		h.Handshakes, ch = anomaly.ObserveHandshake(h.Handshakes, tr.open, t0.Add(time.Duration(i)*100*time.Millisecond), s)
		tr.fold(t, ch)
	}
	h.Open = tr.open
	if got, want := anomaly.ReviewAt(h, s), t0.Add(time.Minute); !got.Equal(want) {
		t.Errorf("ReviewAt = %v, want the silence deadline %v", got, want)
	}
	got := tr.fold(t, anomaly.Review(h, t0.Add(time.Minute), s))
	h.Open = tr.open
	if join(got) != "+SILENT" {
		t.Errorf("review at the deadline: %s, want +SILENT", join(got))
	}
	if at, want := anomaly.ReviewAt(h, s), t0.Add(2*time.Minute); !at.Equal(want) {
		t.Errorf("ReviewAt = %v, want the flood's quiet time %v", at, want)
	}
	got = tr.fold(t, anomaly.Review(h, t0.Add(3*time.Minute), s))
	if join(got) != "-HANDSHAKE_FLOOD" {
		t.Errorf("review after the quiet window: %s, want -HANDSHAKE_FLOOD", join(got))
	}
}

// TestNonsenseStoredState: a document edited by hand, or written by a
// buggy version, is repaired rather than trusted: no panic, no NaN kept.
func TestNonsenseStoredState(t *testing.T) {
	s := anomaly.DefaultSettings()
	nan := math.NaN()
	tf := anomaly.Traffic{
		LastPacket: t0, Gap: -time.Hour, Gaps: -3, Rate: nan, Rates: 99, Readings: 5, Highest: -1, HighestAt: t0,
		Owing: true, OwedLow: 9, OwedHigh: 3, Clean: -7, BatteryRef: 500, BatteryRefAt: t0, DrainFromAt: t0,
	}
	loc := anomaly.Location{Receptions: 1 << 62, Displaced: -5, Links: map[string]anomaly.Link{
		"A": {Mean: nan, Var: 1, Heard: 1, Count: 50}, "B": {Mean: -80, Var: -4, Heard: 1, Count: 50},
		"C": {Mean: -80, Var: math.Inf(1), Heard: 1, Count: 50}, "D": {Mean: -80, Var: 4, Heard: 9, Count: 50},
		"E": {Mean: -80, Var: 4, Heard: 1, Count: 50},
	}}
	open := map[anomaly.Kind]anomaly.Open{anomaly.BatteryDrain: {Kind: anomaly.BatteryDrain}}
	for i := range 20 {
		at := t0.Add(time.Duration(i) * time.Minute)
		var ch []anomaly.Change
		tf, ch = anomaly.ObservePacket(tf, open, anomaly.Packet{At: at, Seqs: []uint64{uint64(i)}, Battery: []anomaly.BatteryReading{{Percentage: 50, At: at}}}, s)
		open = anomaly.Apply(open, ch)
		loc, ch = anomaly.ObserveReception(loc, open, []anomaly.Hearer{{ConnectorID: "A", RSSI: -70}, {ConnectorID: "E", RSSI: -81}}, at, s)
		open = anomaly.Apply(open, ch)
		if err := finiteState(anomaly.Health{Traffic: tf, Location: loc}); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	for _, id := range []string{"B", "C", "D"} {
		if _, ok := loc.Links[id]; ok {
			t.Errorf("link %s with nonsense numbers kept: %+v", id, loc.Links[id])
		}
	}
}
