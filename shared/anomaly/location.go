package anomaly

import (
	"cmp"
	"maps"
	"math"
	"slices"
	"time"
)

// Location is the state the reply transaction keeps: what each connector
// that hears the device learned of it, and the current run of displaced or
// normal receptions.
type Location struct {
	// Receptions counts the receptions learned from since learning
	// (re)started; the first Settings.LearnReceptions get no verdict.
	Receptions int64 `firestore:"receptions,omitempty"`
	// Links are per connector id.
	Links map[string]Link `firestore:"links,omitempty"`
	// Displaced and Normal count receptions in a row of each verdict;
	// the displaced run began at DisplacedSince.
	Displaced      int64     `firestore:"displaced,omitempty"`
	Normal         int64     `firestore:"normal,omitempty"`
	DisplacedSince time.Time `firestore:"displacedSince,omitempty"`
}

// Link is what one connector learned of a device: the RSSI's mean and
// variance (EWMA, in dBm and dB²), the share of receptions it was among
// the hearers (EWMA, 0..1), and how many it heard.
type Link struct {
	Mean  float64 `firestore:"mean"`
	Var   float64 `firestore:"var"`
	Heard float64 `firestore:"heard"`
	Count int64   `firestore:"count"`
}

// Hearer is one connector that heard a packet, with the RSSI it reported.
type Hearer struct {
	ConnectorID string
	RSSI        float64
}

// Plausible RSSI, in dBm (ingest refuses metadata outside it), and bounds
// on what one reception may carry: connector ids are ours and short, and
// no packet is heard by more connectors than these.
const (
	minRSSI, maxRSSI = -150.0, 0.0
	maxIDLen         = 256
	maxHearers       = 64
)

// ObserveReception judges one packet's hearers (the reply transaction
// knows them all). While learning it only learns. After, a reception is
// displaced when enough of the connectors that regularly hear the device
// report an RSSI beyond ZScore σ of their mean, or, when none of them
// heard it, when a connector never seen before hears it stronger than the
// weakest regular one. A missing connector alone is no displacement:
// connectors go offline. Displaced receptions teach nothing, so a moved
// sensor does not learn its new place; normal ones are learned.
func ObserveReception(l Location, open map[Kind]Open, hearers []Hearer, at time.Time, s Settings) (Location, []Change) {
	s = s.sane()
	hs := plausible(hearers)
	if len(hs) == 0 {
		return l, nil
	}
	if !sane(at) {
		at = time.Time{}
	}
	l.Links = cleanLinks(l.Links)
	l.Receptions, l.Displaced, l.Normal = max(l.Receptions, 0), max(l.Displaced, 0), max(l.Normal, 0)
	if l.Receptions < s.LearnReceptions {
		l.learn(hs, s)
		return l, nil
	}
	displaced, ev := l.judge(hs, s)
	o, moved := open[Moved]
	if !displaced {
		l.Displaced, l.DisplacedSince = 0, time.Time{}
		l.Normal = min(satInc(l.Normal), s.DisplacedRun)
		l.learn(hs, s)
		if moved && l.Normal >= s.DisplacedRun {
			return l, []Change{cleared(o, Moved, at, map[string]any{"reason": "normal", "receptions": l.Normal})}
		}
		return l, nil
	}
	l.Normal = 0
	if l.Displaced == 0 || !sane(l.DisplacedSince) {
		l.DisplacedSince = at
	}
	l.Displaced = satInc(l.Displaced)
	switch {
	case !moved && l.Displaced >= s.DisplacedRun:
		ev["receptions"] = l.Displaced
		return l, []Change{opened(Moved, Warning, l.DisplacedSince, at, ev)}
	case moved && !at.IsZero() && sane(l.DisplacedSince) && at.Sub(l.DisplacedSince) >= s.RelearnAfter:
		// Displaced for long enough: this is its place now.
		since := l.DisplacedSince
		l = Location{Links: map[string]Link{}}
		l.learn(hs, s)
		return l, []Change{cleared(o, Moved, at, map[string]any{"reason": "relearned", "displacedSince": since})}
	}
	return l, nil
}

// plausible returns the hearers worth judging: the first report of each
// connector, with a finite RSSI in the plausible range.
func plausible(hearers []Hearer) []Hearer {
	var out []Hearer
	seen := make(map[string]bool)
	for _, h := range hearers {
		if len(out) == maxHearers {
			break
		}
		if h.ConnectorID == "" || len(h.ConnectorID) > maxIDLen || seen[h.ConnectorID] ||
			!(h.RSSI >= minRSSI && h.RSSI <= maxRSSI) {
			continue
		}
		seen[h.ConnectorID] = true
		out = append(out, h)
	}
	return out
}

// cleanLinks copies links (the caller's map is never written), dropping
// any whose stored numbers are nonsense.
func cleanLinks(links map[string]Link) map[string]Link {
	out := make(map[string]Link, len(links))
	for id, k := range links {
		ok := k.Mean >= minRSSI && k.Mean <= maxRSSI && k.Var >= 0 && !math.IsInf(k.Var, 0) &&
			k.Heard >= 0 && k.Heard <= 1 && k.Count >= 0
		if ok {
			out[id] = k
		}
	}
	return out
}

// learn folds a reception into the links. Early samples are averaged
// (weight 1/n) until that falls to the EWMA's weight, so the learning
// phase's receptions all count alike.
func (l *Location) learn(hs []Hearer, s Settings) {
	l.Receptions = satInc(l.Receptions)
	ratio := max(1/float64(l.Receptions), s.RSSIAlpha)
	heard := make(map[string]float64, len(hs))
	for _, h := range hs {
		heard[h.ConnectorID] = h.RSSI
	}
	for id, k := range l.Links {
		_, ok := heard[id]
		k.Heard += ratio * (b2f(ok) - k.Heard)
		l.Links[id] = k
	}
	for _, h := range hs {
		k, ok := l.Links[h.ConnectorID]
		if !ok {
			k = Link{Heard: ratio} // heard now, never before
		}
		k.Count = satInc(k.Count)
		a := max(1/float64(k.Count), s.RSSIAlpha)
		d := h.RSSI - k.Mean
		k.Mean += a * d
		k.Var = (1 - a) * (k.Var + a*d*d)
		l.Links[h.ConnectorID] = k
	}
	l.trim(s.MaxLinks)
}

// trim drops the least heard connectors beyond max.
func (l *Location) trim(max int) {
	if len(l.Links) <= max {
		return
	}
	ids := slices.Collect(maps.Keys(l.Links))
	slices.SortFunc(ids, func(a, b string) int {
		ka, kb := l.Links[a], l.Links[b]
		return cmp.Or(cmp.Compare(ka.Heard, kb.Heard), cmp.Compare(ka.Count, kb.Count), cmp.Compare(a, b))
	})
	for _, id := range ids[:len(ids)-max] {
		delete(l.Links, id)
	}
}

// judge reports whether a reception is displaced, with its evidence.
func (l *Location) judge(hs []Hearer, s Settings) (bool, map[string]any) {
	weakest, regulars := math.Inf(1), 0
	for _, k := range l.Links {
		if regular(k, s) {
			weakest, regulars = min(weakest, k.Mean), regulars+1
		}
	}
	if regulars == 0 {
		return false, nil // nothing learned to compare with
	}
	var shifted, strangers []any
	heardRegular := 0
	for _, h := range hs {
		k, known := l.Links[h.ConnectorID]
		switch {
		case known && regular(k, s):
			heardRegular++
			sigma := max(math.Sqrt(k.Var), s.SigmaFloor)
			if math.Abs(h.RSSI-k.Mean) > s.ZScore*sigma {
				shifted = append(shifted, map[string]any{
					"connectorId": h.ConnectorID, "expectedRssi": k.Mean, "sigma": sigma, "gotRssi": h.RSSI,
				})
			}
		case !known && h.RSSI > weakest:
			strangers = append(strangers, map[string]any{
				"connectorId": h.ConnectorID, "new": true, "weakestRegularRssi": weakest, "gotRssi": h.RSSI,
			})
		}
	}
	if heardRegular > 0 {
		need := max(1, int(math.Ceil(s.DisplacedShare*float64(heardRegular))))
		if len(shifted) >= need {
			return true, map[string]any{"connectors": shifted, "regularHearers": int64(heardRegular)}
		}
		return false, nil
	}
	if len(strangers) > 0 {
		return true, map[string]any{"connectors": strangers, "regularHearers": int64(0)}
	}
	return false, nil
}

func regular(k Link, s Settings) bool {
	return k.Heard >= s.RegularShare && k.Count >= s.MinLinkSamples
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
