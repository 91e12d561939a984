package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// deliveriesCollection holds one document per (event, connector) pair:
// the durable outbox each pair retries from on its own.
const deliveriesCollection = "deliveries"

// Delivery is one (event, connector) pair's document. Its statuses are
// shared/dataconnector's.
type Delivery struct {
	ProjectID   string `firestore:"projectId"`
	ConnectorID string `firestore:"connectorId"`
	EventID     string `firestore:"eventId"`
	DeviceID    string `firestore:"deviceId"`
	EventType   string `firestore:"eventType"`
	Status      string `firestore:"status"`
	Attempts    int    `firestore:"attempts"`
	// Due is when the next attempt may start. A pending delivery whose
	// attempt is under way has Due at the end of its lease, so that a
	// crashed attempt is picked up again by the sweep.
	Due time.Time `firestore:"due"`
	// Queued starts the retry clock; it is also the "event stored" time
	// the latency figures count from.
	Queued      time.Time `firestore:"queued"`
	DeliveredAt time.Time `firestore:"deliveredAt,omitempty"`
	// LastResult is the last attempt's outcome: an HTTP status, "timeout",
	// "refused" or "unreachable"; never a response body.
	LastResult string    `firestore:"lastResult"`
	ExpireAt   time.Time `firestore:"expireAt"` // TTL
}

// The sweep orders on due after a status, on a composite index.
var _ = rising(deliveriesCollection, "due", "queued", "deliveredAt", "expireAt")

// DeliveryEntry is a delivery as read, with its id and the update time
// that writes conditional on it name.
type DeliveryEntry struct {
	ID      string
	Version time.Time
	Delivery
}

// DeliveryID is the document id of an (event, connector) pair. A sync
// resends an already delivered event, so it adds its job id.
func DeliveryID(connectorID, eventID, job string) string {
	h := sha256.Sum256([]byte(connectorID + "\x00" + eventID + "\x00" + job))
	return hex.EncodeToString(h[:16])
}

// ErrChanged is a conditional write that lost: the document changed since
// it was read (someone else claimed or updated it first).
var ErrChanged = errors.New("store: changed since read")

// IsChanged reports whether err is a conditional write that lost.
func IsChanged(err error) bool {
	return errors.Is(err, ErrChanged) || status.Code(err) == codes.FailedPrecondition
}

// wrapCond is wrap for a write conditional on an update time.
func wrapCond(op string, err error) error {
	if status.Code(err) == codes.FailedPrecondition {
		return fmt.Errorf("store: %s: %w", op, ErrChanged)
	}
	return wrap(op, err)
}

func (db *DB) deliveryRef(id string) *firestore.DocumentRef {
	return db.fs.Collection(deliveriesCollection).Doc(id)
}

// CreateDeliveries creates the deliveries ds under ids in one bulk write.
// The error of each is in its place in the answer (IsExists for a pair
// queued before); the error returned alone means none may be assumed
// written.
func (db *DB) CreateDeliveries(ctx context.Context, ids []string, ds []Delivery) ([]error, error) {
	bw := db.fs.BulkWriter(ctx)
	jobs := make([]*firestore.BulkWriterJob, len(ds))
	for i, d := range ds {
		var err error
		if jobs[i], err = bw.Create(db.deliveryRef(ids[i]), d); err != nil {
			bw.End()
			return nil, wrap("queue deliveries", err)
		}
	}
	bw.End()
	errs := make([]error, len(jobs))
	for i, j := range jobs {
		if _, err := j.Results(); err != nil {
			errs[i] = wrap("queue delivery "+ids[i], err)
		}
	}
	return errs, nil
}

// Deliveries reads the deliveries of ids that exist.
func (db *DB) Deliveries(ctx context.Context, ids []string) ([]DeliveryEntry, error) {
	refs := make([]*firestore.DocumentRef, len(ids))
	for i, id := range ids {
		refs[i] = db.deliveryRef(id)
	}
	snaps, err := db.fs.GetAll(ctx, refs)
	if err != nil {
		return nil, wrap("deliveries", err)
	}
	out := make([]DeliveryEntry, 0, len(snaps))
	for _, s := range snaps {
		if !s.Exists() {
			continue
		}
		d, err := decode[Delivery](s)
		if err != nil {
			return nil, err
		}
		out = append(out, DeliveryEntry{ID: s.Ref.ID, Version: s.UpdateTime, Delivery: d})
	}
	return out, nil
}

// deliveriesDue is the sweep's query: deliveries in a status whose due
// time has come, oldest first.
var _ = needs(deliveriesCollection, Field{"status", Asc}, Field{"due", Asc})

// DeliveriesDue lists up to limit deliveries in status whose due time is
// at or before now, the longest due first.
func (db *DB) DeliveriesDue(ctx context.Context, status string, now time.Time, limit int) ([]DeliveryEntry, error) {
	docs, err := db.fs.Collection(deliveriesCollection).
		Where("status", "==", status).Where("due", "<=", now).
		OrderBy("due", firestore.Asc).Limit(limit).Documents(ctx).GetAll()
	if err != nil {
		return nil, wrap("due deliveries", err)
	}
	out := make([]DeliveryEntry, len(docs))
	for i, s := range docs {
		d, err := decode[Delivery](s)
		if err != nil {
			return nil, err
		}
		out[i] = DeliveryEntry{ID: s.Ref.ID, Version: s.UpdateTime, Delivery: d}
	}
	return out, nil
}

// SetDeliveryStatus gives a delivery status unless it changed since
// version (ErrChanged).
func (db *DB) SetDeliveryStatus(ctx context.Context, id string, version time.Time, status string) error {
	_, err := db.deliveryRef(id).Update(ctx, []firestore.Update{{Path: "status", Value: status}}, firestore.LastUpdateTime(version))
	return wrapCond("delivery status "+id, err)
}

// LeaseDelivery claims a delivery until until, unless it changed since
// version (ErrChanged): of sweeps that read it, one wins.
func (db *DB) LeaseDelivery(ctx context.Context, id string, version, until time.Time) error {
	_, err := db.deliveryRef(id).Update(ctx, []firestore.Update{{Path: "due", Value: until}}, firestore.LastUpdateTime(version))
	return wrapCond("lease delivery "+id, err)
}

// SetDeliveryDue makes a delivery due at due.
func (db *DB) SetDeliveryDue(ctx context.Context, id string, due time.Time) error {
	_, err := db.deliveryRef(id).Update(ctx, []firestore.Update{{Path: "due", Value: due}})
	return wrap("delivery due "+id, err)
}

// RequeueDelivery starts a delivery over in status (pending), due now
// with a fresh retry clock and no attempts, unless it changed since
// version (ErrChanged).
func (db *DB) RequeueDelivery(ctx context.Context, id string, version time.Time, status string, now, expireAt time.Time) error {
	_, err := db.deliveryRef(id).Update(ctx, []firestore.Update{{Path: "status", Value: status}, {Path: "due", Value: now},
		{Path: "queued", Value: now}, {Path: "attempts", Value: 0}, {Path: "expireAt", Value: expireAt}}, firestore.LastUpdateTime(version))
	return wrapCond("requeue delivery "+id, err)
}

// DeliveryAttempt is what an attempt changes of its delivery.
type DeliveryAttempt struct {
	Attempts   int
	LastResult string
	// Status is a final status, or empty while the delivery is retried,
	// when Due is its next attempt's time.
	Status      string
	DeliveredAt time.Time // written when set
	Due         time.Time
}

// RecordDeliveryAttempt writes an attempt's outcome.
func (db *DB) RecordDeliveryAttempt(ctx context.Context, id string, a DeliveryAttempt) error {
	_, err := db.deliveryRef(id).Update(ctx, a.updates())
	return wrap("record delivery "+id, err)
}

func (a DeliveryAttempt) updates() []firestore.Update {
	upd := []firestore.Update{{Path: "attempts", Value: a.Attempts}, {Path: "lastResult", Value: a.LastResult}}
	switch {
	case a.Status == "":
		return append(upd, firestore.Update{Path: "due", Value: a.Due})
	case a.DeliveredAt.IsZero():
		return append(upd, firestore.Update{Path: "status", Value: a.Status})
	}
	return append(upd, firestore.Update{Path: "status", Value: a.Status}, firestore.Update{Path: "deliveredAt", Value: a.DeliveredAt})
}
