// Package backup is the scheduled function that keeps the encrypted key
// backups fresh: Cloud Scheduler calls it hourly; when a backup bucket's
// newest backup is a day old it seals the key registry into one new object
// for every bucket, and each call reports the buckets' age
// (shared/keybackup).
package backup

import (
	"context"
	"fmt"
	"net/http"

	"cloud.google.com/go/storage"

	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/function"
	"github.com/sealedsense/sealedsense/shared/keybackup"
	"github.com/sealedsense/sealedsense/shared/store"
)

// Service runs backups into its buckets.
type Service struct {
	deps    keybackup.Deps
	buckets []string
	policy  keybackup.Policy
}

// Handler returns the Backup entry point. A check or backup that fails in
// any bucket answers 500, so that Cloud Scheduler records the failure and
// the alert on "key backup failed" fires; the other buckets are still
// written.
func Handler() http.HandlerFunc {
	run := func(s *Service, ctx context.Context) (keybackup.Checked, error) {
		return keybackup.Check(ctx, s.deps, s.buckets, s.policy)
	}
	return function.Sweep(function.Lazy(FromEnv), run, function.Logger("backup"), "key backup run failed")
}

// FromEnv builds the Service from the process environment.
func FromEnv(ctx context.Context, getenv func(string) string) (*Service, error) {
	st := function.NewSetup("backup", getenv)
	backupKey := st.Env.Need("SEALEDSENSE_BACKUP_KEY")
	buckets := keybackup.Buckets(st.Env.Need("SEALEDSENSE_BACKUP_BUCKETS"))
	var policy keybackup.Policy
	st.Env.Duration("SEALEDSENSE_BACKUP_EVERY", &policy.Every)
	st.Env.Duration("SEALEDSENSE_BACKUP_STALE_AFTER", &policy.StaleAfter)
	if err := st.Err(); err != nil {
		return nil, err
	}
	fs, err := st.Firestore(ctx)
	if err != nil {
		return nil, err
	}
	kc, err := st.KMS(ctx)
	if err != nil {
		return nil, err
	}
	gcs, err := storage.NewClient(ctx)
	if err != nil {
		return nil, fmt.Errorf("backup: storage: %w", err)
	}
	return &Service{buckets: buckets, policy: policy, deps: keybackup.Deps{
		DB: store.New(fs), KEK: custody.NewWrapper(kc, backupKey), Storage: gcs, Project: st.Project, Log: st.Log,
	}}, nil
}
