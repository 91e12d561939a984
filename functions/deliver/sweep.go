package deliver

import (
	"context"
	"fmt"
	"sync"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sealedsense/sealedsense/shared/dataconnector"
	"github.com/sealedsense/sealedsense/shared/registry"
)

// SweepResult says what one sweep did.
type SweepResult struct {
	Attempted int `json:"attempted"`
	Queued    int `json:"queued"` // by backfills and syncs
}

func notFound(err error) bool { return status.Code(err) == codes.NotFound }

// Sweep is run by Cloud Scheduler. It advances backfills and syncs by a
// page each, then claims the pairs that are due (retries, first attempts
// that found no slot, attempts whose instance died) and attempts them,
// each connector within its own slots.
func (s *Service) Sweep(ctx context.Context) (SweepResult, error) {
	var res SweepResult
	n, err := s.runJobs(ctx)
	res.Queued = n
	if err != nil {
		return res, err
	}
	now := s.deps.Now()
	docs, err := s.deps.Firestore.Collection(dataconnector.Deliveries).
		Where("status", "==", dataconnector.Pending).Where("due", "<=", now).
		OrderBy("due", firestore.Asc).Limit(s.cfg.SweepBatch).Documents(ctx).GetAll()
	if err != nil {
		return res, fmt.Errorf("deliver: due deliveries: %w", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, snap := range docs {
		var dd dataconnector.Delivery
		if err := snap.DataTo(&dd); err != nil {
			return res, fmt.Errorf("deliver: delivery %s: %w", snap.Ref.ID, err)
		}
		c, ok, err := s.connector(ctx, dd.ProjectID, dd.ConnectorID)
		if err != nil {
			return res, err
		}
		if !ok || c.Status != dataconnector.Active {
			// Kept, not deleted: a backfill on re-enable sets it pending.
			_, err := snap.Ref.Update(ctx, []firestore.Update{{Path: "status", Value: dataconnector.Skipped}}, firestore.LastUpdateTime(snap.UpdateTime))
			if err != nil && status.Code(err) != codes.FailedPrecondition {
				return res, fmt.Errorf("deliver: skip: %w", err)
			}
			continue
		}
		release, ok := s.slot(c.id)
		if !ok {
			continue // the connector's slots are busy: its turn comes next sweep
		}
		// The claim: only one sweep wins a pair, and the lease brings it
		// back if this one dies mid-attempt.
		if _, err := snap.Ref.Update(ctx, []firestore.Update{{Path: "due", Value: now.Add(s.cfg.Lease)}}, firestore.LastUpdateTime(snap.UpdateTime)); err != nil {
			release()
			continue
		}
		d := delivery{id: snap.Ref.ID, c: c, attempts: dd.Attempts, queued: dd.Queued,
			ev: dataconnector.Event{ID: dd.EventID, Type: dd.EventType, Project: dd.ProjectID, Device: dd.DeviceID}}
		wg.Go(func() {
			defer release()
			s.attempt(ctx, d)
			mu.Lock()
			res.Attempted++
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := s.flushMetrics(ctx); err != nil {
		return res, err
	}
	return res, nil
}

// runJobs advances each open job by one page.
func (s *Service) runJobs(ctx context.Context) (int, error) {
	docs, err := s.deps.Firestore.Collection(dataconnector.Jobs).Where("done", "==", false).Limit(20).Documents(ctx).GetAll()
	if err != nil {
		return 0, fmt.Errorf("deliver: jobs: %w", err)
	}
	total := 0
	for _, snap := range docs {
		var j dataconnector.Job
		if err := snap.DataTo(&j); err != nil {
			return total, fmt.Errorf("deliver: job %s: %w", snap.Ref.ID, err)
		}
		// Read fresh: the API creates a backfill as it re-enables the
		// connector, and a stale copy would end the job as disabled.
		s.forget(j.ProjectID)
		c, ok, err := s.connector(ctx, j.ProjectID, j.ConnectorID)
		if err != nil {
			return total, err
		}
		var upd []firestore.Update
		if !ok || c.Status != dataconnector.Active {
			upd = []firestore.Update{{Path: "done", Value: true}}
		} else {
			var n int
			switch j.Kind {
			case dataconnector.Backfill:
				n, upd, err = s.backfillPage(ctx, c, j)
			case dataconnector.Sync:
				n, upd, err = s.syncPage(ctx, c, snap.Ref.ID, j)
			default:
				upd = []firestore.Update{{Path: "done", Value: true}}
			}
			if err != nil {
				return total, err
			}
			total += n
			upd = append(upd, firestore.Update{Path: "queued", Value: firestore.Increment(n)})
		}
		if _, err := snap.Ref.Update(ctx, upd, firestore.LastUpdateTime(snap.UpdateTime)); err != nil && status.Code(err) != codes.FailedPrecondition {
			return total, fmt.Errorf("deliver: job %s: %w", snap.Ref.ID, err)
		}
	}
	return total, nil
}

// backfillPage queues the next page of the project's events in the job's
// range that the connector takes.
func (s *Service) backfillPage(ctx context.Context, c connector, j dataconnector.Job) (int, []firestore.Update, error) {
	q := s.deps.Firestore.Collection("events").Where("projectId", "==", j.ProjectID).
		Where("timestamp", ">=", j.From).Where("timestamp", "<=", j.To).
		OrderBy("timestamp", firestore.Asc).OrderBy(firestore.DocumentID, firestore.Asc)
	if j.CursorID != "" {
		q = q.StartAfter(j.CursorTime, j.CursorID)
	}
	docs, err := q.Limit(s.cfg.JobPage).Documents(ctx).GetAll()
	if err != nil {
		return 0, nil, fmt.Errorf("deliver: backfill: %w", err)
	}
	var pairs []dataconnector.Delivery
	var ids []string
	for _, d := range docs {
		var ev struct {
			DeviceID  string    `firestore:"deviceId"`
			EventType string    `firestore:"eventType"`
			Timestamp time.Time `firestore:"timestamp"`
		}
		if err := d.DataTo(&ev); err != nil {
			return 0, nil, err
		}
		j.CursorTime, j.CursorID = ev.Timestamp, d.Ref.ID
		if !c.Wants(ev.EventType) {
			continue
		}
		pairs = append(pairs, dataconnector.Delivery{ProjectID: j.ProjectID, ConnectorID: c.id, EventID: d.Ref.ID, DeviceID: ev.DeviceID, EventType: ev.EventType})
		ids = append(ids, dataconnector.DeliveryID(c.id, d.Ref.ID, ""))
	}
	n, err := s.requeue(ctx, ids, pairs)
	if err != nil {
		return 0, nil, err
	}
	return n, []firestore.Update{{Path: "cursorTime", Value: j.CursorTime}, {Path: "cursorId", Value: j.CursorID}, {Path: "done", Value: len(docs) < s.cfg.JobPage}}, nil
}

// syncPage queues, for the next page of the project's devices, the
// latest stored event of each type the device reported.
func (s *Service) syncPage(ctx context.Context, c connector, jobID string, j dataconnector.Job) (int, []firestore.Update, error) {
	fs := s.deps.Firestore
	q := fs.Collection(registry.DevicesCollection).Where("projectId", "==", j.ProjectID).OrderBy(firestore.DocumentID, firestore.Asc)
	if j.CursorID != "" {
		q = q.StartAfter(j.CursorID)
	}
	page := max(s.cfg.JobPage/10, 1) // each device costs a query per event type
	devs, err := q.Limit(page).Documents(ctx).GetAll()
	if err != nil {
		return 0, nil, fmt.Errorf("deliver: sync: %w", err)
	}
	var pairs []dataconnector.Delivery
	var ids []string
	for _, dev := range devs {
		j.CursorID = dev.Ref.ID
		reported, _ := dev.DataAt("reported")
		types, _ := reported.(map[string]any)
		for t := range types {
			if !c.Wants(t) {
				continue
			}
			evs, err := fs.Collection("events").Where("projectId", "==", j.ProjectID).Where("deviceId", "==", dev.Ref.ID).Where("eventType", "==", t).
				OrderBy("timestamp", firestore.Desc).OrderBy(firestore.DocumentID, firestore.Desc).Limit(1).Documents(ctx).GetAll()
			if err != nil {
				return 0, nil, fmt.Errorf("deliver: sync: %w", err)
			}
			if len(evs) == 0 {
				continue // the latest is past retention
			}
			pairs = append(pairs, dataconnector.Delivery{ProjectID: j.ProjectID, ConnectorID: c.id, EventID: evs[0].Ref.ID, DeviceID: dev.Ref.ID, EventType: t})
			ids = append(ids, dataconnector.DeliveryID(c.id, evs[0].Ref.ID, jobID))
		}
	}
	n, err := s.requeue(ctx, ids, pairs)
	if err != nil {
		return 0, nil, err
	}
	return n, []firestore.Update{{Path: "cursorId", Value: j.CursorID}, {Path: "done", Value: len(devs) < page}}, nil
}

// requeue makes pairs due now: new ones are created, and ones that were
// skipped or expired are set pending again with a fresh retry clock.
// Delivered and pending pairs are left alone, so a backfill never sends
// an event the connector already has.
func (s *Service) requeue(ctx context.Context, ids []string, pairs []dataconnector.Delivery) (int, error) {
	if len(pairs) == 0 {
		return 0, nil
	}
	fs := s.deps.Firestore
	now := s.deps.Now()
	bw := fs.BulkWriter(ctx)
	jobs := make([]*firestore.BulkWriterJob, len(pairs))
	for i, d := range pairs {
		d.Status, d.Due, d.Queued, d.ExpireAt = dataconnector.Pending, now, now, now.Add(s.cfg.Retention)
		var err error
		if jobs[i], err = bw.Create(fs.Collection(dataconnector.Deliveries).Doc(ids[i]), d); err != nil {
			bw.End()
			return 0, fmt.Errorf("deliver: requeue: %w", err)
		}
	}
	bw.End()
	n := 0
	var existing []*firestore.DocumentRef
	for i, j := range jobs {
		_, err := j.Results()
		switch {
		case err == nil:
			n++
		case status.Code(err) == codes.AlreadyExists:
			existing = append(existing, fs.Collection(dataconnector.Deliveries).Doc(ids[i]))
		default:
			return n, fmt.Errorf("deliver: requeue: %w", err)
		}
	}
	if len(existing) == 0 {
		return n, nil
	}
	snaps, err := fs.GetAll(ctx, existing)
	if err != nil {
		return n, fmt.Errorf("deliver: requeue: %w", err)
	}
	for _, snap := range snaps {
		st, _ := snap.DataAt("status")
		if st != dataconnector.Skipped && st != dataconnector.Expired {
			continue
		}
		_, err := snap.Ref.Update(ctx, []firestore.Update{{Path: "status", Value: dataconnector.Pending}, {Path: "due", Value: now},
			{Path: "queued", Value: now}, {Path: "attempts", Value: 0}, {Path: "expireAt", Value: now.Add(s.cfg.Retention)}}, firestore.LastUpdateTime(snap.UpdateTime))
		if err == nil {
			n++
		} else if status.Code(err) != codes.FailedPrecondition {
			return n, fmt.Errorf("deliver: requeue: %w", err)
		}
	}
	return n, nil
}
