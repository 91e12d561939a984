package keybackup_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/keybackup"
)

// TestCheckBacksUpDailyAndReportsStaleBuckets follows the hourly check
// through two days: the first call backs up into both empty buckets, the
// next hours only report their age, a day later a new backup is made, and
// a bucket that cannot be written is reported stale (an alert) once its
// newest backup is older than StaleAfter, while the other stays fresh.
func TestCheckBacksUpDailyAndReportsStaleBuckets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	w.put("devices/d1", map[string]any{"pskKey": w.keys.Device})
	b1, b2 := w.bucket("a"), w.bucket("b")
	now := time.Date(2026, 6, 1, 0, 17, 0, 0, time.UTC)
	w.deps.Now = func() time.Time { return now }
	policy := keybackup.Policy{Every: 24 * time.Hour, StaleAfter: 26 * time.Hour}

	check := func(buckets ...string) keybackup.Checked {
		t.Helper()
		w.logs.Reset()
		got, err := keybackup.Check(ctx, w.deps, buckets, policy)
		if err != nil {
			t.Fatalf("check at %s: %v\n%s", now, err, w.logs)
		}
		if !strings.Contains(w.logs.String(), `"metric":"key-backup-checked"`) {
			t.Fatalf("check at %s logged no key-backup-checked:\n%s", now, w.logs)
		}
		return got
	}
	if got := check(b1, b2); got.Backup == nil || len(got.Backup.Written) != 2 {
		t.Fatalf("first check into empty buckets: %+v, want a backup in both", got)
	}
	now = now.Add(time.Hour)
	if got := check(b1, b2); got.Backup != nil || got.Ages[b1] != time.Hour || got.Ages[b2] != time.Hour {
		t.Fatalf("an hour later: %+v, want no backup and both an hour old", got)
	}
	now = now.Add(23 * time.Hour)
	if got := check(b1, b2); got.Backup == nil || got.Ages[b1] != 0 || got.Ages[b2] != 0 {
		t.Fatalf("a day later: %+v, want a new backup in both", got)
	}
	if strings.Contains(w.logs.String(), "key-backup-stale") {
		t.Fatalf("fresh buckets reported stale:\n%s", w.logs)
	}

	// b1 can no longer be written (here: it is named wrong, as after a
	// botched config change); b2 still gets each day's backup.
	missing := w.project + "-gone"
	now = now.Add(27 * time.Hour)
	w.logs.Reset()
	got, err := keybackup.Check(ctx, w.deps, []string{missing, b2}, policy)
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("check with an unwritable bucket: %v, want its error", err)
	}
	if got.Ages[b2] != 0 {
		t.Fatalf("the writable bucket is %s old after the check, want a new backup", got.Ages[b2])
	}
	logs := w.logs.String()
	if !strings.Contains(logs, `"alert":"key-backup-failed"`) || !strings.Contains(logs, `"alert":"key-backup-stale","bucket":"`+missing+`"`) {
		t.Fatalf("want key-backup-failed and key-backup-stale for %s:\n%s", missing, logs)
	}
	if strings.Contains(logs, `"alert":"key-backup-stale","bucket":"`+b2+`"`) {
		t.Fatalf("the fresh bucket was reported stale:\n%s", logs)
	}
}
