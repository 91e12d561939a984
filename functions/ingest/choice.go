package ingest

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/sealedsense/sealedsense/shared/store"
)

// The reply's choices, as pure functions of what the cloud has recorded:
// which connector answers, which copies are worth waiting for, and what
// the device's next uplink says about the last reply.

// Plausible RSSI bounds, in dBm: LoRa receivers decode down to about
// -148 dBm, and nothing a connector hears is stronger than about -20 dBm
// (a sensor on the antenna saturates the front end). A claim outside is
// clamped, a NaN counts as the weakest: no one value can dominate a
// choice or a link's history.
const (
	weakestRSSI    = -150.0
	strongestRSSI  = -20.0
	plausibleSNRdB = 30.0
)

// plausible clamps a claimed signal figure into [lo, hi]; NaN is lo.
func plausible(v, lo, hi float64) float64 {
	if math.IsNaN(v) {
		return lo
	}
	return min(max(v, lo), hi)
}

// Why chooseConnector passed over a hearer with a better signal.
const (
	// reasonReplyLost: the device's last reply went through it and did
	// not arrive, so this reply goes another way.
	reasonReplyLost = "reply-lost"
	// reasonUnacknowledged: more of its replies to the device were lost
	// than arrived; its claimed signal earns it nothing.
	reasonUnacknowledged = "replies-unacknowledged"
	// reasonUnproven: replies went through it and none is known to have
	// arrived yet, while another hearer has delivered to the device: the
	// next reply takes the proven way until the first one is judged.
	reasonUnproven = "reply-unproven"
)

// route is a reply's connector, and the hearer with a better signal it
// was chosen over, if any, and why.
type route struct {
	via            string
	passed, reason string
}

// chooseConnector ranks the connectors that heard a packet. The base score
// is The Things Stack's adjusted RSSI (RSSI plus SNR when SNR is negative,
// since below the noise floor SNR is what limits decoding), smoothed with the
// recent RSSI through that connector, minus a penalty that grows as replies
// through it go unacknowledged. Neither LoRaWAN server learns from failed
// replies; this does.
//
// What a connector says about a packet is only its claim, so the score
// decides only among equally trusted connectors. Ranked below every other
// hearer, whatever their signal, are first avoid, the connector the
// device's last reply went through and was lost on, and last any
// connector with more lost replies to the device than delivered ones. A
// connector that overstates its signal wins at most one reply, then it
// must deliver to win again: no claimed RSSI outweighs lost replies.
func chooseConnector(hearers []store.Hearer, links map[string]store.Link, avoid string) route {
	type cand struct {
		id     string
		tier   int
		reason string
		score  float64
	}
	proven := slices.ContainsFunc(hearers, func(h store.Hearer) bool { return links[h.ConnectorID].Acked > 0 })
	cands := make([]cand, 0, len(hearers))
	for _, h := range hearers {
		c := cand{id: h.ConnectorID, score: plausible(h.RSSI, weakestRSSI, strongestRSSI) + min(plausible(h.SNR, -plausibleSNRdB, plausibleSNRdB), 0)}
		l := links[h.ConnectorID]
		if !l.LastSeen.IsZero() {
			c.score = 0.7*c.score + 0.3*plausible(l.RSSI, weakestRSSI, strongestRSSI)
		}
		// Laplace-smoothed delivery rate: a connector without history
		// starts at 1/2, neither trusted nor written off.
		rate := float64(l.Acked+1) / float64(l.Acked+l.Failed+2)
		c.score -= 30 * (1 - rate)
		switch {
		case l.Failed > l.Acked:
			c.tier, c.reason = 2, reasonUnacknowledged
		case h.ConnectorID == avoid:
			c.tier, c.reason = 1, reasonReplyLost
		case proven && l.Acked == 0 && l.Replies > 0:
			// A device may speak again before its last reply can be
			// judged (feedbackGrace): a connector that has never
			// delivered to it gets no second reply on credit.
			c.tier, c.reason = 1, reasonUnproven
		}
		cands = append(cands, c)
	}
	bySignal := func(a, b cand) int {
		if a.score != b.score {
			return cmp.Compare(b.score, a.score)
		}
		return cmp.Compare(a.id, b.id)
	}
	slices.SortFunc(cands, func(a, b cand) int {
		if a.tier != b.tier {
			return cmp.Compare(a.tier, b.tier)
		}
		return bySignal(a, b)
	})
	r := route{via: cands[0].id}
	best := slices.MinFunc(cands, bySignal)
	if best.id != r.via {
		r.passed, r.reason = best.id, best.reason
	}
	return r
}

// expectedHearers are the connectors that heard a device within the last
// few minutes: the copies worth waiting a little longer for.
func expectedHearers(links map[string]store.Link, now time.Time) map[string]bool {
	out := map[string]bool{}
	for id, l := range links {
		if now.Sub(l.LastSeen) < 10*time.Minute {
			out[id] = true
		}
	}
	return out
}

// feedbackGrace is how long after a reply was sent an uplink that does not
// mention it counts as proof it was lost. A sensor that spoke again before
// the reply reached it will mention it in the uplink after.
const feedbackGrace = 3 * time.Second

// heardBack is what a device's uplink says about the last reply sent to
// it.
type heardBack struct {
	// handshake is a new handshake (a newer timestamp than any accepted
	// before, so from the device itself): it has no session it can use.
	handshake bool
	// session is a data packet's receiver index: the session it used.
	session uint32
	// received are the reply counters a data packet lists.
	received []uint64
}

// feedback judges the pending reply from the device's next uplink, and
// reports false when the uplink does not tell yet.
//
// A data reply is acknowledged if the uplink lists its counter, and lost
// if not listed long after it went out. A handshake's response is
// acknowledged by a data packet in the session it opened, and lost if the
// device handshakes again long after it went out: a sensor that got the
// response uses it, one that handshakes again without having used it
// never got it.
func feedback(p *store.PendingReply, u heardBack, now time.Time) (store.ReplyVerdict, bool) {
	if p == nil || p.Via == "" {
		return store.ReplyVerdict{}, false
	}
	late := now.Sub(p.Sent) >= feedbackGrace
	if p.Session != 0 {
		switch {
		case !u.handshake && u.session == p.Session:
			return store.ReplyVerdict{Via: p.Via, Acked: true}, true
		case u.handshake && late:
			return store.ReplyVerdict{Via: p.Via}, true
		}
		return store.ReplyVerdict{}, false
	}
	if u.handshake {
		// It lists no counters; a sensor also handshakes to rekey.
		return store.ReplyVerdict{}, false
	}
	acked := slices.Contains(u.received, uint64(p.Counter))
	if !acked && !late {
		return store.ReplyVerdict{}, false
	}
	return store.ReplyVerdict{Via: p.Via, Acked: acked}, true
}

// lostVia is the connector a verdict found a reply lost on, or "".
func lostVia(v store.ReplyVerdict) string {
	if v.Acked {
		return ""
	}
	return v.Via
}

// sightings are the links' new signal after a packet: each hearer's RSSI,
// smoothed with the link's if the connector heard the device before. A
// connector that forwarded the packet twice is one sighting, its first
// copy's: two would change the same link fields in one write. A link
// whose stored RSSI is not a number (written before reception metadata
// was checked) starts again from the copy's.
func sightings(hearers []store.Hearer, links map[string]store.Link) []store.Sighting {
	hearers = mergeHearers(nil, hearers)
	out := make([]store.Sighting, 0, len(hearers))
	for _, h := range hearers {
		prev := links[h.ConnectorID]
		rssi := h.RSSI
		if !prev.LastSeen.IsZero() && !math.IsNaN(prev.RSSI) && !math.IsInf(prev.RSSI, 0) {
			rssi = 0.7*prev.RSSI + 0.3*h.RSSI // smooths fading, keeps up with a moved sensor
		}
		out = append(out, store.Sighting{ConnectorID: h.ConnectorID, RSSI: rssi, Received: h.Received})
	}
	return out
}

// boundedSightings clamps the links' smoothed RSSI to the plausible range,
// so that no single claim can dominate a link's history.
func boundedSightings(seen []store.Sighting) []store.Sighting {
	for i := range seen {
		seen[i].RSSI = plausible(seen[i].RSSI, weakestRSSI, strongestRSSI)
	}
	return seen
}

// mergeHearers adds the copies that joined in memory to those recorded in
// Firestore, once per connector: the first copy of each connector, in
// order, is kept. Either list may hold a connector twice (an honest
// gateway can forward a packet twice, and the record keeps each copy that
// reached it through another instance).
func mergeHearers(stored, joined []store.Hearer) []store.Hearer {
	out := make([]store.Hearer, 0, len(stored)+len(joined))
	for _, h := range slices.Concat(stored, joined) {
		if !slices.ContainsFunc(out, func(o store.Hearer) bool { return o.ConnectorID == h.ConnectorID }) {
			out = append(out, h)
		}
	}
	return out
}
