package ingest

import (
	"maps"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/radio"
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
			if got := chooseConnector(tc.hearers, tc.links, ""); got.via != tc.want {
				t.Fatalf("chose %q, want %q", got.via, tc.want)
			}
		})
	}
}

// TestLyingConnector: a connector that claims -30 dBm for every packet and
// drops every reply it is given cannot capture a device's replies.
func TestLyingConnector(t *testing.T) {
	t.Parallel()
	heard := func(id string, rssi float64) store.Hearer {
		return store.Hearer{ConnectorID: id, RSSI: rssi, SNR: 5, Received: t0}
	}
	both := []store.Hearer{heard("liar", -30), heard("honest", -90)}
	tests := []struct {
		name    string
		hearers []store.Hearer
		links   map[string]store.Link
		avoid   string
		want    route
	}{
		{"before any history the claim wins once", both, nil, "", route{via: "liar"}},
		{
			"the reply after one lost through it goes another way",
			both, map[string]store.Link{"liar": {RSSI: -30, LastSeen: t0, Replies: 1}, "honest": {RSSI: -90, LastSeen: t0}},
			"liar", route{via: "honest", passed: "liar", reason: reasonReplyLost},
		},
		{
			// Its first reply is not judged yet (the device spoke again
			// within feedbackGrace): no second reply on credit while the
			// honest one has delivered.
			"one reply out and none acknowledged: the proven way",
			both, map[string]store.Link{"liar": {RSSI: -30, LastSeen: t0, Replies: 1}, "honest": {RSSI: -90, LastSeen: t0, Replies: 1, Acked: 1}},
			"", route{via: "honest", passed: "liar", reason: reasonUnproven},
		},
		{
			"unproven but no proven alternative: the signal decides",
			both, map[string]store.Link{"liar": {RSSI: -30, LastSeen: t0, Replies: 1}, "honest": {RSSI: -90, LastSeen: t0}},
			"", route{via: "liar"},
		},
		{
			"never acknowledged, lost once: below every other hearer",
			both, map[string]store.Link{"liar": {RSSI: -30, LastSeen: t0, Replies: 1, Failed: 1}, "honest": {RSSI: -90, LastSeen: t0, Replies: 1, Acked: 1}},
			"", route{via: "honest", passed: "liar", reason: reasonUnacknowledged},
		},
		{
			"liar with 0 acks against honest with acks",
			both, map[string]store.Link{"liar": {RSSI: -30, LastSeen: t0, Replies: 5, Failed: 5}, "honest": {RSSI: -90, LastSeen: t0, Replies: 40, Acked: 40}},
			"", route{via: "honest", passed: "liar", reason: reasonUnacknowledged},
		},
		{
			// The old capped penalty (30 dB) lost to a 60 dB lie.
			"no RSSI advantage outweighs lost replies",
			[]store.Hearer{heard("liar", -20), heard("honest", -140)},
			map[string]store.Link{"liar": {RSSI: -20, LastSeen: t0, Replies: 100, Failed: 90, Acked: 10}, "honest": {RSSI: -140, LastSeen: t0, Replies: 3, Acked: 2, Failed: 1}},
			"", route{via: "honest", passed: "liar", reason: reasonUnacknowledged},
		},
		{
			"an honest link lost once, with acks, is avoided for one reply only",
			both[1:], map[string]store.Link{"honest": {RSSI: -90, LastSeen: t0, Replies: 11, Acked: 10, Failed: 1}},
			"", route{via: "honest"},
		},
		{
			"the only hearer answers even if it lost the last reply",
			both[:1], map[string]store.Link{"liar": {RSSI: -30, LastSeen: t0, Replies: 3, Failed: 3}},
			"liar", route{via: "liar"},
		},
		{
			"among discredited hearers the signal decides",
			both, map[string]store.Link{"liar": {Failed: 2}, "honest": {Failed: 2}},
			"", route{via: "liar"},
		},
		{
			"a NaN claim counts as the weakest",
			[]store.Hearer{heard("liar", math.NaN()), heard("honest", -120)}, nil,
			"", route{via: "honest"},
		},
		{
			"an infinite claim counts as the strongest plausible",
			[]store.Hearer{heard("liar", math.Inf(1)), heard("honest", -19)}, nil,
			"", route{via: "honest"},
		},
		{
			// 0.7*-20 + 0.3*clamp(+1e308) would be +3e307 unclamped.
			"a link's implausible history is clamped",
			[]store.Hearer{heard("liar", -60), heard("honest", -40)},
			map[string]store.Link{"liar": {RSSI: 1e308, LastSeen: t0}},
			"", route{via: "honest"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := chooseConnector(tc.hearers, tc.links, tc.avoid); got != tc.want {
				t.Fatalf("chose %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestLiarLosesAfterOneHandshake plays a device's first replies through
// choice and feedback as ingest does: the liar wins the first handshake's
// response, the retry proves it lost, and from then on every reply goes
// through the honest connector.
func TestLiarLosesAfterOneHandshake(t *testing.T) {
	t.Parallel()
	hearers := []store.Hearer{
		{ConnectorID: "liar", RSSI: -30, SNR: 10, Received: t0},
		{ConnectorID: "honest", RSSI: -90, SNR: 5, Received: t0},
	}
	links := map[string]store.Link{}
	count := func(v store.ReplyVerdict) {
		l := links[v.Via]
		if v.Acked {
			l.Acked++
		} else {
			l.Failed++
		}
		links[v.Via] = l
	}
	now := t0
	r := chooseConnector(hearers, links, "")
	if r.via != "liar" {
		t.Fatalf("first handshake answered via %q; the test expects the liar to win once", r.via)
	}
	pending := &store.PendingReply{Via: r.via, Sent: now, Session: 41}
	// The liar drops it; the sensor handshakes again 5s later.
	now = now.Add(5 * time.Second)
	v, ok := feedback(pending, heardBack{handshake: true}, now)
	if !ok || v.Acked || v.Via != "liar" {
		t.Fatalf("the retry judged %+v, %v; want the liar's response lost", v, ok)
	}
	count(v)
	r = chooseConnector(hearers, links, lostVia(v))
	if r.via != "honest" {
		t.Fatalf("the retry's response went via %q, want honest", r.via)
	}
	pending = &store.PendingReply{Via: r.via, Sent: now, Session: 42}
	for i := range 20 {
		now = now.Add(2 * time.Second)
		v, ok = feedback(pending, heardBack{session: 42, received: []uint64{uint64(i)}}, now)
		if !ok || !v.Acked || v.Via != "honest" {
			t.Fatalf("packet %d judged %+v, %v; want the honest reply acknowledged", i, v, ok)
		}
		count(v)
		if r = chooseConnector(hearers, links, lostVia(v)); r.via != "honest" {
			t.Fatalf("reply %d went via %q, want honest", i, r.via)
		}
		pending = &store.PendingReply{Via: r.via, Counter: int64(i + 1), Sent: now}
	}
}

func TestFeedback(t *testing.T) {
	t.Parallel()
	pending := &store.PendingReply{Via: "a", Counter: 7, Sent: t0}
	response := &store.PendingReply{Via: "a", Sent: t0, Session: 99}
	data := func(session uint32, received ...uint64) heardBack {
		return heardBack{session: session, received: received}
	}
	retry := heardBack{handshake: true}
	tests := []struct {
		name    string
		pending *store.PendingReply
		uplink  heardBack
		now     time.Time
		want    store.ReplyVerdict
		judged  bool
	}{
		{"no reply pending", nil, data(5, 7), t0.Add(time.Minute), store.ReplyVerdict{}, false},
		{"a pending reply without a connector", &store.PendingReply{Counter: 7, Sent: t0}, data(5, 7), t0, store.ReplyVerdict{}, false},
		{"listed: acknowledged", pending, data(5, 3, 7), t0.Add(time.Second), store.ReplyVerdict{Via: "a", Acked: true}, true},
		{"listed long after: acknowledged", pending, data(5, 7), t0.Add(time.Hour), store.ReplyVerdict{Via: "a", Acked: true}, true},
		{"not listed within the grace: not judged yet", pending, data(5, 6), t0.Add(feedbackGrace - time.Millisecond), store.ReplyVerdict{}, false},
		{"not listed after the grace: lost", pending, data(5), t0.Add(feedbackGrace), store.ReplyVerdict{Via: "a"}, true},
		{"a data reply is not judged by a handshake (rekeying)", pending, retry, t0.Add(time.Hour), store.ReplyVerdict{}, false},
		{"a response used: acknowledged", response, data(99), t0.Add(time.Second), store.ReplyVerdict{Via: "a", Acked: true}, true},
		{"a response used long after: acknowledged", response, data(99, 1), t0.Add(time.Hour), store.ReplyVerdict{Via: "a", Acked: true}, true},
		{"another handshake after the grace: the response was lost", response, retry, t0.Add(feedbackGrace), store.ReplyVerdict{Via: "a"}, true},
		{"another handshake within the grace: not judged yet", response, retry, t0.Add(feedbackGrace - time.Millisecond), store.ReplyVerdict{}, false},
		{"a late packet of an older session: not judged", response, data(98, 7), t0.Add(time.Minute), store.ReplyVerdict{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, judged := feedback(tc.pending, tc.uplink, tc.now)
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
		name      string
		events    []storedEvent
		stored    map[string][]byte
		fresh     []string
		republish []string // the stored JSON published again
		reused    int
		reported  map[string]string // type to the id of the event reported
	}{
		{"all new", []storedEvent{older, newer, hum}, nil, []string{"older", "newer", "hum"}, nil, 0,
			map[string]string{"temperature": "newer", "humidity": "hum"}},
		{"the newest reading wins, whatever the order", []storedEvent{newer, older}, nil, []string{"newer", "older"}, nil, 0,
			map[string]string{"temperature": "newer"}},
		{"a resent reading stored before: once, and published again", []storedEvent{old, newer}, map[string][]byte{"old": []byte("old-json")},
			[]string{"newer"}, []string{"old-json"}, 0, map[string]string{"temperature": "newer"}},
		{"a backfilled reading is never reported", []storedEvent{old}, nil, []string{"old"}, nil, 0, map[string]string{}},
		{"a new reading under a stored id is dropped, not published", []storedEvent{older, newer}, map[string][]byte{"newer": []byte("newer-json")},
			[]string{"older"}, nil, 1, map[string]string{"temperature": "older"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := planEvents(tc.events, tc.stored)
			var fresh, republish []string
			for _, e := range w.fresh {
				fresh = append(fresh, e.id)
			}
			for _, js := range w.republish {
				republish = append(republish, string(js))
			}
			if !slices.Equal(fresh, tc.fresh) || !slices.Equal(republish, tc.republish) || w.reused != tc.reused {
				t.Fatalf("fresh %v republished %v reused %d; want %v, %v, %d", fresh, republish, w.reused, tc.fresh, tc.republish, tc.reused)
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

func TestPendingReply(t *testing.T) {
	t.Parallel()
	var resp []byte
	for n := 0; n < 256 && resp == nil; n++ {
		pkt, err := radio.Response{SenderIndex: 42, ReceiverIndex: 7, Noise: make([]byte, n)}.MarshalBinary()
		if _, perr := radio.ParseResponse(pkt); err == nil && perr == nil {
			resp = pkt
		}
	}
	if resp == nil {
		t.Fatal("no response size parses")
	}
	tests := []struct {
		name string
		rec  store.Reception
		want *store.PendingReply
	}{
		{"a handshake's response, by the session it opens", store.Reception{Reply: resp}, &store.PendingReply{Via: "a", Sent: t0, Session: 42}},
		{"not a response: nothing to judge", store.Reception{Reply: []byte{9, 9}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := pendingReply(tc.rec, "a", t0)
			if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
				t.Fatalf("pending %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestBoundedSightings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rssi float64
		want float64
	}{
		{"plausible stays", -90, -90},
		{"too strong is clamped", -5, strongestRSSI},
		{"too weak is clamped", -400, weakestRSSI},
		{"NaN is the weakest", math.NaN(), weakestRSSI},
		{"+Inf is the strongest plausible", math.Inf(1), strongestRSSI},
		{"-Inf is the weakest", math.Inf(-1), weakestRSSI},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := boundedSightings([]store.Sighting{{ConnectorID: "a", RSSI: tc.rssi}})
			if got[0].RSSI != tc.want {
				t.Fatalf("rssi %v, want %v", got[0].RSSI, tc.want)
			}
		})
	}
}

// TestReplyRank: of the instances holding copies of one packet, the one
// with the strongest link's copy answers first, and no two holding
// different connectors' copies rank the same.
func TestReplyRank(t *testing.T) {
	t.Parallel()
	links := map[string]store.Link{
		"a": {RSSI: -70, LastSeen: t0.Add(-time.Minute)},
		"b": {RSSI: -90, LastSeen: t0.Add(-time.Minute)},
		"c": {RSSI: -110, LastSeen: t0.Add(-time.Minute)},
		"d": {RSSI: -60, LastSeen: t0.Add(-time.Hour)}, // not heard lately: not ranked
	}
	h := func(ids ...string) []store.Hearer {
		var out []store.Hearer
		for _, id := range ids {
			out = append(out, store.Hearer{ConnectorID: id})
		}
		return out
	}
	tests := []struct {
		name    string
		hearers []store.Hearer
		links   map[string]store.Link
		want    int
	}{
		{"the strongest link's copy", h("a"), links, 0},
		{"the second's", h("b"), links, 1},
		{"the third's", h("c"), links, 2},
		{"several copies: the best counts", h("c", "b"), links, 1},
		{"a connector without a recent link", h("d"), links, 3},
		{"a device without links", h("b"), nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := replyRank(tc.hearers, tc.links, t0); got != tc.want {
				t.Fatalf("rank %d, want %d", got, tc.want)
			}
		})
	}
}
