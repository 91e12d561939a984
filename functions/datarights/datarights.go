// Package datarights is the scheduled function that works through the
// customers' data-rights jobs: exports of a project's data to the export
// bucket, erasures of a project or of one device's events, and the
// rewriting of old events' expiry after a project's retention changed.
// Each job is leased, worked a page at a time and resumed by the next
// call when a worker dies, so no request and no ingest waits on one.
package datarights

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"cloud.google.com/go/storage"

	"github.com/sealedsense/sealedsense/shared/function"
	"github.com/sealedsense/sealedsense/shared/store"
)

// Service runs data-rights jobs.
type Service struct {
	db     *store.DB
	gcs    *storage.Client
	bucket string
	log    *slog.Logger
	cfg    Config
}

// Handler returns the DataRights entry point, which Cloud Scheduler calls
// every minute.
func Handler() http.HandlerFunc {
	run := func(s *Service, ctx context.Context) (Result, error) { return s.Sweep(ctx) }
	return function.Sweep(function.Lazy(FromEnv), run, function.Logger("data-rights"), "data-rights sweep failed")
}

// FromEnv builds the Service from the process environment.
func FromEnv(ctx context.Context, getenv func(string) string) (*Service, error) {
	st := function.NewSetup("data-rights", getenv)
	bucket := st.Env.Need("SEALEDSENSE_EXPORT_BUCKET")
	var cfg Config
	st.Env.Duration("SEALEDSENSE_DATA_JOB_BUDGET", &cfg.Budget)
	if err := st.Err(); err != nil {
		return nil, err
	}
	fs, err := st.Firestore(ctx)
	if err != nil {
		return nil, err
	}
	gcs, err := storage.NewClient(ctx)
	if err != nil {
		return nil, fmt.Errorf("data-rights: storage: %w", err)
	}
	return New(store.New(fs), gcs, bucket, st.Log, cfg), nil
}
