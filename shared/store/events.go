package store

import (
	"context"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
)

// eventsCollection holds one document per event, named by its eventId.
const eventsCollection = "events"

// Event is a stored event: the DT JSON exactly as customers receive it,
// plus the fields queries filter and order on.
type Event struct {
	ProjectID string    `firestore:"projectId"`
	DeviceID  string    `firestore:"deviceId"`
	EventType string    `firestore:"eventType"`
	Timestamp time.Time `firestore:"timestamp"`
	JSON      []byte    `firestore:"json"`
	ExpireAt  time.Time `firestore:"expireAt"` // TTL field
	// StoredAt is left zero by writers and set by Firestore when the
	// write commits (a server timestamp). With the document id it orders
	// a project's events for the stream, the same on every instance.
	StoredAt time.Time `firestore:"storedAt,serverTimestamp"`
}

func (db *DB) eventRef(id string) *firestore.DocumentRef {
	return db.fs.Collection(eventsCollection).Doc(id)
}

// CreateEvent creates event id in tx; an id stored before fails the
// transaction with AlreadyExists.
func (db *DB) CreateEvent(tx *firestore.Transaction, id string, e Event) error {
	return tx.Create(db.eventRef(id), e)
}

// Event reads one event.
func (db *DB) Event(ctx context.Context, id string) (Event, error) {
	return get[Event](ctx, db.eventRef(id), "event "+id)
}

// StoredEvents says which of ids are stored, read in tx.
func (db *DB) StoredEvents(tx *firestore.Transaction, ids []string) (map[string]bool, error) {
	if len(ids) == 0 {
		return map[string]bool{}, nil
	}
	refs := make([]*firestore.DocumentRef, len(ids))
	for i, id := range ids {
		refs[i] = db.eventRef(id)
	}
	snaps, err := tx.GetAll(refs)
	if err != nil {
		return nil, fmt.Errorf("store: events: %w", err)
	}
	stored := make(map[string]bool, len(snaps))
	for _, s := range snaps {
		if s.Exists() {
			stored[s.Ref.ID] = true
		}
	}
	return stored, nil
}

// --- api ---

// The API's event history: one device's events of one project in a time
// window, oldest first, optionally of some event types.
var (
	_ = needs(eventsCollection, Field{"projectId", Asc}, Field{"deviceId", Asc}, Field{"timestamp", Asc}, Field{"__name__", Asc})
	_ = needs(eventsCollection, Field{"projectId", Asc}, Field{"deviceId", Asc}, Field{"eventType", Asc}, Field{"timestamp", Asc}, Field{"__name__", Asc})
)

// DeviceHistory is the query of a device's events stored for project
// with a timestamp in [start, end), of types if any are given, for a
// caller to page through; it is ordered by the field whose path it
// returns and then by the document id.
// Events carry the project they were stored for, so a device moved to
// another project does not take its old owner's history along.
func (db *DB) DeviceHistory(project, device string, start, end time.Time, types []string) (firestore.Query, firestore.FieldPath) {
	q := db.fs.Collection(eventsCollection).Where("projectId", "==", project).Where("deviceId", "==", device).
		Where("timestamp", ">=", start).Where("timestamp", "<", end)
	if len(types) > 0 {
		q = q.Where("eventType", "in", types)
	}
	return q.OrderBy("timestamp", firestore.Asc).OrderBy(firestore.DocumentID, firestore.Asc), firestore.FieldPath{"timestamp"}
}

// --- deliver ---

// EventHead is what a backfill needs of an event: its id, device, type
// and time, without its JSON.
type EventHead struct {
	ID        string
	DeviceID  string    `firestore:"deviceId"`
	EventType string    `firestore:"eventType"`
	Timestamp time.Time `firestore:"timestamp"`
}

// eventsBetween is the backfill's query: a project's events in a time
// range, in (timestamp, id) order so that a page ends at a cursor.
var _ = needs(eventsCollection, Field{"projectId", Asc}, Field{"timestamp", Asc}, Field{"__name__", Asc})

// ProjectEventsBetween lists up to limit of a project's events with
// from <= timestamp <= to, in (timestamp, id) order, after the event
// (afterTime, afterID) when afterID is set.
func (db *DB) ProjectEventsBetween(ctx context.Context, project string, from, to time.Time, afterTime time.Time, afterID string, limit int) ([]EventHead, error) {
	q := db.fs.Collection(eventsCollection).Select("deviceId", "eventType", "timestamp").
		Where("projectId", "==", project).Where("timestamp", ">=", from).Where("timestamp", "<=", to).
		OrderBy("timestamp", firestore.Asc).OrderBy(firestore.DocumentID, firestore.Asc)
	if afterID != "" {
		q = q.StartAfter(afterTime, afterID)
	}
	docs, err := q.Limit(limit).Documents(ctx).GetAll()
	if err != nil {
		return nil, wrap("events of "+project, err)
	}
	out := make([]EventHead, len(docs))
	for i, d := range docs {
		if out[i], err = decode[EventHead](d); err != nil {
			return nil, err
		}
		out[i].ID = d.Ref.ID
	}
	return out, nil
}

// latestEvent is the sync's query: a device's newest event of a type.
var _ = needs(eventsCollection, Field{"projectId", Asc}, Field{"deviceId", Asc}, Field{"eventType", Asc},
	Field{"timestamp", Desc}, Field{"__name__", Desc})

// LatestEventID is the id of a device's newest stored event of type typ,
// or "" when none is stored (any more).
func (db *DB) LatestEventID(ctx context.Context, project, device, typ string) (string, error) {
	docs, err := db.fs.Collection(eventsCollection).Select().
		Where("projectId", "==", project).Where("deviceId", "==", device).Where("eventType", "==", typ).
		OrderBy("timestamp", firestore.Desc).OrderBy(firestore.DocumentID, firestore.Desc).Limit(1).Documents(ctx).GetAll()
	if err != nil {
		return "", wrap("latest event of "+device, err)
	}
	if len(docs) == 0 {
		return "", nil
	}
	return docs[0].Ref.ID, nil
}
