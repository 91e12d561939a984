package backup_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/emulators/stack"
	"github.com/sealedsense/sealedsense/functions/backup"
	"github.com/sealedsense/sealedsense/shared/keybackup"
)

func TestMain(m *testing.M) { platformtest.Main(m) }

// TestScheduledBackup: Cloud Scheduler's first call writes one backup to
// each configured bucket, the next (an hour later in GCP) only checks
// them; a bucket that cannot be written answers 500 while the others
// still get the backup.
func TestScheduledBackup(t *testing.T) {
	ctx := context.Background()
	project := platformtest.ProjectID(t)
	keys, err := stack.EnsureKMS(ctx, platformtest.KMS(t), "projects/"+project+"/locations/europe/keyRings/ring")
	if err != nil {
		t.Fatal(err)
	}
	fs := platformtest.Firestore(t, project)
	if _, err := fs.Doc("devices/d1").Set(ctx, map[string]any{"pskKey": keys.Device}); err != nil {
		t.Fatal(err)
	}
	gcs := platformtest.Storage(t)
	b1, b2 := project+"-1", project+"-2"
	for _, b := range []string{b1, b2} {
		if err := gcs.Bucket(b).Create(ctx, "test", nil); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("GOOGLE_CLOUD_PROJECT", project)
	t.Setenv("SEALEDSENSE_BACKUP_KEY", keys.Backup)

	call := func(buckets string) *httptest.ResponseRecorder {
		t.Setenv("SEALEDSENSE_BACKUP_BUCKETS", buckets)
		rec := httptest.NewRecorder()
		backup.Handler()(rec, httptest.NewRequest(http.MethodPost, "/Backup", nil))
		return rec
	}
	rec := call(b1 + ", " + b2)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var checked keybackup.Checked
	if err := json.Unmarshal(rec.Body.Bytes(), &checked); err != nil || checked.Backup == nil {
		t.Fatalf("first call: %s, %v; want a backup", rec.Body, err)
	}
	res := *checked.Backup
	if len(res.Written) != 2 || res.Counts["devices"] != 1 || !strings.HasPrefix(res.Object, keybackup.ObjectPrefix) {
		t.Fatalf("result %+v, want one device written to both buckets", res)
	}
	for _, b := range []string{b1, b2} {
		if _, err := gcs.Bucket(b).Object(res.Object).Attrs(ctx); err != nil {
			t.Fatalf("gs://%s/%s: %v", b, res.Object, err)
		}
	}

	if rec := call(b1 + "," + b2); rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), `"backup"`) {
		t.Fatalf("second call right after: status %d, %s; want a check and no new backup", rec.Code, rec.Body)
	}
	rec = call(project + "-missing," + b2)
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("with a missing bucket: status %d, want 500", rec.Code)
	}
	n := 0
	for it := gcs.Bucket(b2).Objects(ctx, &storage.Query{Prefix: keybackup.ObjectPrefix}); ; n++ {
		if _, err := it.Next(); errors.Is(err, iterator.Done) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if n != 2 {
		t.Fatalf("the second bucket holds %d backups after two runs, want 2", n)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	_, err := backup.FromEnv(context.Background(), func(string) string { return "" })
	for _, v := range []string{"GOOGLE_CLOUD_PROJECT", "SEALEDSENSE_BACKUP_KEY", "SEALEDSENSE_BACKUP_BUCKETS"} {
		if err == nil || !strings.Contains(err.Error(), v) {
			t.Fatalf("FromEnv with nothing set = %v, want it to name %s", err, v)
		}
	}
}
