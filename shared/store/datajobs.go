package store

import (
	"context"
	"errors"
	"slices"
	"time"

	"cloud.google.com/go/firestore"
)

// dataJobsCollection holds the customers' data-rights jobs (exports,
// erasures, retention changes), named by Firestore's own ids. The API
// creates them; the data-rights function leases one at a time, works it a
// page at a time and writes its progress back, so that a worker that dies
// leaves a job the next one resumes from its last page.
const dataJobsCollection = "dataJobs"

// Data-rights job kinds.
const (
	JobExport      = "EXPORT"
	JobErase       = "ERASE_PROJECT"
	JobEraseDevice = "ERASE_DEVICE"
	JobRetention   = "RETENTION"
)

// Data-rights job states.
const (
	JobRunning   = "RUNNING"
	JobSucceeded = "SUCCEEDED"
	JobFailed    = "FAILED"
)

// ErrLeaseLost refuses a job's progress from a worker whose lease another
// worker has since taken: the other one redoes the page.
var ErrLeaseLost = errors.New("store: data job lease lost")

// DataJob is one data-rights job: what was asked, by whom, and how far it
// got.
type DataJob struct {
	ProjectID    string    `firestore:"projectId"`
	Organization string    `firestore:"organization"`
	Kind         string    `firestore:"kind"`
	State        string    `firestore:"state"`
	Actor        string    `firestore:"actor"` // the caller's email
	CreateTime   time.Time `firestore:"createTime"`
	DoneTime     time.Time `firestore:"doneTime,omitempty"`
	Error        string    `firestore:"error,omitempty"`

	// What an export covers: events with From <= timestamp < To (zero:
	// unbounded), of DeviceIDs if any (a label filter is resolved to ids
	// when the job is created). ERASE_DEVICE names its device in
	// DeviceIDs; RETENTION its new retention.
	From             time.Time `firestore:"from,omitempty"`
	To               time.Time `firestore:"to,omitempty"`
	DeviceIDs        []string  `firestore:"deviceIds,omitempty"`
	Filtered         bool      `firestore:"filtered"`
	RetentionSeconds int64     `firestore:"retentionSeconds,omitempty"`

	// Progress: the step (an index into the worker's list of steps), the
	// cursor within it, what each step counted, and an export's files.
	Step       int              `firestore:"step"`
	CursorTime time.Time        `firestore:"cursorTime,omitempty"`
	CursorID   string           `firestore:"cursorId,omitempty"`
	Counts     map[string]int64 `firestore:"counts"`
	Files      []ExportFile     `firestore:"files,omitempty"`
	Manifest   string           `firestore:"manifest,omitempty"`
	Pages      int64            `firestore:"pages"`

	// The lease: a worker owns the job until LeaseUntil, renewed by every
	// page it records; Takes counts how often it was taken up.
	Lease      string    `firestore:"lease"`
	LeaseUntil time.Time `firestore:"leaseUntil"`
	Takes      int64     `firestore:"takes"`
	// ExpireAt is the TTL: a job that never finished goes after
	// jobLife, a finished one when its record is no longer needed.
	ExpireAt time.Time `firestore:"expireAt"`
}

// jobLife bounds a job that never finishes (it fails long before, after
// MaxTakes): its record goes by TTL, as a finished one's.
const jobLife = 30 * 24 * time.Hour

// withExpiry gives a new job its TTL.
func withExpiry(j DataJob) DataJob {
	if j.ExpireAt.IsZero() {
		j.ExpireAt = j.CreateTime.Add(jobLife)
	}
	return j
}

// ExportFile is one object of an export: its name in the bucket, what it
// holds, and its SHA-256 (hex) as the manifest lists it.
type ExportFile struct {
	Name   string `firestore:"name" json:"name"`
	Kind   string `firestore:"kind" json:"kind"`
	Count  int64  `firestore:"count" json:"count"`
	Bytes  int64  `firestore:"bytes" json:"bytes"`
	SHA256 string `firestore:"sha256" json:"sha256"`
}

// The sweep looks for running jobs whose lease ran out.
var _ = needs(dataJobsCollection, Field{"state", Asc}, Field{"leaseUntil", Asc}, Field{"__name__", Asc})

// A project's jobs, newest first, for the API's listing and for erasure.
var _ = needs(dataJobsCollection, Field{"projectId", Asc}, Field{"kind", Asc}, Field{"createTime", Desc}, Field{"__name__", Desc})

func (db *DB) dataJobRef(id string) *firestore.DocumentRef {
	return db.fs.Collection(dataJobsCollection).Doc(id)
}

// CreateDataJob stores a new job, ready to be taken, and says its id.
func (db *DB) CreateDataJob(ctx context.Context, j DataJob) (string, error) {
	ref := db.fs.Collection(dataJobsCollection).NewDoc()
	_, err := ref.Create(ctx, withExpiry(j))
	return ref.ID, wrap("create data job", err)
}

// DataJob reads one job.
func (db *DB) DataJob(ctx context.Context, id string) (DataJob, error) {
	return get[DataJob](ctx, db.dataJobRef(id), "data job "+id)
}

// DataJobEntry is a job with its id.
type DataJobEntry struct {
	ID string
	DataJob
}

// ProjectDataJobs lists up to limit of a project's jobs of kind, newest
// first.
func (db *DB) ProjectDataJobs(ctx context.Context, project, kind string, limit int) ([]DataJobEntry, error) {
	docs, err := db.fs.Collection(dataJobsCollection).Where("projectId", "==", project).Where("kind", "==", kind).
		OrderBy("createTime", firestore.Desc).OrderBy(firestore.DocumentID, firestore.Desc).Limit(limit).Documents(ctx).GetAll()
	if err != nil {
		return nil, wrap("data jobs of "+project, err)
	}
	out := make([]DataJobEntry, len(docs))
	for i, s := range docs {
		j, err := decode[DataJob](s)
		if err != nil {
			return nil, err
		}
		out[i] = DataJobEntry{ID: s.Ref.ID, DataJob: j}
	}
	return out, nil
}

// TakeDataJob leases a running job whose lease ran out to owner until
// until, and says its id; "" when there is none.
func (db *DB) TakeDataJob(ctx context.Context, owner string, now, until time.Time) (string, DataJob, error) {
	docs, err := db.fs.Collection(dataJobsCollection).Where("state", "==", JobRunning).Where("leaseUntil", "<", now).
		OrderBy("leaseUntil", firestore.Asc).Limit(8).Documents(ctx).GetAll()
	if err != nil {
		return "", DataJob{}, wrap("open data jobs", err)
	}
	for _, s := range docs {
		var j DataJob
		err := db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
			snap, err := tx.Get(s.Ref)
			if err != nil {
				return err
			}
			if j, err = decode[DataJob](snap); err != nil {
				return err
			}
			if j.State != JobRunning || !j.LeaseUntil.Before(now) {
				return ErrLeaseLost // taken by another worker meanwhile
			}
			j.Lease, j.LeaseUntil, j.Takes = owner, until, j.Takes+1
			return tx.Set(s.Ref, j)
		})
		switch {
		case errors.Is(err, ErrLeaseLost):
			continue
		case err != nil:
			return "", DataJob{}, wrap("take data job "+s.Ref.ID, err)
		}
		return s.Ref.ID, j, nil
	}
	return "", DataJob{}, nil
}

// SaveDataJob writes a job's progress, if owner still holds its lease
// (else ErrLeaseLost), renewing the lease until until.
func (db *DB) SaveDataJob(ctx context.Context, id, owner string, j DataJob, until time.Time) error {
	ref := db.dataJobRef(id)
	err := db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		was, err := getIn[DataJob](tx, ref)
		if err != nil {
			return err
		}
		if was.Lease != owner || was.State != JobRunning {
			return ErrLeaseLost
		}
		j.Lease, j.LeaseUntil = owner, until
		return tx.Set(ref, j)
	})
	return wrap("save data job "+id, err)
}

// ReleaseDataJob gives a job's lease up at once, so the next sweep takes
// it without waiting for the lease to run out.
func (db *DB) ReleaseDataJob(ctx context.Context, id, owner string) error {
	ref := db.dataJobRef(id)
	err := db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		j, err := getIn[DataJob](tx, ref)
		if err != nil || j.Lease != owner {
			return err
		}
		return tx.Update(ref, []firestore.Update{{Path: "leaseUntil", Value: time.Time{}}})
	})
	if IsNotFound(err) {
		return nil
	}
	return wrap("release data job "+id, err)
}

func getIn[T any](tx *firestore.Transaction, ref *firestore.DocumentRef) (T, error) {
	snap, err := tx.Get(ref)
	if err != nil {
		var zero T
		return zero, err
	}
	return decode[T](snap)
}

// DeleteProjectDataJobs deletes up to limit of a project's jobs other than
// except, and says how many it found.
func (db *DB) DeleteProjectDataJobs(ctx context.Context, project, except string, limit int) (int, error) {
	refs, err := refsOf(ctx, db.fs.Collection(dataJobsCollection).Where("projectId", "==", project).Select().Limit(limit+1), "erase data jobs")
	if err != nil {
		return 0, err
	}
	refs = slices.DeleteFunc(refs, func(r *firestore.DocumentRef) bool { return r.ID == except })
	refs = refs[:min(len(refs), limit)]
	return len(refs), db.deleteAll(ctx, refs)
}
