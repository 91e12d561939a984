package ingest

import (
	"context"
	"fmt"
	"time"

	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/expiring"
	"github.com/sealedsense/sealedsense/shared/radio"
	"github.com/sealedsense/sealedsense/shared/store"
)

// sessionReader reads a session's document.
type sessionReader interface {
	Session(ctx context.Context, index uint32) (store.Session, error)
}

// sessionCache holds recent snapshots of sessions, good for authenticating
// packets without a Firestore read: a session's keys never change, and a
// window that is a little stale only sends a copy down the slower path.
type sessionCache struct {
	db     sessionReader
	limits radio.Limits
	cache  *expiring.Cache[uint32, cachedSession]
}

type cachedSession struct {
	sess *radio.Session
	meta sessionMeta
}

// sessionMeta is what a session document says besides the sealed session.
type sessionMeta struct {
	DeviceID, ProjectID string
}

const (
	// sessionTTL bounds how stale a cached session snapshot may be.
	sessionTTL = 30 * time.Second
	// maxSessions bounds the snapshots one instance keeps.
	maxSessions = 100000
)

func newSessionCache(db sessionReader, limits radio.Limits, now func() time.Time) *sessionCache {
	return &sessionCache{db: db, limits: limits, cache: expiring.New[uint32, cachedSession](maxSessions, sessionTTL, now)}
}

// snapshot returns a private copy of a recent snapshot of a session.
func (c *sessionCache) snapshot(ctx context.Context, env *custody.Envelope, index uint32) (*radio.Session, sessionMeta, error) {
	cs, ok := c.cache.Get(index)
	if !ok {
		sd, err := c.db.Session(ctx, index)
		if store.IsNotFound(err) {
			return nil, sessionMeta{}, reject("unknown-session", fmt.Errorf("receiver index %d", index))
		}
		if err != nil {
			return nil, sessionMeta{}, err
		}
		sess, err := openSession(env, index, sd.Sealed, c.limits)
		if err != nil {
			return nil, sessionMeta{}, fmt.Errorf("session %d: %w", index, err)
		}
		cs = cachedSession{sess: sess, meta: sessionMeta{DeviceID: sd.DeviceID, ProjectID: sd.ProjectID}}
		c.cache.Put(index, cs)
	}
	cp := *cs.sess
	return &cp, cs.meta, nil
}

// sessionAAD binds a sealed session to its document.
func sessionAAD(index uint32) []byte { return []byte("sealedsense/session/" + store.SessionID(index)) }

func sealSession(env *custody.Envelope, index uint32, sess *radio.Session) ([]byte, error) {
	blob, err := sess.MarshalBinary()
	if err != nil {
		return nil, err
	}
	defer clear(blob)
	return env.Seal(blob, sessionAAD(index))
}

func openSession(env *custody.Envelope, index uint32, sealed []byte, limits radio.Limits) (*radio.Session, error) {
	blob, err := env.Open(sealed, sessionAAD(index))
	if err != nil {
		return nil, err
	}
	defer blob.Clear()
	var sess radio.Session
	if err := sess.UnmarshalBinary(blob); err != nil {
		return nil, err
	}
	sess.Limits = limits
	return &sess, nil
}
