package datarights_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"cloud.google.com/go/storage"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/functions/datarights"
	"github.com/sealedsense/sealedsense/shared/store"
)

func TestMain(m *testing.M) { platformtest.Main(m) }

// TestExportResumesAfterAWorkerDies kills a worker mid-export (its
// context ends wherever it is: a file half written, a page unsaved) and
// lets another take the job up when the lease runs out: every event is
// in the export once, and every file matches the manifest.
func TestExportResumesAfterAWorkerDies(t *testing.T) {
	ctx := context.Background()
	project := platformtest.ProjectID(t)
	fs := platformtest.Firestore(t, project)
	gcs := platformtest.Storage(t)
	bucket := project + "-exports"
	if err := gcs.Bucket(bucket).Create(ctx, project, nil); err != nil {
		t.Fatal(err)
	}
	db := store.New(fs)
	if err := db.CreateProject(ctx, "p", store.Project{DisplayName: "p", Organization: "o"}); err != nil {
		t.Fatal(err)
	}
	const events = 400
	t0 := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
	bw := fs.BulkWriter(ctx)
	for i := range events {
		js := fmt.Sprintf(`{"eventId":"e%03d","targetName":"projects/%s/devices/d%d"}`, i, "p", i%7)
		if _, err := bw.Create(fs.Collection("events").Doc(fmt.Sprintf("e%03d", i)), store.Event{ProjectID: "p", DeviceID: fmt.Sprintf("d%d", i%7),
			EventType: "temperature", Timestamp: t0.Add(time.Duration(i%50) * time.Second), JSON: []byte(js), ExpireAt: t0.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	bw.End()
	id, err := db.CreateDataJob(ctx, store.DataJob{ProjectID: "p", Kind: store.JobExport, State: store.JobRunning, CreateTime: time.Now(), Counts: map[string]int64{}})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := datarights.Config{FileDocs: 20, PageSize: 10, Lease: time.Minute}
	a := datarights.New(db, gcs, bucket, log, cfg)
	killed, kill := context.WithCancel(ctx)
	go func() { // the kill: as soon as two pages are saved
		for killed.Err() == nil {
			if j, err := db.DataJob(ctx, id); err == nil && j.Pages >= 2 {
				kill()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	_, _ = a.Sweep(killed)
	kill()
	j, err := db.DataJob(ctx, id)
	if err != nil || j.State != store.JobRunning {
		t.Fatalf("the first worker was not killed mid-export: %v %+v", err, j)
	}
	// A worker on the same clock leaves a live lease alone.
	b := datarights.New(db, gcs, bucket, log, cfg)
	if res, err := b.Sweep(ctx); err != nil || res.Jobs != 0 {
		t.Fatalf("a worker took a leased job: %+v %v", res, err)
	}
	late := cfg
	late.Now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	if res, err := datarights.New(db, gcs, bucket, log, late).Sweep(ctx); err != nil || res.Done != 1 {
		t.Fatalf("the second worker: %+v %v", res, err)
	}
	if j, err = db.DataJob(ctx, id); err != nil || j.State != store.JobSucceeded || j.Takes != 2 {
		t.Fatalf("job after the second worker: %v state %s takes %d", err, j.State, j.Takes)
	}
	seen := map[string]int{}
	for _, f := range j.Files {
		body := read(t, gcs, bucket, f.Name)
		sum := sha256.Sum256(body)
		if hex.EncodeToString(sum[:]) != f.SHA256 || int64(bytes.Count(body, []byte("\n"))) != f.Count {
			t.Errorf("%s does not match its manifest entry %+v", f.Name, f)
		}
		if f.Kind != "events" {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(body))
		for sc.Scan() {
			var e struct {
				EventID string `json:"eventId"`
			}
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatal(err)
			}
			seen[e.EventID]++
		}
	}
	if len(seen) != events {
		t.Errorf("%d distinct events exported, want %d", len(seen), events)
	}
	for e, n := range seen {
		if n != 1 {
			t.Errorf("event %s exported %d times", e, n)
		}
	}
	var m datarights.Manifest
	if err := json.Unmarshal(read(t, gcs, bucket, j.Manifest), &m); err != nil || m.Counts["events"] != events || len(m.Files) != len(j.Files) {
		t.Errorf("manifest %+v (%v)", m, err)
	}
}

func read(t *testing.T, gcs *storage.Client, bucket, name string) []byte {
	t.Helper()
	r, err := gcs.Bucket(bucket).Object(name).NewReader(context.Background())
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
