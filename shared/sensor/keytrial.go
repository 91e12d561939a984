package sensor

import "time"

// keyTrial is a newer cloud static key the cloud offered in a reply's
// configuration. The sensor keeps the key it has until a handshake under
// the new one completes: a key that was never tried could belong to a
// cloud that cannot answer under it (an offer from a botched rotation), and
// a sensor that switched blindly would be cut off for good. Handshakes go
// out under the offered key for SilentAfter; if none is answered, the
// sensor falls back to its key and tries the new one again KeyRetryAfter
// later.
type keyTrial struct {
	key     [32]byte
	held    bool      // an offer is held
	since   time.Time // when the running trial began; zero while none runs
	retryAt time.Time // when the next trial may begin
}

// offer takes k, offered while inUse is the key in use. An offer of the
// key in use, or of the one held, changes nothing; a different key
// replaces the one held and is due at once.
func (t *keyTrial) offer(k, inUse [32]byte, now time.Time) {
	if k == inUse || (t.held && k == t.key) {
		return
	}
	*t = keyTrial{key: k, held: true, retryAt: now}
}

// due reports whether the next handshake goes under the offered key: a
// trial is running, or may begin.
func (t *keyTrial) due(now time.Time) bool {
	return t.held && (!t.since.IsZero() || !now.Before(t.retryAt))
}

// start marks the trial running from now, if it was not, and reports
// whether it began now.
func (t *keyTrial) start(now time.Time) bool {
	if !t.since.IsZero() {
		return false
	}
	t.since = now
	return true
}

// giveUp ends a trial that has run for silentAfter unanswered, to begin
// again retryAfter later, and reports whether it did.
func (t *keyTrial) giveUp(now time.Time, silentAfter, retryAfter time.Duration) bool {
	if !t.held || t.since.IsZero() || now.Sub(t.since) < silentAfter {
		return false
	}
	t.since, t.retryAt = time.Time{}, now.Add(retryAfter)
	return true
}

// adopted is told the key a completed handshake was under, now in use: an
// offer of it is done with.
func (t *keyTrial) adopted(inUse [32]byte) {
	if t.held && t.key == inUse {
		*t = keyTrial{}
	}
}
