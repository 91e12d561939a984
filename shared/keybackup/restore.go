package keybackup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"

	"github.com/sealedsense/sealedsense/shared/store"
)

// ErrNoBackup means a bucket holds no backup at or before the time asked.
var ErrNoBackup = errors.New("keybackup: no backup")

// ParseLocation splits gs://bucket/object, or gs://bucket (object "").
func ParseLocation(s string) (bucket, object string, err error) {
	rest, ok := strings.CutPrefix(s, "gs://")
	if !ok {
		return "", "", fmt.Errorf("keybackup: %q is not a gs:// location", s)
	}
	bucket, object, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("keybackup: %q names no bucket", s)
	}
	return bucket, object, nil
}

// Buckets splits a comma-separated list of bucket names, as
// SEALEDSENSE_BACKUP_BUCKETS and provision's -buckets give them.
func Buckets(list string) []string {
	var out []string
	for b := range strings.SplitSeq(list, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// newest picks the newest backup name at or before at; names that are not
// backups are ignored.
func newest(names []string, at time.Time) (string, bool) {
	var best string
	var bestT time.Time
	for _, n := range names {
		t, ok := backupTime(n)
		if !ok || t.After(at) {
			continue
		}
		if best == "" || t.After(bestT) || t.Equal(bestT) && n > best {
			best, bestT = n, t
		}
	}
	return best, best != ""
}

// Latest names the newest backup in bucket made at or before at.
func Latest(ctx context.Context, c *storage.Client, bucket string, at time.Time) (string, error) {
	var names []string
	it := c.Bucket(bucket).Objects(ctx, &storage.Query{Prefix: ObjectPrefix})
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("keybackup: list %s: %w", bucket, err)
		}
		names = append(names, a.Name)
	}
	name, ok := newest(names, at)
	if !ok {
		return "", fmt.Errorf("%w in %s at or before %s", ErrNoBackup, bucket, at.UTC().Format(time.RFC3339))
	}
	return name, nil
}

// Load reads and opens the backup gs://bucket/object.
func Load(ctx context.Context, d Deps, bucket, object string) (Manifest, []store.Record, error) {
	r, err := d.Storage.Bucket(bucket).Object(object).NewReader(ctx)
	if err != nil {
		return Manifest{}, nil, fmt.Errorf("keybackup: read gs://%s/%s: %w", bucket, object, err)
	}
	defer r.Close()
	// One byte over the limit lets Parse say the object is too large.
	data, err := io.ReadAll(io.LimitReader(r, MaxObjectSize+1))
	if err != nil {
		return Manifest{}, nil, fmt.Errorf("keybackup: read gs://%s/%s: %w", bucket, object, err)
	}
	m, recs, err := Open(ctx, data, Expect{Project: d.Project, Object: object, BackupKey: d.KEK.KeyName()}, d.KEK)
	if err != nil {
		return m, nil, fmt.Errorf("gs://%s/%s: %w", bucket, object, err)
	}
	return m, recs, nil
}

// Report counts a restore's outcomes per kind.
type Report map[string]map[store.Outcome]int

// Restore writes back every record that is missing or older in Firestore
// and keeps newer ones; a dry run only counts. Records were checked when
// the backup was opened, so a failure here is Firestore's: restoring again
// resumes, since what was restored is then unchanged.
func Restore(ctx context.Context, d Deps, recs []store.Record, dryRun bool) (Report, error) {
	rep := Report{}
	for _, kind := range store.BackupKinds() {
		rep[kind] = map[store.Outcome]int{}
	}
	for batch := range slices.Chunk(recs, store.MaxRestoreBatch) {
		outs, err := d.DB.RestoreRecords(ctx, batch, dryRun)
		if err != nil {
			return rep, fmt.Errorf("keybackup: %w", err)
		}
		for i, out := range outs {
			rep[batch[i].Kind][out]++
		}
	}
	return rep, nil
}

// Lines are the report as text, one kind a line, in restore order.
func (r Report) Lines() []string {
	var out []string
	for _, kind := range store.BackupKinds() {
		c := r[kind]
		out = append(out, fmt.Sprintf("%-11s created %d  replaced %d  kept-newer %d  unchanged %d",
			kind, c[store.Created], c[store.Replaced], c[store.KeptNewer], c[store.Unchanged]))
	}
	return out
}
