package ingest

import (
	"bytes"
	"sync"
	"time"

	"github.com/sealedsense/sealedsense/shared/relay"
	"github.com/sealedsense/sealedsense/shared/store"
)

// liveClaim is a packet this instance owns and has not answered yet. Copies
// from other connectors that reach the same instance join it in memory, at
// no Firestore cost; copies that reach another instance take the Firestore
// path. Losing this state with the instance loses only the copies'
// metadata, which the reply it would have informed is lost with anyway.
type liveClaim struct {
	hash          []byte
	owner         string
	firstReceived time.Time
	extra         []store.Hearer
}

// liveClaims are the packets this instance is collecting copies for.
type liveClaims struct {
	mu sync.Mutex
	m  map[string]*liveClaim
}

// add registers a claim; it reports false if the packet is live already.
func (l *liveClaims) add(id string, c *liveClaim) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = make(map[string]*liveClaim)
	}
	if _, ok := l.m[id]; ok {
		return false
	}
	l.m[id] = c
	return true
}

// join records a copy in memory. It reports whether the packet is live
// here, and if so whether the copy is within the window (late copies are
// for the caller to reject).
func (l *liveClaims) join(id string, up relay.Uplink, h store.Hearer, window time.Duration) (live, inWindow bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.m[id]
	if !ok || !bytes.Equal(c.hash, store.PacketHash(up.Packet)) {
		return false, false
	}
	if c.owner == up.ConnectorID && sameInstant(c.firstReceived, up.Received) {
		return true, true // a redelivery of the owner's own copy
	}
	if up.Received.Sub(c.firstReceived).Abs() > window {
		return true, false
	}
	for _, e := range c.extra {
		if e.ConnectorID == h.ConnectorID && sameInstant(e.Received, h.Received) {
			return true, true
		}
	}
	c.extra = append(c.extra, h)
	return true, true
}

// take removes a packet and returns the copies that joined it in memory.
func (l *liveClaims) take(id string) []store.Hearer {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.m[id]
	if !ok {
		return nil
	}
	delete(l.m, id)
	return c.extra
}

// peek returns the copies that joined so far, leaving the packet live.
func (l *liveClaims) peek(id string) []store.Hearer {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.m[id]; ok {
		return append([]store.Hearer(nil), c.extra...)
	}
	return nil
}

// heldClaim is a packet's live claim held by the copy that owns it. The
// owner releases it with defer on every way out, unless it kept it for
// the reply, which then takes it when it has chosen a connector.
type heldClaim struct {
	live *liveClaims
	id   string
	kept bool
}

// keep hands the claim to the reply: it is not released.
func (h *heldClaim) keep() { h.kept = true }

// release forgets the claim unless it was kept: no reply will be sent
// for the packet here.
func (h *heldClaim) release() {
	if !h.kept {
		h.live.take(h.id)
	}
}
