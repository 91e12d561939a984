package datarights

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"

	"github.com/sealedsense/sealedsense/shared/store"
)

// An erasure runs store.EraseSteps twice (see there), then deletes the
// project's other jobs and then its exports, then finishes: the project's
// document and the job go, and the tombstone is written. Jobs go before
// exports: an export that is running fails at its next file (exportPage
// checks the project) and its save finds its job gone, so no file of it
// is written after the bucket was emptied.
func (s *Service) erasePage(ctx context.Context, id string, j *store.DataJob) (bool, error) {
	steps := store.EraseSteps()
	switch {
	case j.Step < 2*len(steps):
		st := steps[j.Step%len(steps)]
		n, err := st.Page(ctx, s.db, j.ProjectID, s.cfg.PageSize)
		if err != nil {
			return false, err
		}
		j.Counts[st.Name] += int64(n)
		if n == 0 {
			j.Step++
		}
		return false, nil
	case j.Step == 2*len(steps):
		n, err := s.db.DeleteProjectDataJobs(ctx, j.ProjectID, id, s.cfg.PageSize)
		if err != nil {
			return false, err
		}
		j.Counts["dataJobs"] += int64(n)
		if n == 0 {
			j.Step++
		}
		return false, nil
	default:
		n, err := s.deleteExports(ctx, j.ProjectID)
		if err != nil {
			return false, err
		}
		j.Counts["exportFiles"] += int64(n)
		return n == 0, nil
	}
}

// deleteExports deletes up to a page of the objects under the project's
// export prefix.
func (s *Service) deleteExports(ctx context.Context, project string) (int, error) {
	it := s.gcs.Bucket(s.bucket).Objects(ctx, &storage.Query{Prefix: ExportPrefix(project)})
	n := 0
	for n < s.cfg.PageSize {
		o, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return n, fmt.Errorf("list exports: %w", err)
		}
		err = s.gcs.Bucket(s.bucket).Object(o.Name).Delete(ctx)
		if err != nil && !errors.Is(err, storage.ErrObjectNotExist) {
			return n, fmt.Errorf("delete export %s: %w", o.Name, err)
		}
		n++
	}
	return n, nil
}

// finishErasure leaves the tombstone: who erased the project, when, and
// how many documents of each kind went; no sensor data.
func (s *Service) finishErasure(ctx context.Context, id string, j store.DataJob, now time.Time, log *slog.Logger) error {
	t := store.AuditEntry{ProjectID: j.ProjectID, Time: now, ActorType: "SERVICE_ACCOUNT", Actor: j.Actor,
		Action: "erase.done", Resource: JobResource(j.ProjectID, j.Kind, id), Code: 200, Organization: j.Organization,
		Reason: fmt.Sprintf("started=%s %s", j.CreateTime.UTC().Format(time.RFC3339), countsReason(j.Counts))}
	if err := s.db.FinishErasure(ctx, j.ProjectID, id, t); err != nil {
		return err
	}
	log.Info("project erased", "pages", j.Pages, "counts", j.Counts, "takes", j.Takes)
	return nil
}

// eraseDevicePage deletes a page of one device's events.
func (s *Service) eraseDevicePage(ctx context.Context, j *store.DataJob) (bool, error) {
	if len(j.DeviceIDs) != 1 {
		return false, fmt.Errorf("%w: an erasure of one device names %d", errPermanent, len(j.DeviceIDs))
	}
	n, err := s.db.EraseDeviceEvents(ctx, j.ProjectID, j.DeviceIDs[0], s.cfg.PageSize)
	if err != nil {
		return false, err
	}
	j.Counts["events"] += int64(n)
	return n == 0, nil
}

// retentionPage rewrites a page of the project's events' expiry.
func (s *Service) retentionPage(ctx context.Context, j *store.DataJob) (bool, error) {
	// The project's retention as it is now: of two changes in quick
	// succession, whose jobs overlap, the later one wins.
	p, err := s.db.Project(ctx, j.ProjectID)
	if err != nil {
		return false, err
	}
	if p.EventRetentionSeconds > 0 {
		j.RetentionSeconds = p.EventRetentionSeconds
	}
	if j.RetentionSeconds <= 0 {
		return false, fmt.Errorf("%w: no retention", errPermanent)
	}
	at, after, n, err := s.db.RetainEvents(ctx, j.ProjectID, time.Duration(j.RetentionSeconds)*time.Second, j.CursorTime, j.CursorID, s.cfg.PageSize)
	if err != nil {
		return false, err
	}
	j.CursorTime, j.CursorID = at, after
	j.Counts["events"] += int64(n)
	return n < s.cfg.PageSize, nil
}

// countsReason writes counts as "k=v" pairs in key order.
func countsReason(counts map[string]int64) string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", k, counts[k])
	}
	return b.String()
}
