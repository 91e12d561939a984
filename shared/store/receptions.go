package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"cloud.google.com/go/firestore"
)

// receptionsCollection holds one document per handshake, the point where
// copies heard by several connectors are deduplicated, named by its
// bytes' hash (HandshakeReceptionID). A data packet has none: its
// transaction, which advances the session's replay window, is that point.
const receptionsCollection = "receptions"

// Hearer is one connector's reception of a packet.
type Hearer struct {
	ConnectorID string    `firestore:"id"`
	RSSI        float64   `firestore:"rssi"`
	SNR         float64   `firestore:"snr"`
	Received    time.Time `firestore:"received"`
}

// Reception records one handshake: who heard it, what was answered and
// through whom. It is the deduplication point across connectors, and what a
// Pub/Sub redelivery resumes from.
type Reception struct {
	DeviceID   string `firestore:"deviceId"`
	ProjectID  string `firestore:"projectId"`
	PacketHash []byte `firestore:"packetHash"`
	Owner      string `firestore:"owner"` // the connector whose copy claimed the packet
	// Instance is the ingest instance processing the packet: the one
	// whose claim created the record, or took it over after its lease.
	Instance string `firestore:"instance"`
	// FirstReceived is the owner copy's reception time at its connector:
	// other copies count if their own reception time is within the
	// collection window of it, however late Pub/Sub delivers them.
	FirstReceived time.Time `firestore:"firstReceived"`
	FirstSeen     time.Time `firestore:"firstSeen"` // when the claim was made; the reply waits a window from here
	Hearers       []Hearer  `firestore:"hearers"`
	Reply         []byte    `firestore:"reply"`     // the handshake's response, sent after the window
	Via           string    `firestore:"via"`       // the connector chosen for the reply
	Committed     bool      `firestore:"committed"` // the packet's transaction is done
	Done          bool      `firestore:"done"`      // reply published
	Late          int64     `firestore:"late"`      // copies that came after the window
	ExpireAt      time.Time `firestore:"expireAt"`  // TTL field
}

// Receptions are read by id only.
var _ = rising(receptionsCollection, "firstReceived", "firstSeen", "hearers", "expireAt")

// PacketHash is the hash of a packet's bytes, which tells its copies.
func PacketHash(pkt []byte) []byte {
	h := sha256.Sum256(pkt)
	return h[:]
}

// HandshakeReceptionID names a handshake's reception by its bytes: a
// handshake has no session yet.
func HandshakeReceptionID(pkt []byte) string {
	return "h-" + hex.EncodeToString(PacketHash(pkt)[:16])
}

func (db *DB) receptionRef(id string) *firestore.DocumentRef {
	return db.fs.Collection(receptionsCollection).Doc(id)
}

// CreateReception claims a packet; a reception stored before is ErrExists.
func (db *DB) CreateReception(ctx context.Context, id string, r Reception) error {
	_, err := db.receptionRef(id).Create(ctx, r)
	return wrap("claim "+id, err)
}

// Reception reads one reception.
func (db *DB) Reception(ctx context.Context, id string) (Reception, error) {
	return get[Reception](ctx, db.receptionRef(id), "reception "+id)
}

// AddHearers adds copies to a reception's hearers, each once.
func (db *DB) AddHearers(ctx context.Context, id string, hs ...Hearer) error {
	_, err := db.receptionRef(id).Update(ctx, []firestore.Update{{Path: "hearers", Value: firestore.ArrayUnion(hearerValues(hs)...)}})
	return wrap("hearers of "+id, err)
}

// TakeOverReception makes instance the one processing a packet whose
// record no attempt committed and whose claim is from before
// staleBefore, restarting the claim at now. It runs in a transaction, so
// of the instances trying at once exactly one does; it reports whether
// this one did, and the record as it left it.
func (db *DB) TakeOverReception(ctx context.Context, id, instance string, staleBefore, now time.Time) (Reception, bool, error) {
	ref := db.receptionRef(id)
	var (
		rec   Reception
		taken bool
	)
	err := db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snap, err := tx.Get(ref)
		if err != nil {
			return err
		}
		if rec, err = decode[Reception](snap); err != nil {
			return err
		}
		taken = !rec.Committed && rec.FirstSeen.Before(staleBefore)
		if !taken {
			return nil
		}
		rec.Instance, rec.FirstSeen = instance, now
		return tx.Update(ref, []firestore.Update{{Path: "instance", Value: instance}, {Path: "firstSeen", Value: now}})
	})
	return rec, taken, wrap("take over "+id, err)
}

// CountLateCopy counts a copy that came after the collection window.
func (db *DB) CountLateCopy(ctx context.Context, id string) error {
	_, err := db.receptionRef(id).Update(ctx, []firestore.Update{{Path: "late", Value: firestore.Increment(1)}})
	return wrap("late copy of "+id, err)
}

// closed marks a reception whose packet is settled with no reply.
var closed = []firestore.Update{{Path: "committed", Value: true}, {Path: "done", Value: true}}

// CloseReception settles a packet that will get no reply, so its
// redeliveries stop at the claim.
func (db *DB) CloseReception(ctx context.Context, id string) error {
	_, err := db.receptionRef(id).Update(ctx, closed)
	return wrap("close "+id, err)
}

// CloseReceptionIn is CloseReception in tx.
func (db *DB) CloseReceptionIn(tx *firestore.Transaction, id string) error {
	return tx.Update(db.receptionRef(id), closed)
}

// CommitHandshake records, in tx, a handshake's device and its reply.
func (db *DB) CommitHandshake(tx *firestore.Transaction, id, deviceID, projectID string, reply []byte) error {
	return tx.Update(db.receptionRef(id), []firestore.Update{
		{Path: "deviceId", Value: deviceID}, {Path: "projectId", Value: projectID},
		{Path: "reply", Value: reply}, {Path: "committed", Value: true},
	})
}

// FinishReception records, in tx, the connector a reply went through and
// the copies that joined in memory, so the reception tells the whole
// story.
func (db *DB) FinishReception(tx *firestore.Transaction, id, via string, joined []Hearer) error {
	upd := []firestore.Update{{Path: "via", Value: via}, {Path: "done", Value: true}}
	if len(joined) > 0 {
		upd = append(upd, firestore.Update{Path: "hearers", Value: firestore.ArrayUnion(hearerValues(joined)...)})
	}
	return tx.Update(db.receptionRef(id), upd)
}

func hearerValues(hs []Hearer) []any {
	vals := make([]any, len(hs))
	for i, h := range hs {
		vals[i] = h
	}
	return vals
}
