package ingest

import (
	"math"
	"slices"
	"sort"
	"time"

	"github.com/sealedsense/sealedsense/shared/store"
)

// The reply's choices, as pure functions of what the cloud has recorded:
// which connector answers, which copies are worth waiting for, and what
// the device's next uplink says about the last reply.

// chooseConnector ranks the connectors that heard a packet. The base score
// is The Things Stack's adjusted RSSI (RSSI plus SNR when SNR is negative,
// since below the noise floor SNR is what limits decoding), smoothed with the
// recent RSSI through that connector, minus a penalty that grows as replies
// through it go unacknowledged. Neither LoRaWAN server learns from failed
// replies; this does.
func chooseConnector(hearers []store.Hearer, links map[string]store.Link) string {
	type cand struct {
		id    string
		score float64
	}
	cands := make([]cand, 0, len(hearers))
	for _, h := range hearers {
		score := h.RSSI + min(h.SNR, 0)
		l := links[h.ConnectorID]
		if !l.LastSeen.IsZero() {
			score = 0.7*score + 0.3*l.RSSI
		}
		// Laplace-smoothed delivery rate: a connector without history
		// starts at 1/2, neither trusted nor written off.
		rate := float64(l.Acked+1) / float64(l.Acked+l.Failed+2)
		score -= 30 * (1 - rate)
		cands = append(cands, cand{h.ConnectorID, score})
	}
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].score != cands[j].score {
			return cands[i].score > cands[j].score
		}
		return cands[i].id < cands[j].id
	})
	return cands[0].id
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

// feedback judges the pending reply from the reply counters the device
// says it received: acknowledged if listed, lost if not listed long after
// it went out, and otherwise not judged yet (false).
func feedback(p *store.PendingReply, received []uint64, now time.Time) (store.ReplyVerdict, bool) {
	if p == nil || p.Via == "" {
		return store.ReplyVerdict{}, false
	}
	acked := slices.Contains(received, uint64(p.Counter))
	if !acked && now.Sub(p.Sent) < feedbackGrace {
		return store.ReplyVerdict{}, false
	}
	return store.ReplyVerdict{Via: p.Via, Acked: acked}, true
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
