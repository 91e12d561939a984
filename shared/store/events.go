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
