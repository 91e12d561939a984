package ingest

import (
	"bytes"
	"sync"
	"time"

	"github.com/sealedsense/sealedsense/shared/relay"
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
	extra         []hearer
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
func (l *liveClaims) join(id string, up relay.Uplink, h hearer, window time.Duration) (live, inWindow bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.m[id]
	if !ok || !bytes.Equal(c.hash, packetHash(up.Packet)) {
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
func (l *liveClaims) take(id string) []hearer {
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
func (l *liveClaims) peek(id string) []hearer {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.m[id]; ok {
		return append([]hearer(nil), c.extra...)
	}
	return nil
}
