package store

import (
	"context"
	"time"

	"cloud.google.com/go/firestore"
)

// deliveryJobsCollection holds backfills and syncs, worked through a page
// per deliver sweep; ids are Firestore's own.
const deliveryJobsCollection = "deliveryJobs"

// DeliveryJob is a backfill or a sync, worked through by the deliver sweep
// a page at a time, so that neither the API request that starts it nor
// one sweep has to cover a whole project. Its kinds are
// shared/dataconnector's.
type DeliveryJob struct {
	ProjectID   string    `firestore:"projectId"`
	ConnectorID string    `firestore:"connectorId"`
	Kind        string    `firestore:"kind"`
	From        time.Time `firestore:"from"` // backfill range, inclusive
	To          time.Time `firestore:"to"`
	// The cursor: the last event (time, id) or device id done.
	CursorTime time.Time `firestore:"cursorTime"`
	CursorID   string    `firestore:"cursorId"`
	Queued     int       `firestore:"queued"`
	Done       bool      `firestore:"done"`
	CreateTime time.Time `firestore:"createTime"`
	ExpireAt   time.Time `firestore:"expireAt"`
}

// DeliveryJobEntry is a job as read, with its id and the update time its
// progress is written conditionally on.
type DeliveryJobEntry struct {
	ID      string
	Version time.Time
	DeliveryJob
}

// CreateDeliveryJob starts a job.
func (db *DB) CreateDeliveryJob(ctx context.Context, j DeliveryJob) error {
	_, err := db.fs.Collection(deliveryJobsCollection).NewDoc().Create(ctx, j)
	return wrap("create delivery job", err)
}

// CreateDeliveryJobIn starts a job in tx.
func (db *DB) CreateDeliveryJobIn(tx *firestore.Transaction, j DeliveryJob) error {
	return tx.Create(db.fs.Collection(deliveryJobsCollection).NewDoc(), j)
}

// OpenDeliveryJobs lists up to limit jobs not done.
func (db *DB) OpenDeliveryJobs(ctx context.Context, limit int) ([]DeliveryJobEntry, error) {
	docs, err := db.fs.Collection(deliveryJobsCollection).Where("done", "==", false).Limit(limit).Documents(ctx).GetAll()
	if err != nil {
		return nil, wrap("delivery jobs", err)
	}
	out := make([]DeliveryJobEntry, len(docs))
	for i, s := range docs {
		j, err := decode[DeliveryJob](s)
		if err != nil {
			return nil, err
		}
		out[i] = DeliveryJobEntry{ID: s.Ref.ID, Version: s.UpdateTime, DeliveryJob: j}
	}
	return out, nil
}

// DeliveryJobStep is what one sweep did of a job.
type DeliveryJobStep struct {
	CursorTime *time.Time // nil: unchanged (a sync's cursor is a device id)
	CursorID   string
	Done       bool
	Queued     int // added to the job's count
}

// StepDeliveryJob records a sweep's page of a job, unless the job changed
// since version (ErrChanged).
func (db *DB) StepDeliveryJob(ctx context.Context, id string, version time.Time, s DeliveryJobStep) error {
	_, err := db.fs.Collection(deliveryJobsCollection).Doc(id).Update(ctx, s.updates(), firestore.LastUpdateTime(version))
	return wrapCond("delivery job "+id, err)
}

func (s DeliveryJobStep) updates() []firestore.Update {
	var upd []firestore.Update
	if s.CursorTime != nil {
		upd = append(upd, firestore.Update{Path: "cursorTime", Value: *s.CursorTime})
	}
	return append(upd, firestore.Update{Path: "cursorId", Value: s.CursorID}, firestore.Update{Path: "done", Value: s.Done},
		firestore.Update{Path: "queued", Value: firestore.Increment(s.Queued)})
}

// EndDeliveryJob marks a job done, unless it changed since version
// (ErrChanged).
func (db *DB) EndDeliveryJob(ctx context.Context, id string, version time.Time) error {
	_, err := db.fs.Collection(deliveryJobsCollection).Doc(id).Update(ctx, []firestore.Update{{Path: "done", Value: true}}, firestore.LastUpdateTime(version))
	return wrapCond("delivery job "+id, err)
}
