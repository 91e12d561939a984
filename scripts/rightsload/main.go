// Command rightsload measures the data-rights jobs on the emulators: it
// stores N events of one project, exports them and then erases the
// project with the data-rights worker, and prints each job's events per
// second and the worker's peak heap during the export, with the rates
// also as ratios to floors measured in the same run (a plain paged read
// of the same events, and the plain bulk write that stored them), so the
// figures hold on any machine.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/storage"

	"github.com/sealedsense/sealedsense/emulators/platform"
	"github.com/sealedsense/sealedsense/functions/datarights"
	"github.com/sealedsense/sealedsense/shared/store"
)

func main() {
	events := flag.Int("events", 1000000, "events to store, export and erase")
	flag.Parse()
	if err := run(*events); err != nil {
		fmt.Fprintln(os.Stderr, "rightsload:", err)
		os.Exit(1)
	}
}

const (
	project  = "rightsload"
	customer = "p"
)

func run(n int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "rightsload-")
	if err != nil {
		return err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := platform.Start(ctx, platform.Config{Firestore: "auto", PubSub: "auto", KMS: "auto", Storage: "auto", DataDir: dir, Project: project, Logger: quiet})
	if err != nil {
		return err
	}
	defer p.Close()
	p.PointClients()
	fs, err := firestore.NewClient(ctx, project)
	if err != nil {
		return err
	}
	gcs, err := storage.NewClient(ctx)
	if err != nil {
		return err
	}
	bucket := project + "-exports"
	if err := gcs.Bucket(bucket).Create(ctx, project, nil); err != nil {
		return err
	}
	db := store.New(fs)
	if err := db.CreateProject(ctx, customer, store.Project{DisplayName: "load", Organization: "o"}); err != nil {
		return err
	}
	fmt.Printf("storing %d events...\n", n)
	write, err := timed(func() error { return seed(ctx, fs, n) })
	if err != nil {
		return err
	}
	read, err := timed(func() error { return readAll(ctx, fs) })
	if err != nil {
		return err
	}
	w := datarights.New(db, gcs, bucket, quiet, datarights.Config{Budget: time.Hour})
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	peak, stop := sampleHeap()
	export, err := timed(func() error { return job(ctx, db, w, store.DataJob{Kind: store.JobExport}) })
	stop()
	if err != nil {
		return err
	}
	erase, err := timed(func() error { return job(ctx, db, w, store.DataJob{Kind: store.JobErase}) })
	if err != nil {
		return err
	}
	rate := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
	fmt.Printf("floors: bulk write %.0f events/s, paged read %.0f events/s\n", rate(write), rate(read))
	fmt.Printf("export: %.0f events/s = %.2f of the read floor; peak heap %.1f MiB (%.1f MiB over the heap before)\n",
		rate(export), rate(export)/rate(read), float64(peak.Load())/(1<<20), float64(int64(peak.Load())-int64(base.HeapInuse))/(1<<20))
	fmt.Printf("erasure: %.0f events/s = %.2f of the write floor\n", rate(erase), rate(erase)/rate(write))
	return nil
}

func timed(f func() error) (time.Duration, error) {
	t0 := time.Now()
	err := f()
	return time.Since(t0), err
}

// seed stores n events of the project, a bulk write at a time.
func seed(ctx context.Context, fs *firestore.Client, n int) error {
	t0 := time.Now().Add(-24 * time.Hour).UTC()
	bw := fs.BulkWriter(ctx)
	for i := range n {
		js := fmt.Sprintf(`{"eventId":"e%07d","targetName":"projects/%s/devices/d%d","eventType":"temperature","data":{"temperature":{"value":21.5,"updateTime":"%s"}},"timestamp":"%s"}`,
			i, customer, i%1000, t0.Format(time.RFC3339Nano), t0.Format(time.RFC3339Nano))
		e := store.Event{ProjectID: customer, DeviceID: fmt.Sprintf("d%d", i%1000), EventType: "temperature",
			Timestamp: t0.Add(time.Duration(i) * time.Millisecond), JSON: []byte(js), ExpireAt: t0.Add(30 * 24 * time.Hour)}
		if _, err := bw.Create(fs.Collection("events").Doc(fmt.Sprintf("e%07d", i)), e); err != nil {
			return err
		}
		if i%5000 == 4999 {
			bw.Flush()
		}
	}
	bw.End()
	return nil
}

// readAll reads every event's JSON in pages, as an export does.
func readAll(ctx context.Context, fs *firestore.Client) error {
	var last *firestore.DocumentSnapshot
	for {
		q := fs.Collection("events").Select("json").Where("projectId", "==", customer).OrderBy(firestore.DocumentID, firestore.Asc).Limit(500)
		if last != nil {
			q = q.StartAfter(last.Ref.ID)
		}
		docs, err := q.Documents(ctx).GetAll()
		if err != nil {
			return err
		}
		if len(docs) == 0 {
			return nil
		}
		last = docs[len(docs)-1]
	}
}

// job runs one job of the project to its end with worker w.
func job(ctx context.Context, db *store.DB, w *datarights.Service, j store.DataJob) error {
	j.ProjectID, j.State, j.CreateTime, j.Counts = customer, store.JobRunning, time.Now(), map[string]int64{}
	var err error
	if j.Kind == store.JobErase {
		_, err = db.StartErasure(ctx, customer, j)
	} else {
		_, err = db.CreateDataJob(ctx, j)
	}
	if err != nil {
		return err
	}
	for {
		res, err := w.Sweep(ctx)
		if err != nil {
			return err
		}
		if res.Jobs == 0 {
			return nil
		}
	}
}

// sampleHeap records the peak of the heap in use every 20 ms until stop.
func sampleHeap() (*atomic.Uint64, func()) {
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return &peak, func() { close(done) }
}
