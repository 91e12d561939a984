package anomaly

import (
	"math"
	"time"
)

// Handshakes is the state the handshake transaction keeps: handshakes
// counted in fixed windows of Settings.FloodWindow. The count over the last
// window is estimated from the current and the previous one (a sliding
// window counter), so a flood split across a window's edge is still seen.
type Handshakes struct {
	// WindowStart starts the current window; Count is its handshakes,
	// Previous those of the window just before it.
	WindowStart time.Time `firestore:"windowStart,omitempty"`
	Count       int64     `firestore:"count,omitempty"`
	Previous    int64     `firestore:"previous,omitempty"`
}

// ObserveHandshake counts one handshake the cloud accepted at at (one per
// initiation, not per connector's copy: copies and replays carry a
// timestamp the cloud already accepted). It opens HANDSHAKE_FLOOD when the
// last window's count passes the sensor's own limit × FloodSlack, and
// clears it first when a whole window since it opened was quiet.
func ObserveHandshake(h Handshakes, open map[Kind]Open, at time.Time, s Settings) (Handshakes, []Change) {
	s = s.sane()
	if !sane(at) {
		return h, nil
	}
	h.Count, h.Previous = max(h.Count, 0), max(h.Previous, 0)
	var out []Change
	o, flooding := open[HandshakeFlood]
	if flooding && !at.Before(floodQuietAt(h, o, s)) {
		out = append(out, cleared(o, HandshakeFlood, at, quietEvidence(h, o, s)))
	}
	h = h.roll(at, s)
	h.Count = satInc(h.Count)
	est := h.estimate(at, s)
	if flooding || est <= s.FloodThreshold() {
		return h, out // (a flood cleared by this handshake does not reopen with it)
	}
	ev := map[string]any{
		"count":         int64(math.Round(est)),
		"windowSeconds": seconds(s.FloodWindow),
		"limit":         s.floodLimit(),
	}
	return h, []Change{opened(HandshakeFlood, Critical, at, at, ev)}
}

// roll moves the window to the one holding at. A time slightly before the
// window (clocks of different instances) counts in it; one far before it
// (a clock reset) starts afresh.
func (h Handshakes) roll(at time.Time, s Settings) Handshakes {
	w := s.FloodWindow
	ws := h.WindowStart
	switch {
	case !sane(ws) || at.Before(ws.Add(-w)):
		return Handshakes{WindowStart: at}
	case at.Before(ws.Add(w)):
		return h
	case at.Before(ws.Add(2 * w)):
		return Handshakes{WindowStart: ws.Add(w), Previous: h.Count}
	default:
		// A whole window went by without a handshake: windows restart
		// here.
		return Handshakes{WindowStart: at}
	}
}

// estimate is the handshakes in the window ending at at: the current
// window's, and the previous one's share that overlaps.
func (h Handshakes) estimate(at time.Time, s Settings) float64 {
	frac := float64(at.Sub(h.WindowStart)) / float64(s.FloodWindow)
	frac = min(max(frac, 0), 1)
	return float64(h.Previous)*(1-frac) + float64(h.Count)
}

// floodQuietAt is when an open flood clears if no handshake comes: at the
// end of the current window if it started after the flood and stayed at or
// under half the sensor's limit, else at the end of the (empty) next one.
func floodQuietAt(h Handshakes, o Open, s Settings) time.Time {
	if !sane(h.WindowStart) {
		// Nothing counted: nothing keeps it open.
		if sane(o.Since) {
			return o.Since
		}
		return minTime
	}
	end := h.WindowStart.Add(s.FloodWindow)
	if h.WindowStart.After(o.Since) && float64(h.Count) <= s.floodLimit()/2 {
		return end
	}
	return end.Add(s.FloodWindow)
}

// reviewFlood clears a flood whose window has gone quiet.
func reviewFlood(h Handshakes, open map[Kind]Open, now time.Time, s Settings) (Change, bool) {
	o, ok := open[HandshakeFlood]
	if !ok || now.Before(floodQuietAt(h, o, s)) {
		return Change{}, false
	}
	return cleared(o, HandshakeFlood, now, quietEvidence(h, o, s)), true
}

// quietEvidence describes the quiet window that clears a flood.
func quietEvidence(h Handshakes, o Open, s Settings) map[string]any {
	n := int64(0)
	if sane(h.WindowStart) && floodQuietAt(h, o, s).Equal(h.WindowStart.Add(s.FloodWindow)) {
		n = h.Count
	}
	return map[string]any{"count": n, "windowSeconds": seconds(s.FloodWindow), "limit": s.floodLimit()}
}
