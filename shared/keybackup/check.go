package keybackup

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Policy is how often backups are made and when one is overdue.
type Policy struct {
	// Every is the age at which a bucket's newest backup is replaced
	// by a new one (default 24 h).
	Every time.Duration
	// StaleAfter is the age at which a bucket's newest backup is
	// reported stale, which pages the operator (default 26 h).
	StaleAfter time.Duration
}

func (p Policy) withDefaults() Policy {
	if p.Every <= 0 {
		p.Every = 24 * time.Hour
	}
	if p.StaleAfter <= 0 {
		p.StaleAfter = 26 * time.Hour
	}
	return p
}

// Checked is one check: each bucket's newest backup age afterwards, and
// the backup it made, if any.
type Checked struct {
	Ages   map[string]time.Duration `json:"ages"` // absent: the bucket holds no backup
	Backup *Result                  `json:"backup,omitempty"`
}

// Check runs hourly. It reads every bucket's newest backup and, when one
// is missing or as old as p.Every, makes a new backup into all of them, so
// the buckets stay identical and a missed day is retried within the hour.
// Then it logs each bucket's age, "key backup stale" (an alert) for any
// older than p.StaleAfter, and "key backup checked", whose absence is an
// alert of its own.
func Check(ctx context.Context, d Deps, buckets []string, p Policy) (Checked, error) {
	p = p.withDefaults()
	now := d.clock()()
	ages, due, listErr := bucketAges(ctx, d, buckets, now, p.Every)
	out := Checked{Ages: ages}
	var runErr error
	if due {
		var res Result
		res, runErr = Run(ctx, d, buckets)
		if len(res.Written) > 0 {
			out.Backup = &res
		}
		for _, b := range res.Written {
			out.Ages[b] = 0
		}
	}
	stale := 0
	for _, b := range buckets {
		age, ok := out.Ages[b]
		if !ok || age > p.StaleAfter {
			stale++
			d.Log.Error("key backup stale", "alert", "key-backup-stale", "bucket", b, "hasBackup", ok, "ageHours", age.Hours())
		}
	}
	d.Log.Info("key backup checked", "metric", "key-backup-checked", "buckets", len(buckets), "stale", stale, "backedUp", out.Backup != nil)
	return out, errors.Join(listErr, runErr)
}

// bucketAges lists each bucket's newest backup. A bucket that cannot be
// listed counts as due and its error is returned, but does not stop the
// others.
func bucketAges(ctx context.Context, d Deps, buckets []string, now time.Time, every time.Duration) (map[string]time.Duration, bool, error) {
	ages := map[string]time.Duration{}
	due := false
	var errs []error
	for _, b := range buckets {
		name, err := Latest(ctx, d.Storage, b, now)
		if errors.Is(err, ErrNoBackup) {
			due = true
			continue
		}
		if err != nil {
			due = true
			errs = append(errs, fmt.Errorf("keybackup: check %s: %w", b, err))
			continue
		}
		t, _ := backupTime(name)
		ages[b] = now.Sub(t)
		if ages[b] >= every {
			due = true
		}
	}
	return ages, due, errors.Join(errs...)
}
