package anomaly_test

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/anomaly"
)

// phase is n receptions, 15 minutes apart, heard by the connectors in hear
// at their mean RSSI (with ±3 dB of integer-rounded noise); want lists the
// changes expected within the phase as "+KIND@i", i counting from 0 in it.
type phase struct {
	n    int
	hear map[string]float64
	want string
}

var home = map[string]float64{"A": -70, "B": -85, "C": -95}

func learnHome(n int) phase { return phase{n: n, hear: home} }

type radio struct {
	rng *rand.Rand
	tr  tracker
	l   anomaly.Location
	n   int // receptions so far
}

func newRadio(seed uint64) *radio { return &radio{rng: rand.New(rand.NewPCG(seed, 7))} }

func (r *radio) noisy(mean float64) float64 { return math.Round(mean + 6*r.rng.Float64() - 3) }

func (r *radio) hearers(hear map[string]float64) []anomaly.Hearer {
	var hs []anomaly.Hearer
	for _, id := range slices.Sorted(maps.Keys(hear)) {
		hs = append(hs, anomaly.Hearer{ConnectorID: id, RSSI: r.noisy(hear[id])})
	}
	return hs
}

func (r *radio) receive(t *testing.T, hs []anomaly.Hearer) []string {
	t.Helper()
	var ch []anomaly.Change
	r.l, ch = anomaly.ObserveReception(r.l, r.tr.open, hs, t0.Add(time.Duration(r.n)*15*time.Minute), anomaly.DefaultSettings())
	r.n++
	if err := finiteState(r.l); err != nil {
		t.Fatalf("reception %d: state %v", r.n-1, err)
	}
	if len(r.l.Links) > anomaly.DefaultSettings().MaxLinks {
		t.Fatalf("reception %d: %d links, more than %d", r.n-1, len(r.l.Links), anomaly.DefaultSettings().MaxLinks)
	}
	return r.tr.fold(t, ch)
}

func (r *radio) run(t *testing.T, phases []phase) {
	t.Helper()
	for pi, p := range phases {
		var got []string
		for i := range p.n {
			for _, c := range r.receive(t, r.hearers(p.hear)) {
				got = append(got, fmt.Sprintf("%s@%d", c, i))
			}
		}
		if join(got) != join(splitWant(p.want)) {
			t.Errorf("phase %d (%d receptions heard by %v): changes %s, want %s", pi, p.n, p.hear, join(got), join(splitWant(p.want)))
		}
	}
}

func TestLocation(t *testing.T) {
	cases := []struct {
		name   string
		phases []phase
	}{
		{"±3 dB of noise for a week", []phase{learnHome(20), {n: 700, hear: home}}},
		{"a connector going missing", []phase{learnHome(30),
			{n: 50, hear: map[string]float64{"A": -70, "C": -95}}, {n: 50, hear: home}}},
		{"its only regular connectors offline, a weaker one hears it", []phase{learnHome(30),
			{n: 10, hear: map[string]float64{"C": -95}}, {n: 10, hear: home}}},
		{"moved: opens after 3 displaced receptions, once; back home: clears after 3", []phase{learnHome(30),
			{n: 10, hear: map[string]float64{"A": -90, "B": -65, "C": -95}, want: "+LOCATION_CHANGE@2"},
			{n: 10, hear: home, want: "-LOCATION_CHANGE@2"}}},
		{"single reflections are no move", []phase{learnHome(30),
			{n: 1, hear: map[string]float64{"A": -95, "B": -60}}, learnHome(1),
			{n: 2, hear: map[string]float64{"A": -95, "B": -60}}, learnHome(1),
			{n: 1, hear: map[string]float64{"A": -95, "B": -60}}, learnHome(5)}},
		{"one connector of three re-oriented", []phase{learnHome(30),
			{n: 100, hear: map[string]float64{"A": -90, "B": -85, "C": -95}}}},
		{"carried away where only strangers hear it, stronger than its weakest regular", []phase{learnHome(30),
			{n: 5, hear: map[string]float64{"X": -60}, want: "+LOCATION_CHANGE@2"}}},
		{"a stranger weaker than its regulars is no move", []phase{learnHome(30),
			{n: 10, hear: map[string]float64{"X": -110}}}},
		{"a connector installed next to it", []phase{learnHome(30),
			{n: 100, hear: map[string]float64{"A": -70, "B": -85, "C": -95, "X": -45}},
			{n: 50, hear: map[string]float64{"X": -45}}}},
		{"no verdict while learning", []phase{
			{n: 5, hear: home}, {n: 5, hear: map[string]float64{"A": -40, "B": -120}}, {n: 10, hear: map[string]float64{"X": -30}}}},
		{"moved for a day: its new place is learned", []phase{learnHome(30),
			{n: 100, hear: map[string]float64{"A": -95, "B": -60}, want: "+LOCATION_CHANGE@2 -LOCATION_CHANGE@96"},
			{n: 100, hear: map[string]float64{"A": -95, "B": -60}}}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { newRadio(uint64(i)).run(t, tc.phases) })
	}
}

// TestLocationEvidence: what an operator reads about a moved sensor.
func TestLocationEvidence(t *testing.T) {
	r := newRadio(1)
	r.run(t, []phase{learnHome(30)})
	var got []string
	for range 3 {
		got = append(got, r.receive(t, []anomaly.Hearer{{ConnectorID: "A", RSSI: -95}, {ConnectorID: "B", RSSI: -60}})...)
	}
	o, ok := r.tr.open[anomaly.Moved]
	if !ok || o.Severity != anomaly.Warning {
		t.Fatalf("changes %v, open %v: want LOCATION_CHANGE, WARNING", got, r.tr.open)
	}
	if want := t0.Add(30 * 15 * time.Minute); !o.Since.Equal(want) {
		t.Errorf("since %v, want the first displaced reception, %v", o.Since, want)
	}
	cs, _ := o.Evidence["connectors"].([]any)
	if len(cs) != 2 {
		t.Fatalf("evidence connectors %v, want A and B", o.Evidence)
	}
	a := cs[0].(map[string]any)
	if a["connectorId"] != "A" || a["gotRssi"] != -95.0 || math.Abs(a["expectedRssi"].(float64)+70) > 1.5 {
		t.Errorf("evidence for A = %v, want got -95, expected about -70", a)
	}
}

// TestDisplacedReceptionsTeachNothing: a moved sensor must not learn its
// new place while it is displaced.
func TestDisplacedReceptionsTeachNothing(t *testing.T) {
	r := newRadio(2)
	r.run(t, []phase{learnHome(30)})
	before := maps.Clone(r.l.Links)
	for range 10 {
		r.receive(t, []anomaly.Hearer{{ConnectorID: "A", RSSI: -95}, {ConnectorID: "B", RSSI: -60}})
	}
	if !reflect.DeepEqual(before, r.l.Links) {
		t.Errorf("links after displaced receptions\n%v\nwant unchanged\n%v", r.l.Links, before)
	}
}

// TestObserveReceptionLeavesInputAlone: the caller's state is not written.
func TestObserveReceptionLeavesInputAlone(t *testing.T) {
	r := newRadio(3)
	r.run(t, []phase{learnHome(30)})
	before := maps.Clone(r.l.Links)
	anomaly.ObserveReception(r.l, nil, r.hearers(map[string]float64{"A": -70, "Z": -50}), t0, anomaly.DefaultSettings())
	if !reflect.DeepEqual(before, r.l.Links) {
		t.Errorf("ObserveReception changed the caller's links:\n%v\nwas\n%v", r.l.Links, before)
	}
}

func TestAbsurdHearers(t *testing.T) {
	r := newRadio(4)
	r.run(t, []phase{learnHome(30)})
	for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), 50, -500, math.MaxFloat64} {
		hs := append(r.hearers(home), anomaly.Hearer{ConnectorID: "A", RSSI: bad}, anomaly.Hearer{ConnectorID: "", RSSI: -60},
			anomaly.Hearer{ConnectorID: "Y", RSSI: bad})
		hs[0].RSSI = bad // A's own report is the absurd one; its duplicate is ignored
		if got := r.receive(t, hs); len(got) != 0 {
			t.Errorf("RSSI %v: changes %v, want none", bad, got)
		}
	}
	if _, ok := r.l.Links["Y"]; ok {
		t.Errorf("a connector with only absurd reports was learned: %v", r.l.Links["Y"])
	}
}

func TestLinksBounded(t *testing.T) {
	r := newRadio(5)
	for i := range 200 {
		hs := r.hearers(home)
		hs = append(hs, anomaly.Hearer{ConnectorID: fmt.Sprintf("roaming-%d", i), RSSI: -100})
		if got := r.receive(t, hs); len(got) != 0 {
			t.Fatalf("reception %d: changes %v, want none", i, got)
		}
	}
	for _, id := range []string{"A", "B", "C"} {
		if _, ok := r.l.Links[id]; !ok {
			t.Errorf("regular connector %s dropped to bound the links: %v", id, slices.Sorted(maps.Keys(r.l.Links)))
		}
	}
}
