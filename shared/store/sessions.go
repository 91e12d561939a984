package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"cloud.google.com/go/firestore"
)

// sessionsCollection holds one document per live sensor session, named by
// its receiver index in decimal (SessionID).
const sessionsCollection = "sessions"

// Session is a live session. The session itself (keys, counters, replay
// window) is stored only envelope-sealed; the envelope's KEK is unwrapped
// once per instance, so opening it costs no KMS call. A handshake seals
// it here; its first data packet moves it into the device's document
// (LiveSession), where each packet's transaction updates it with the rest
// of the device, and leaves this document only what finds the device.
type Session struct {
	DeviceID  string    `firestore:"deviceId"`
	ProjectID string    `firestore:"projectId"`
	Sealed    []byte    `firestore:"sealed,omitempty"`
	Moved     bool      `firestore:"moved,omitempty"` // the sealed state lives in the device's document
	Created   time.Time `firestore:"created"`
	ExpireAt  time.Time `firestore:"expireAt"` // TTL field
}

// Sessions are read by id only.
var _ = rising(sessionsCollection, "created", "expireAt")

// LiveSession is the session a device uses, sealed, in its document.
type LiveSession struct {
	Index   int64     `firestore:"index"`
	Sealed  []byte    `firestore:"sealed"`
	Created time.Time `firestore:"created"` // the session's, to tell an older one
	// Last is the packet the session accepted last, so that an instance
	// that did not answer it tells its copies from a replay.
	Last *AcceptedPacket `firestore:"last,omitempty"`
}

// AcceptedPacket names an accepted packet among its copies: its counter,
// the hash of its bytes and when its first copy was received.
type AcceptedPacket struct {
	Counter       int64     `firestore:"counter"`
	Hash          []byte    `firestore:"hash"`
	FirstReceived time.Time `firestore:"firstReceived"`
}

// SessionID is the document id of the session with receiver index index.
// The sealed session's associated data names it too, binding the sealed
// bytes to their document.
func SessionID(index uint32) string { return strconv.FormatUint(uint64(index), 10) }

func (db *DB) sessionRef(index uint32) *firestore.DocumentRef {
	return db.fs.Collection(sessionsCollection).Doc(SessionID(index))
}

// Session reads the session with receiver index index.
func (db *DB) Session(ctx context.Context, index uint32) (Session, error) {
	return get[Session](ctx, db.sessionRef(index), "session "+SessionID(index))
}

// SessionFree reports, in tx, whether no session uses receiver index index.
func (db *DB) SessionFree(tx *firestore.Transaction, index uint32) (bool, error) {
	_, err := tx.Get(db.sessionRef(index))
	switch {
	case IsNotFound(err):
		return true, nil
	case err != nil:
		return false, wrap("session "+SessionID(index), err)
	}
	return false, nil
}

// CreateSession stores a new session in tx.
func (db *DB) CreateSession(tx *firestore.Transaction, index uint32, s Session) error {
	return tx.Create(db.sessionRef(index), s)
}

// MoveSession marks, in tx, a session's sealed state as moved into its
// device's document: its own copy, the handshake's, is deleted, so that
// no stale window can be read back from it.
func (db *DB) MoveSession(tx *firestore.Transaction, index uint32) error {
	return tx.Update(db.sessionRef(index), []firestore.Update{{Path: "sealed", Value: firestore.Delete}, {Path: "moved", Value: true}})
}

// PacketState is what a packet's transaction reads before it writes.
type PacketState struct {
	// Session is nil if no session has the packet's receiver index.
	Session *Session
	// Device is the session's device; it is not read when Session is nil.
	Device Device
	// Stored are the asked-for events that are stored already, with
	// their JSON.
	Stored map[string][]byte
}

// PacketState reads, in tx and in one round trip, the session with
// receiver index index, device deviceID and which of eventIDs are stored.
// A packet of new readings asks for no events, so it costs two document
// reads.
func (db *DB) PacketState(tx *firestore.Transaction, index uint32, deviceID string, eventIDs []string) (PacketState, error) {
	refs := make([]*firestore.DocumentRef, 0, 2+len(eventIDs))
	refs = append(refs, db.sessionRef(index), db.deviceRef(deviceID))
	for _, id := range eventIDs {
		refs = append(refs, db.eventRef(id))
	}
	snaps, err := tx.GetAll(refs)
	if err != nil {
		return PacketState{}, wrap("packet state", err)
	}
	st := PacketState{Stored: map[string][]byte{}}
	for _, snap := range snaps[2:] {
		if !snap.Exists() {
			continue
		}
		ev, err := decode[Event](snap)
		if err != nil {
			return PacketState{}, err
		}
		st.Stored[snap.Ref.ID] = ev.JSON
	}
	if !snaps[0].Exists() {
		return st, nil
	}
	sess, err := decode[Session](snaps[0])
	if err != nil {
		return PacketState{}, err
	}
	st.Session = &sess
	if !snaps[1].Exists() {
		return PacketState{}, fmt.Errorf("store: device %s: %w", deviceID, ErrNotFound)
	}
	if st.Device, err = decode[Device](snaps[1]); err != nil {
		return PacketState{}, err
	}
	return st, nil
}
