package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/expiring"
	"github.com/sealedsense/sealedsense/shared/radio"
	"github.com/sealedsense/sealedsense/shared/store"
)

// sessionReader reads a session's document, and its device's.
type sessionReader interface {
	Session(ctx context.Context, index uint32) (store.Session, error)
	Device(ctx context.Context, id string) (store.Device, error)
}

// sessionCache holds recent snapshots of sessions, good for authenticating
// packets without a Firestore read: a session's keys never change, and a
// window that is a little stale only sends a copy down the slower path.
type sessionCache struct {
	db     sessionReader
	limits radio.Limits
	cache  *expiring.Cache[uint32, cachedSession]
	// missing are receiver indexes no session had when last read: a
	// flood of packets to one costs one read per negativeTTL. A handshake
	// on this instance that creates the index removes it at once; on
	// another instance it is refused for negativeTTL at most, and only if
	// someone sent to that index of 2^32 in the seconds before.
	missing *expiring.Cache[uint32, struct{}]
	// hits and misses count the snapshots served from the cache and
	// read from Firestore: on many instances, each reads its own.
	hits, misses atomic.Uint64
}

type cachedSession struct {
	sess *radio.Session
	meta sessionMeta
}

// sessionMeta is what a session document says besides the sealed
// session, and its device's links: which connectors heard it lately, the
// copies worth waiting for.
type sessionMeta struct {
	DeviceID, ProjectID string
	links               map[string]store.Link
	// live is the device's live session as read, whose last packet may
	// have been answered by another instance; nil when this instance
	// answered the packet that left the snapshot.
	live *store.LiveSession
}

const (
	// sessionTTL bounds how stale a cached session snapshot may be.
	sessionTTL = 30 * time.Second
	// maxSessions bounds the snapshots one instance keeps.
	maxSessions = 100000
)

func newSessionCache(db sessionReader, limits radio.Limits, now func() time.Time) *sessionCache {
	return &sessionCache{db: db, limits: limits, cache: expiring.New[uint32, cachedSession](maxSessions, sessionTTL, now),
		missing: expiring.New[uint32, struct{}](maxUnknown, negativeTTL, now)}
}

// created forgets that index was missing: a handshake just gave it a
// session.
func (c *sessionCache) created(index uint32) { c.missing.Remove(index) }

// accepted keeps sess, a private copy that opened a packet whose
// transaction has committed, as index's snapshot: its window then holds
// that packet's counter, so a replay of it learns it is one without
// trying to claim it. A concurrent packet's counter may be missing from
// it, which only sends that packet's replays down the slower path.
func (c *sessionCache) accepted(index uint32, sess *radio.Session, meta sessionMeta) {
	c.cache.Put(index, cachedSession{sess: sess, meta: meta})
}

// snapshot returns a private copy of a recent snapshot of a session. A
// read the caches cannot answer is allowed by the connector's limits
// first.
func (c *sessionCache) snapshot(ctx context.Context, env *custody.Envelope, index uint32, limits *connectorLimits, connectorID string) (*radio.Session, sessionMeta, error) {
	cs, ok := c.cache.Get(index)
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
		if _, ok := c.missing.Get(index); ok {
			return nil, sessionMeta{}, reject("unknown-session", fmt.Errorf("receiver index %d, known missing", index))
		}
		if err := limits.beforeLookup(connectorID); err != nil {
			return nil, sessionMeta{}, err
		}
		sd, err := c.db.Session(ctx, index)
		if store.IsNotFound(err) {
			limits.missed(connectorID)
			c.missing.Put(index, struct{}{})
			return nil, sessionMeta{}, reject("unknown-session", fmt.Errorf("receiver index %d", index))
		}
		if err != nil {
			return nil, sessionMeta{}, err
		}
		dev, err := c.db.Device(ctx, sd.DeviceID)
		if err != nil && !store.IsNotFound(err) {
			return nil, sessionMeta{}, err
		}
		sealed, _, err := liveState(index, sd, dev)
		if err != nil {
			return nil, sessionMeta{}, err
		}
		sess, err := openSession(env, index, sd.DeviceID, sealed, c.limits)
		if err != nil {
			return nil, sessionMeta{}, fmt.Errorf("session %d: %w", index, err)
		}
		cs = cachedSession{sess: sess, meta: sessionMeta{DeviceID: sd.DeviceID, ProjectID: sd.ProjectID, links: dev.Links, live: dev.Session}}
		c.cache.Put(index, cs)
	}
	cp := *cs.sess
	return &cp, cs.meta, nil
}

// liveState is the sealed state of session index, from its document sd
// and its device's, dev, and whether it is still the handshake's (the
// session's first packet, which moves it to the device). The device's
// document holds the state of the session the device uses. A session
// older than that one, or whose state moved and is not the device's
// now, is refused ("superseded-session"): its sensor moved on, so its
// packets are late copies or replays, and a stale window must not be
// read back.
func liveState(index uint32, sd store.Session, dev store.Device) ([]byte, bool, error) {
	live := dev.Session
	switch {
	case live != nil && live.Index == int64(index):
		return live.Sealed, false, nil
	case sd.Moved:
		return nil, false, reject("superseded-session", fmt.Errorf("session %d of device %s: its state moved and the device uses another", index, sd.DeviceID))
	case live != nil && !sd.Created.After(live.Created):
		return nil, false, reject("superseded-session", fmt.Errorf("session %d of device %s: the device uses a newer one", index, sd.DeviceID))
	}
	return sd.Sealed, true, nil
}

// sessionAAD binds a sealed session to its document and to its device:
// a session whose document was moved to another index, or whose deviceId
// was edited, does not open. The project is not bound: a device can be
// transferred while its session is live, and a packet's transaction takes
// the project from the device's document.
func sessionAAD(index uint32, deviceID string) []byte {
	return []byte("sealedsense/session/" + store.SessionID(index) + "/device/" + deviceID)
}

func sealSession(env *custody.Envelope, index uint32, deviceID string, sess *radio.Session) ([]byte, error) {
	blob, err := sess.MarshalBinary()
	if err != nil {
		return nil, err
	}
	defer clear(blob)
	return env.Seal(blob, sessionAAD(index, deviceID))
}

// kekMissing is a session sealed under a KEK the instance's keys lack.
type kekMissing struct {
	id  string // the KEK the blob names
	err error
}

func (e *kekMissing) Error() string { return fmt.Sprintf("sealed under KEK %q: %v", e.id, e.err) }
func (e *kekMissing) Unwrap() error { return e.err }

// openSession opens a session document's sealed session. One that does
// not open was edited, moved, or sealed before sessions were bound to
// their device: a refusal ("session-tampered"), as no retry can open it;
// the sensor's next handshake makes a new session.
func openSession(env *custody.Envelope, index uint32, deviceID string, sealed []byte, limits radio.Limits) (*radio.Session, error) {
	blob, err := env.Open(sealed, sessionAAD(index, deviceID))
	if errors.Is(err, custody.ErrUnknownKEK) {
		// Sealed under a KEK this instance has not loaded: not proof of
		// tampering; withKEK tells a retired KEK from a newer one.
		id, _ := custody.SealedKEK(sealed)
		return nil, &kekMissing{id: id, err: fmt.Errorf("session %d: %w", index, err)}
	}
	if err != nil {
		return nil, reject("session-tampered", fmt.Errorf("session %d of device %q: %w", index, deviceID, err))
	}
	defer blob.Clear()
	var sess radio.Session
	if err := sess.UnmarshalBinary(blob); err != nil {
		return nil, err
	}
	sess.Limits = limits
	return &sess, nil
}
