package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/iterator"
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

// Every query of events on a time orders within a project, on a
// composite index; none uses the collection-wide single-field ones.
var _ = rising(eventsCollection, "timestamp", "storedAt", "expireAt")

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

// What the API reads and changes.

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

// What webhook delivery reads.

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

// What devices:stream and the load tools read.

// EventDoc is a stored event as a query returns it: its document id and
// create time beside its fields.
type EventDoc struct {
	ID string
	// Created is when the document was created: its write's commit time.
	Created time.Time
	Event
}

func eventDoc(snap *firestore.DocumentSnapshot) (EventDoc, error) {
	e, err := decode[Event](snap)
	return EventDoc{ID: snap.Ref.ID, Created: snap.CreateTime, Event: e}, err
}

// StreamPos is a place in a project's stream order: events sort by
// storedAt, then by document id. An empty ID sorts before every id at
// At, so {At: t} means "every event stored before t".
type StreamPos struct {
	At time.Time
	ID string
}

// StreamPage asks for a page of a project's events in stream order.
type StreamPage struct {
	Project string
	// After: the page holds the events after it; with no ID, those stored
	// at or after After.At (zero: from the first).
	After StreamPos
	// UpTo: the page ends with it, inclusive; with no ID, before UpTo.At
	// (zero: no end).
	UpTo  StreamPos
	Limit int
}

// The stream's page query orders a project's events by (storedAt, id).
var _ = needs(eventsCollection, Field{"projectId", Asc}, Field{"storedAt", Asc}, Field{"__name__", Asc})

// StreamEvents reads a page of p.Project's events in stream order. Each
// holds only the fields a stream sends or filters on: ProjectID,
// DeviceID, EventType, JSON and StoredAt. Events without storedAt
// (stored before ingest wrote it) are not in the order.
func (db *DB) StreamEvents(ctx context.Context, p StreamPage) ([]EventDoc, error) {
	q := db.fs.Collection(eventsCollection).
		Select("projectId", "deviceId", "eventType", "json", "storedAt").
		Where("projectId", "==", p.Project)
	if p.After.ID == "" && !p.After.At.IsZero() {
		q = q.Where("storedAt", ">=", p.After.At)
	}
	if p.UpTo.ID == "" && !p.UpTo.At.IsZero() {
		q = q.Where("storedAt", "<", p.UpTo.At)
	}
	q = q.OrderBy("storedAt", firestore.Asc).OrderBy(firestore.DocumentID, firestore.Asc)
	if p.After.ID != "" {
		q = q.StartAfter(p.After.At, p.After.ID)
	}
	if p.UpTo.ID != "" {
		q = q.EndAt(p.UpTo.At, p.UpTo.ID)
	}
	return db.eventDocs(q.Limit(p.Limit).Documents(ctx), "events of "+p.Project)
}

// eventDocs reads every event it returns.
func (db *DB) eventDocs(it *firestore.DocumentIterator, op string) ([]EventDoc, error) {
	defer it.Stop()
	var out []EventDoc
	for {
		snap, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, wrap(op, err)
		}
		d, err := eventDoc(snap)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
}

// The newest-event listener orders a project's events by storedAt,
// newest first; Firestore adds the document id in the same direction.
var _ = needs(eventsCollection, Field{"projectId", Asc}, Field{"storedAt", Desc}, Field{"__name__", Desc})

// WatchNewestEvent calls changed whenever project's newest stored event
// changes, and once at the start, until ctx ends or the listener fails;
// it returns the error that ended it. A listener on one document costs a
// read per event and holds no result set.
func (db *DB) WatchNewestEvent(ctx context.Context, project string, changed func()) error {
	it := db.fs.Collection(eventsCollection).
		Where("projectId", "==", project).OrderBy("storedAt", firestore.Desc).Limit(1).Snapshots(ctx)
	defer it.Stop()
	for {
		if _, err := it.Next(); err != nil {
			return wrap("newest event of "+project, err)
		}
		changed()
	}
}

// ProjectEvents reads every event of project.
func (db *DB) ProjectEvents(ctx context.Context, project string) ([]EventDoc, error) {
	return db.eventDocs(db.fs.Collection(eventsCollection).Where("projectId", "==", project).Documents(ctx),
		"events of "+project)
}

// EventsBetween reads every event of project whose timestamp is in
// [from, to), on the backfill's index.
func (db *DB) EventsBetween(ctx context.Context, project string, from, to time.Time) ([]EventDoc, error) {
	return db.eventDocs(db.fs.Collection(eventsCollection).Where("projectId", "==", project).
		Where("timestamp", ">=", from).Where("timestamp", "<", to).
		OrderBy("timestamp", firestore.Asc).OrderBy(firestore.DocumentID, firestore.Asc).Documents(ctx), "events between")
}

// EventOfType reads one stored event of the given type as Firestore holds
// it: its id and its fields (what the load tool sizes storage by).
func (db *DB) EventOfType(ctx context.Context, eventType string) (string, map[string]any, error) {
	docs, err := db.fs.Collection(eventsCollection).Where("eventType", "==", eventType).Limit(1).Documents(ctx).GetAll()
	if err != nil {
		return "", nil, wrap("an event of type "+eventType, err)
	}
	if len(docs) == 0 {
		return "", nil, fmt.Errorf("store: an event of type %s: %w", eventType, ErrNotFound)
	}
	return docs[0].Ref.ID, docs[0].Data(), nil
}

// CountEvents counts every stored event.
func (db *DB) CountEvents(ctx context.Context) (int64, error) {
	return count(ctx, db.fs.Collection(eventsCollection).Query, "count events")
}

// CountEventsOfTypes counts the stored events of the given types.
func (db *DB) CountEventsOfTypes(ctx context.Context, types []string) (int64, error) {
	return count(ctx, db.fs.Collection(eventsCollection).Where("eventType", "in", types), "count events of types")
}

// count runs a count aggregation of q.
func count(ctx context.Context, q firestore.Query, op string) (int64, error) {
	res, err := q.NewAggregationQuery().WithCount("n").Get(ctx)
	if err != nil {
		return 0, wrap(op, err)
	}
	v, _ := res["n"].(interface{ GetIntegerValue() int64 })
	if v == nil {
		return 0, fmt.Errorf("store: %s: the count query returned %T", op, res["n"])
	}
	return v.GetIntegerValue(), nil
}

// CreateEventAlone creates event id in a commit of its own, outside any
// transaction: the bare write the load tool compares ingest's with. An id
// stored before is ErrExists.
func (db *DB) CreateEventAlone(ctx context.Context, id string, e Event) error {
	_, err := db.eventRef(id).Create(ctx, e)
	return wrap("create event "+id, err)
}
