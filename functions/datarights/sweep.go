package datarights

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"cloud.google.com/go/storage"

	"github.com/sealedsense/sealedsense/shared/store"
)

// Config bounds the work of one call and of one page.
type Config struct {
	// Budget is how long one call takes up jobs (default 45 s, within
	// the scheduler's minute).
	Budget time.Duration
	// Lease is how long a job stays with a worker that stopped saving
	// its progress before another takes it up (default 2 min).
	Lease time.Duration
	// PageSize is the documents read or erased at a time (default 500):
	// a worker's memory is a page, whatever the project's size.
	PageSize int
	// FileDocs is the documents per export file (default 50 000); a
	// file is written whole or redone, so it is the work a crash loses.
	FileDocs int
	// MaxTakes fails a job taken up this often without finishing.
	MaxTakes int64
	// Now is the clock (time.Now).
	Now func() time.Time
}

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Budget, 45*time.Second)
	def(&c.Lease, 2*time.Minute)
	if c.PageSize <= 0 {
		c.PageSize = 500
	}
	if c.FileDocs <= 0 {
		c.FileDocs = 50000
	}
	if c.MaxTakes <= 0 {
		c.MaxTakes = 20
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// New returns the service over db, writing exports to bucket.
func New(db *store.DB, gcs *storage.Client, bucket string, log *slog.Logger, cfg Config) *Service {
	cfg.defaults()
	return &Service{db: db, gcs: gcs, bucket: bucket, log: log, cfg: cfg}
}

// Result is what one call did.
type Result struct {
	Jobs  int `json:"jobs"`
	Pages int `json:"pages"`
	Done  int `json:"done"`
}

// Sweep takes up jobs until its budget is spent or none is left. A job
// whose page fails is left to its lease, so the next call retries it.
func (s *Service) Sweep(ctx context.Context) (Result, error) {
	var res Result
	deadline := s.cfg.Now().Add(s.cfg.Budget)
	owner := newOwner()
	for s.cfg.Now().Before(deadline) {
		now := s.cfg.Now()
		id, j, err := s.db.TakeDataJob(ctx, owner, now, now.Add(s.cfg.Lease))
		if err != nil {
			return res, err
		}
		if id == "" {
			return res, nil
		}
		res.Jobs++
		pages, done, err := s.run(ctx, id, owner, j, deadline)
		res.Pages += pages
		if done {
			res.Done++
		}
		if err != nil {
			return res, fmt.Errorf("data job %s: %w", id, err)
		}
	}
	return res, nil
}

// run works job id a page at a time until it is done or the deadline
// passes, saving its progress after every page.
func (s *Service) run(ctx context.Context, id, owner string, j store.DataJob, deadline time.Time) (int, bool, error) {
	log := s.log.With("job", id, "kind", j.Kind, "project", j.ProjectID)
	if j.Takes > s.cfg.MaxTakes {
		return 0, true, s.fail(ctx, id, owner, j, log, fmt.Errorf("taken up %d times without finishing", j.Takes))
	}
	if j.Counts == nil {
		j.Counts = map[string]int64{}
	}
	pages := 0
	for s.cfg.Now().Before(deadline) {
		done, err := s.page(ctx, id, &j)
		if errors.Is(err, errPermanent) {
			return pages, true, s.fail(ctx, id, owner, j, log, err)
		}
		if err != nil {
			// Given up at once, so the next call retries the page; a job
			// that keeps failing fails after MaxTakes. A call cut off (its
			// instance going away) leaves the job to its lease, as a
			// crash does.
			if ctx.Err() == nil {
				if rerr := s.db.ReleaseDataJob(ctx, id, owner); rerr != nil {
					log.Warn("data job not released", "error", rerr.Error())
				}
			}
			return pages, false, err
		}
		pages++
		j.Pages++
		if done {
			return pages, true, s.finish(ctx, id, owner, j, log)
		}
		if err := s.db.SaveDataJob(ctx, id, owner, j, s.cfg.Now().Add(s.cfg.Lease)); err != nil {
			if errors.Is(err, store.ErrLeaseLost) {
				log.Warn("data job taken over", "pages", j.Pages)
				return pages, false, nil
			}
			return pages, false, err
		}
	}
	// Out of budget: hand the job on at once rather than after the lease.
	return pages, false, s.db.ReleaseDataJob(ctx, id, owner)
}

// errPermanent marks a job that cannot succeed: it fails, never retried.
var errPermanent = errors.New("permanent")

// page does one page of j and says whether the job is done.
func (s *Service) page(ctx context.Context, id string, j *store.DataJob) (bool, error) {
	switch j.Kind {
	case store.JobExport:
		return s.exportPage(ctx, id, j)
	case store.JobErase:
		return s.erasePage(ctx, id, j)
	case store.JobEraseDevice:
		return s.eraseDevicePage(ctx, j)
	case store.JobRetention:
		return s.retentionPage(ctx, j)
	}
	return false, fmt.Errorf("%w: unknown kind %q", errPermanent, j.Kind)
}

// finish records a job done and audits it; an erasure of a project
// leaves only its tombstone (erase.go).
func (s *Service) finish(ctx context.Context, id, owner string, j store.DataJob, log *slog.Logger) error {
	now := s.cfg.Now().UTC()
	if j.Kind == store.JobErase {
		return s.finishErasure(ctx, id, j, now, log)
	}
	j.State, j.DoneTime, j.ExpireAt = store.JobSucceeded, now, now.Add(doneKept)
	if err := s.db.SaveDataJob(ctx, id, owner, j, now); err != nil {
		return err
	}
	log.Info("data job done", "pages", j.Pages, "counts", j.Counts, "takes", j.Takes)
	return s.audit(ctx, j, id, "done", now)
}

// doneKept is how long a finished job's record stays: as long as the
// export bucket keeps its files.
const doneKept = 7 * 24 * time.Hour

func (s *Service) fail(ctx context.Context, id, owner string, j store.DataJob, log *slog.Logger, cause error) error {
	now := s.cfg.Now().UTC()
	j.State, j.DoneTime, j.ExpireAt, j.Error = store.JobFailed, now, now.Add(doneKept), cause.Error()
	log.Error("data job failed", "error", cause.Error(), "pages", j.Pages)
	if err := s.db.SaveDataJob(ctx, id, owner, j, now); err != nil {
		return err
	}
	return s.audit(ctx, j, id, "failed", now)
}

// audit records a job's end in the project's audit log; a project erased
// meanwhile has no log left, and the end is logged only.
func (s *Service) audit(ctx context.Context, j store.DataJob, id, how string, now time.Time) error {
	e := store.AuditEntry{ProjectID: j.ProjectID, Time: now, ActorType: "SERVICE_ACCOUNT", Actor: j.Actor,
		Action: jobAction(j.Kind) + "." + how, Resource: JobResource(j.ProjectID, j.Kind, id), Code: 200, Reason: countsReason(j.Counts)}
	err := s.db.AppendAudit(ctx, e)
	if errors.Is(err, store.ErrProjectErased) {
		s.log.Info("audit of an erased project", "project", j.ProjectID, "action", e.Action, "resource", e.Resource)
		return nil
	}
	return err
}

func jobAction(kind string) string {
	switch kind {
	case store.JobExport:
		return "export"
	case store.JobErase:
		return "erase"
	case store.JobEraseDevice:
		return "eraseDevice"
	}
	return "retention"
}

// JobResource is a job's resource name, as the API answers it.
func JobResource(project, kind, id string) string {
	switch kind {
	case store.JobExport:
		return "projects/" + project + "/exports/" + id
	case store.JobRetention:
		return "projects/" + project + "/retentionJobs/" + id
	}
	return "projects/" + project + "/erasures/" + id
}

func newOwner() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
