package ingest

import (
	"maps"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/store"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func TestChooseConnector(t *testing.T) {
	t.Parallel()
	heard := func(id string, rssi, snr float64) store.Hearer {
		return store.Hearer{ConnectorID: id, RSSI: rssi, SNR: snr, Received: t0}
	}
	tests := []struct {
		name    string
		hearers []store.Hearer
		links   map[string]store.Link
		want    string
	}{
		{"the only hearer", []store.Hearer{heard("a", -110, -5)}, nil, "a"},
		{"the stronger signal", []store.Hearer{heard("a", -95, 5), heard("b", -70, 5)}, nil, "b"},
		{"positive SNR adds nothing", []store.Hearer{heard("a", -80, 20), heard("b", -79, 0)}, nil, "b"},
		// -80-15 = -95 adjusted, below b's -90.
		{"negative SNR lowers the score", []store.Hearer{heard("a", -80, -15), heard("b", -90, 1)}, nil, "b"},
		{"a tie goes to the smaller id", []store.Hearer{heard("b", -80, 0), heard("a", -80, 0)}, nil, "a"},
		{
			// a: 0.7*-70 + 0.3*-120 = -85; b: -80 (both less 15 for
			// having no reply history).
			"recent signal through a link smooths the score",
			[]store.Hearer{heard("a", -70, 0), heard("b", -80, 0)},
			map[string]store.Link{"a": {RSSI: -120, LastSeen: t0}},
			"b",
		},
		{
			// a: -75 - 30*(1-1/12) = -102.5; b: -85 - 15 = -100.
			"a link without history beats a stronger one that fails",
			[]store.Hearer{heard("a", -75, 0), heard("b", -85, 0)},
			map[string]store.Link{"a": {Failed: 10}},
			"b",
		},
		{
			"acknowledged replies earn trust",
			[]store.Hearer{heard("a", -80, 0), heard("b", -75, 0)},
			map[string]store.Link{"a": {Acked: 50}},
			"a",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := chooseConnector(tc.hearers, tc.links); got != tc.want {
				t.Fatalf("chose %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFeedback(t *testing.T) {
	t.Parallel()
	pending := &store.PendingReply{Via: "a", Counter: 7, Sent: t0}
	tests := []struct {
		name     string
		pending  *store.PendingReply
		received []uint64
		now      time.Time
		want     store.ReplyVerdict
		judged   bool
	}{
		{"no reply pending", nil, []uint64{7}, t0.Add(time.Minute), store.ReplyVerdict{}, false},
		{"a pending reply without a connector", &store.PendingReply{Counter: 7, Sent: t0}, []uint64{7}, t0, store.ReplyVerdict{}, false},
		{"listed: acknowledged", pending, []uint64{3, 7}, t0.Add(time.Second), store.ReplyVerdict{Via: "a", Acked: true}, true},
		{"listed long after: acknowledged", pending, []uint64{7}, t0.Add(time.Hour), store.ReplyVerdict{Via: "a", Acked: true}, true},
		{"not listed within the grace: not judged yet", pending, []uint64{6}, t0.Add(feedbackGrace - time.Millisecond), store.ReplyVerdict{}, false},
		{"not listed after the grace: lost", pending, nil, t0.Add(feedbackGrace), store.ReplyVerdict{Via: "a"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, judged := feedback(tc.pending, tc.received, tc.now)
			if got != tc.want || judged != tc.judged {
				t.Fatalf("feedback = %+v, %v; want %+v, %v", got, judged, tc.want, tc.judged)
			}
		})
	}
}

func TestExpectedHearers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		links map[string]store.Link
		want  []string
	}{
		{"no links", nil, nil},
		{"heard recently", map[string]store.Link{"a": {LastSeen: t0.Add(-time.Minute)}}, []string{"a"}},
		{"heard long ago", map[string]store.Link{"a": {LastSeen: t0.Add(-10 * time.Minute)}}, nil},
		{"some of each", map[string]store.Link{
			"a": {LastSeen: t0.Add(-9 * time.Minute)},
			"b": {LastSeen: t0.Add(-time.Hour)},
			"c": {LastSeen: t0},
		}, []string{"a", "c"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := slices.Sorted(maps.Keys(expectedHearers(tc.links, t0)))
			if !slices.Equal(got, tc.want) {
				t.Fatalf("expected %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSightings(t *testing.T) {
	t.Parallel()
	hs := []store.Hearer{
		{ConnectorID: "a", RSSI: -80, Received: t0},
		{ConnectorID: "b", RSSI: -100, Received: t0.Add(time.Millisecond)},
	}
	tests := []struct {
		name  string
		links map[string]store.Link
		want  []store.Sighting
	}{
		{"first time: the signal as heard", nil, []store.Sighting{
			{ConnectorID: "a", RSSI: -80, Received: t0},
			{ConnectorID: "b", RSSI: -100, Received: t0.Add(time.Millisecond)},
		}},
		{"a known link: smoothed", map[string]store.Link{"b": {RSSI: -90, LastSeen: t0.Add(-time.Hour)}}, []store.Sighting{
			{ConnectorID: "a", RSSI: -80, Received: t0},
			{ConnectorID: "b", RSSI: 0.7*-90 + 0.3*-100, Received: t0.Add(time.Millisecond)},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := sightings(hs, tc.links); !slices.Equal(got, tc.want) {
				t.Fatalf("sightings %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestSightingsOncePerConnector: one sighting per connector, its first
// copy's, since a write cannot set a link's fields twice; and a link
// whose stored RSSI is not a number does not poison the new one.
func TestSightingsOncePerConnector(t *testing.T) {
	t.Parallel()
	a := store.Hearer{ConnectorID: "a", RSSI: -80, Received: t0}
	a2 := store.Hearer{ConnectorID: "a", RSSI: -60, Received: t0.Add(5 * time.Millisecond)}
	b := store.Hearer{ConnectorID: "b", RSSI: -100, Received: t0}
	tests := []struct {
		name    string
		hearers []store.Hearer
		links   map[string]store.Link
		want    []store.Sighting
	}{
		{"a connector twice", []store.Hearer{a, b, a2}, nil, []store.Sighting{
			{ConnectorID: "a", RSSI: -80, Received: t0}, {ConnectorID: "b", RSSI: -100, Received: t0},
		}},
		{"a link at +Inf", []store.Hearer{a}, map[string]store.Link{"a": {RSSI: math.Inf(1), LastSeen: t0}},
			[]store.Sighting{{ConnectorID: "a", RSSI: -80, Received: t0}}},
		{"a link at NaN", []store.Hearer{a}, map[string]store.Link{"a": {RSSI: math.NaN(), LastSeen: t0}},
			[]store.Sighting{{ConnectorID: "a", RSSI: -80, Received: t0}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := sightings(tc.hearers, tc.links); !slices.Equal(got, tc.want) {
				t.Fatalf("sightings %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestMergeHearers(t *testing.T) {
	t.Parallel()
	a := store.Hearer{ConnectorID: "a", RSSI: -70}
	a2 := store.Hearer{ConnectorID: "a", RSSI: -71}
	b := store.Hearer{ConnectorID: "b", RSSI: -90}
	tests := []struct {
		name           string
		stored, joined []store.Hearer
		want           []store.Hearer
	}{
		{"nothing joined", []store.Hearer{a}, nil, []store.Hearer{a}},
		{"a new connector", []store.Hearer{a}, []store.Hearer{b}, []store.Hearer{a, b}},
		{"a connector already recorded", []store.Hearer{a}, []store.Hearer{a2, b}, []store.Hearer{a, b}},
		{"nothing recorded", nil, []store.Hearer{b}, []store.Hearer{b}},
		// An honest gateway that forwards a packet twice: the record keeps
		// both copies when the second reached another instance.
		{"a connector twice in the record", []store.Hearer{a, b, a2}, nil, []store.Hearer{a, b}},
		{"a connector twice among the joined", nil, []store.Hearer{b, a, a2}, []store.Hearer{b, a}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := mergeHearers(tc.stored, tc.joined); !slices.Equal(got, tc.want) {
				t.Fatalf("merged %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPlanEvents(t *testing.T) {
	t.Parallel()
	ev := func(id, typ string, at time.Time, backfilled bool) storedEvent {
		return storedEvent{id: id, doc: store.Event{EventType: typ, Timestamp: at}, data: map[string]any{"id": id}, backfilled: backfilled}
	}
	old := ev("old", "temperature", t0.Add(-time.Hour), true)
	newer := ev("newer", "temperature", t0, false)
	older := ev("older", "temperature", t0.Add(-time.Minute), false)
	hum := ev("hum", "humidity", t0, false)
	tests := []struct {
		name     string
		events   []storedEvent
		stored   map[string]bool
		fresh    []string
		reused   int
		reported map[string]string // type to the id of the event reported
	}{
		{"all new", []storedEvent{older, newer, hum}, nil, []string{"older", "newer", "hum"}, 0,
			map[string]string{"temperature": "newer", "humidity": "hum"}},
		{"the newest reading wins, whatever the order", []storedEvent{newer, older}, nil, []string{"newer", "older"}, 0,
			map[string]string{"temperature": "newer"}},
		{"a resent reading stored before: once", []storedEvent{old, newer}, map[string]bool{"old": true}, []string{"newer"}, 0,
			map[string]string{"temperature": "newer"}},
		{"a backfilled reading is never reported", []storedEvent{old}, nil, []string{"old"}, 0, map[string]string{}},
		{"a new reading under a stored id is dropped", []storedEvent{older, newer}, map[string]bool{"newer": true}, []string{"older"}, 1,
			map[string]string{"temperature": "older"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := planEvents(tc.events, tc.stored)
			var ids, fresh []string
			for _, e := range tc.events {
				ids = append(ids, e.id)
			}
			for _, e := range w.fresh {
				fresh = append(fresh, e.id)
			}
			if !slices.Equal(w.ids, ids) || !slices.Equal(fresh, tc.fresh) || w.reused != tc.reused {
				t.Fatalf("ids %v fresh %v reused %d; want %v, %v, %d", w.ids, fresh, w.reused, ids, tc.fresh, tc.reused)
			}
			reported := map[string]string{}
			for typ, data := range w.reported {
				reported[typ] = data.(map[string]any)["id"].(string)
			}
			if !maps.Equal(reported, tc.reported) {
				t.Fatalf("reported %v, want %v", reported, tc.reported)
			}
		})
	}
}
