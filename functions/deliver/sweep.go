package deliver

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sealedsense/sealedsense/shared/dataconnector"
	"github.com/sealedsense/sealedsense/shared/store"
)

// SweepResult says what one sweep did.
type SweepResult struct {
	Attempted int `json:"attempted"`
	Queued    int `json:"queued"` // by backfills and syncs
}

// maxJobsPerSweep bounds the backfills and syncs one sweep advances.
const maxJobsPerSweep = 20

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
	res.Attempted, err = s.attemptDue(ctx)
	if err != nil {
		return res, err
	}
	if err := s.flushMetrics(ctx); err != nil {
		return res, err
	}
	return res, nil
}

// attemptDue claims the due pairs and attempts them, and returns once
// the attempts it started are done.
func (s *Service) attemptDue(ctx context.Context) (int, error) {
	now := s.deps.Now()
	due, err := s.db.DeliveriesDue(ctx, dataconnector.Pending, now, s.cfg.SweepBatch)
	if err != nil {
		return 0, fmt.Errorf("deliver: %w", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	var attempted atomic.Int64
	for _, e := range due {
		d, release, err := s.claim(ctx, e, now)
		if err != nil {
			return int(attempted.Load()), err
		}
		if release == nil {
			continue
		}
		wg.Go(func() {
			defer release()
			s.attempt(ctx, d)
			attempted.Add(1)
		})
	}
	wg.Wait()
	return int(attempted.Load()), nil
}

// claim takes a due pair for this instance and one of its connector's
// slots, which release gives back. A nil release means the pair is not
// this sweep's: its connector is gone or disabled (the pair is then
// skipped), its slots are busy (its turn comes next sweep), or another
// sweep won it.
func (s *Service) claim(ctx context.Context, e store.DeliveryEntry, now time.Time) (d delivery, release func(), err error) {
	c, ok, err := s.connector(ctx, e.ProjectID, e.ConnectorID)
	if err != nil {
		return d, nil, err
	}
	if !ok || c.Status != dataconnector.Active {
		// Kept, not deleted: a backfill on re-enable sets it pending.
		if err := s.db.SetDeliveryStatus(ctx, e.ID, e.Version, dataconnector.Skipped); err != nil && !store.IsChanged(err) {
			return d, nil, fmt.Errorf("deliver: skip: %w", err)
		}
		return d, nil, nil
	}
	release, ok = s.slot(c.id)
	if !ok {
		return d, nil, nil
	}
	// The claim: only one sweep wins a pair, and the lease brings it
	// back if this one dies mid-attempt.
	if err := s.db.LeaseDelivery(ctx, e.ID, e.Version, now.Add(s.cfg.Lease)); err != nil {
		release()
		return d, nil, nil
	}
	return delivery{id: e.ID, c: c, attempts: e.Attempts, queued: e.Queued,
		ev: dataconnector.Event{ID: e.EventID, Type: e.EventType, Project: e.ProjectID, Device: e.DeviceID}}, release, nil
}

// runJobs advances each open job by one page.
func (s *Service) runJobs(ctx context.Context) (int, error) {
	jobs, err := s.db.OpenDeliveryJobs(ctx, maxJobsPerSweep)
	if err != nil {
		return 0, fmt.Errorf("deliver: %w", err)
	}
	total := 0
	for _, j := range jobs {
		n, err := s.runJob(ctx, j)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// runJob advances a job by one page and records how far it got.
func (s *Service) runJob(ctx context.Context, j store.DeliveryJobEntry) (int, error) {
	// Read fresh: the API creates a backfill as it re-enables the
	// connector, and a stale copy would end the job as disabled.
	s.forget(j.ProjectID)
	c, ok, err := s.connector(ctx, j.ProjectID, j.ConnectorID)
	if err != nil {
		return 0, err
	}
	var n int
	var step store.DeliveryJobStep
	switch {
	case !ok || c.Status != dataconnector.Active || (j.Kind != dataconnector.Backfill && j.Kind != dataconnector.Sync):
		err = s.db.EndDeliveryJob(ctx, j.ID, j.Version)
	default:
		page := s.backfillPage
		if j.Kind == dataconnector.Sync {
			page = s.syncPage
		}
		if n, step, err = page(ctx, c, j.ID, j.DeliveryJob); err != nil {
			return 0, err
		}
		err = s.db.StepDeliveryJob(ctx, j.ID, j.Version, step)
	}
	if err != nil && !store.IsChanged(err) {
		return n, fmt.Errorf("deliver: job %s: %w", j.ID, err)
	}
	return n, nil
}

// backfillPage queues the next page of the project's events in the job's
// range that the connector takes.
func (s *Service) backfillPage(ctx context.Context, c connector, _ string, j store.DeliveryJob) (int, store.DeliveryJobStep, error) {
	evs, err := s.db.ProjectEventsBetween(ctx, j.ProjectID, j.From, j.To, j.CursorTime, j.CursorID, s.cfg.JobPage)
	if err != nil {
		return 0, store.DeliveryJobStep{}, fmt.Errorf("deliver: backfill: %w", err)
	}
	var pairs []store.Delivery
	var ids []string
	for _, ev := range evs {
		j.CursorTime, j.CursorID = ev.Timestamp, ev.ID
		if !c.Wants(ev.EventType) {
			continue
		}
		pairs = append(pairs, store.Delivery{ProjectID: j.ProjectID, ConnectorID: c.id, EventID: ev.ID, DeviceID: ev.DeviceID, EventType: ev.EventType})
		ids = append(ids, store.DeliveryID(c.id, ev.ID, ""))
	}
	n, err := s.requeue(ctx, ids, pairs)
	if err != nil {
		return 0, store.DeliveryJobStep{}, err
	}
	return n, store.DeliveryJobStep{CursorTime: &j.CursorTime, CursorID: j.CursorID, Done: len(evs) < s.cfg.JobPage, Queued: n}, nil
}

// syncPage queues, for the next page of the project's devices, the
// latest stored event of each type the device reported.
func (s *Service) syncPage(ctx context.Context, c connector, jobID string, j store.DeliveryJob) (int, store.DeliveryJobStep, error) {
	page := max(s.cfg.JobPage/10, 1) // each device costs a query per event type
	devs, err := s.db.ProjectDevicesReported(ctx, j.ProjectID, j.CursorID, page)
	if err != nil {
		return 0, store.DeliveryJobStep{}, fmt.Errorf("deliver: sync: %w", err)
	}
	var pairs []store.Delivery
	var ids []string
	for _, dev := range devs {
		j.CursorID = dev.ID
		for _, t := range dev.Types {
			if !c.Wants(t) {
				continue
			}
			id, err := s.db.LatestEventID(ctx, j.ProjectID, dev.ID, t)
			if err != nil {
				return 0, store.DeliveryJobStep{}, fmt.Errorf("deliver: sync: %w", err)
			}
			if id == "" {
				continue // the latest is past retention
			}
			pairs = append(pairs, store.Delivery{ProjectID: j.ProjectID, ConnectorID: c.id, EventID: id, DeviceID: dev.ID, EventType: t})
			ids = append(ids, store.DeliveryID(c.id, id, jobID))
		}
	}
	n, err := s.requeue(ctx, ids, pairs)
	if err != nil {
		return 0, store.DeliveryJobStep{}, err
	}
	return n, store.DeliveryJobStep{CursorID: j.CursorID, Done: len(devs) < page, Queued: n}, nil
}

// requeue makes pairs due now: new ones are created, and ones that were
// skipped or expired are set pending again with a fresh retry clock.
// Delivered and pending pairs are left alone, so a backfill never sends
// an event the connector already has.
func (s *Service) requeue(ctx context.Context, ids []string, pairs []store.Delivery) (int, error) {
	if len(pairs) == 0 {
		return 0, nil
	}
	now := s.deps.Now()
	for i := range pairs {
		pairs[i].Status, pairs[i].Due, pairs[i].Queued, pairs[i].ExpireAt = dataconnector.Pending, now, now, now.Add(s.cfg.Retention)
	}
	errs, err := s.db.CreateDeliveries(ctx, ids, pairs)
	if err != nil {
		return 0, fmt.Errorf("deliver: requeue: %w", err)
	}
	n := 0
	var existing []string
	for i, err := range errs {
		switch {
		case err == nil:
			n++
		case store.IsExists(err):
			existing = append(existing, ids[i])
		default:
			return n, fmt.Errorf("deliver: requeue: %w", err)
		}
	}
	if len(existing) == 0 {
		return n, nil
	}
	ds, err := s.db.Deliveries(ctx, existing)
	if err != nil {
		return n, fmt.Errorf("deliver: requeue: %w", err)
	}
	for _, d := range ds {
		if d.Status != dataconnector.Skipped && d.Status != dataconnector.Expired {
			continue
		}
		err := s.db.RequeueDelivery(ctx, d.ID, d.Version, dataconnector.Pending, now, now.Add(s.cfg.Retention))
		if err == nil {
			n++
		} else if !store.IsChanged(err) {
			return n, fmt.Errorf("deliver: requeue: %w", err)
		}
	}
	return n, nil
}
