// Command keyload measures the key backup and restore on the emulators:
// it provisions N devices as the provisioning command does (each PSK
// KMS-wrapped), backs the registry up to two buckets, wipes every
// registry collection, and restores it from the second bucket. It
// prints each step's time, the backup's size and the KMS calls per backup
// and per restore, with the times also as ratios to floors measured in the
// same run: a plain read of the same documents, and a plain bulk write of
// as many, so the figures hold on any machine.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/storage"

	"github.com/sealedsense/sealedsense/emulators/platform"
	"github.com/sealedsense/sealedsense/emulators/stack"
	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/devicetype"
	"github.com/sealedsense/sealedsense/shared/keybackup"
	"github.com/sealedsense/sealedsense/shared/registry"
	"github.com/sealedsense/sealedsense/shared/store"
)

func main() {
	devices := flag.Int("devices", 10000, "devices to provision, back up and restore")
	workers := flag.Int("workers", 16, "concurrent provisioning calls")
	flag.Parse()
	if err := run(*devices, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "keyload:", err)
		os.Exit(1)
	}
}

// world is the run's emulators and clients.
type world struct {
	p       *platform.Platform
	fs      *firestore.Client
	gcs     *storage.Client
	reg     *registry.Registry
	deps    keybackup.Deps
	keys    stack.Keys
	project string
}

func run(n, workers int) error {
	ctx := context.Background()
	w, err := start(ctx)
	if err != nil {
		return err
	}
	defer w.p.Close()
	fmt.Printf("provisioning %d devices...\n", n)
	t0 := time.Now()
	if err := w.provision(ctx, n, workers); err != nil {
		return err
	}
	fmt.Printf("provisioned in %s\n", time.Since(t0).Round(time.Millisecond))

	readFloor, err := w.readFloor(ctx)
	if err != nil {
		return err
	}
	writeFloor, err := w.writeFloor(ctx, 2*n)
	if err != nil {
		return err
	}
	b1, b2 := w.project+"-keys-1", w.project+"-keys-2"
	for _, b := range []string{b1, b2} {
		if err := w.gcs.Bucket(b).Create(ctx, w.project, nil); err != nil {
			return err
		}
	}
	kms0 := w.p.KMSCalls()
	t0 = time.Now()
	res, err := keybackup.Run(ctx, w.deps, []string{b1, b2})
	if err != nil {
		return err
	}
	backupTime, backupKMS := time.Since(t0), w.p.KMSCalls()-kms0

	if err := w.wipe(ctx, store.BackupKinds()...); err != nil {
		return err
	}
	kms0 = w.p.KMSCalls()
	t0 = time.Now()
	_, recs, err := keybackup.Load(ctx, w.deps, b2, res.Object)
	if err != nil {
		return err
	}
	rep, err := keybackup.Restore(ctx, w.deps, recs, false)
	if err != nil {
		return err
	}
	restoreTime, restoreKMS := time.Since(t0), w.p.KMSCalls()-kms0
	if got := rep["devices"][store.Created]; got != n {
		return fmt.Errorf("restore created %d devices, want %d", got, n)
	}

	fmt.Printf("\n%d devices, %d records in the backup\n", n, len(recs))
	fmt.Printf("floor: plain read of the registry %s; plain write of %d documents in transactions of 200 %s\n", readFloor.Round(time.Millisecond), 2*n, writeFloor.Round(time.Millisecond))
	fmt.Printf("backup:  %s (%.2f× the read floor), %d bytes (%.0f bytes per device), %d KMS calls, written to %d buckets\n",
		backupTime.Round(time.Millisecond), backupTime.Seconds()/readFloor.Seconds(), res.Bytes, float64(res.Bytes)/float64(n), backupKMS, len(res.Written))
	fmt.Printf("restore: %s (%.2f× the write floor), %d KMS calls\n",
		restoreTime.Round(time.Millisecond), restoreTime.Seconds()/writeFloor.Seconds(), restoreKMS)
	return nil
}

func start(ctx context.Context) (*world, error) {
	dir, err := os.MkdirTemp("", "keyload-")
	if err != nil {
		return nil, err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	const project = "keyload"
	p, err := platform.Start(ctx, platform.Config{Firestore: "auto", PubSub: "auto", KMS: "auto", Storage: "auto", DataDir: dir, Project: project, Logger: quiet})
	if err != nil {
		return nil, err
	}
	p.PointClients()
	w := &world{p: p, project: project}
	kc, err := custody.NewKMSClient(ctx)
	if err != nil {
		return nil, err
	}
	if w.keys, err = stack.EnsureKMS(ctx, kc, "projects/"+project+"/locations/europe/keyRings/r"); err != nil {
		return nil, err
	}
	if w.fs, err = firestore.NewClient(ctx, project); err != nil {
		return nil, err
	}
	if w.gcs, err = storage.NewClient(ctx); err != nil {
		return nil, err
	}
	w.reg = registry.New(w.fs, custody.NewWrapper(kc, w.keys.Device), nil)
	if _, err := w.reg.Bootstrap(ctx, custody.NewWrapper(kc, w.keys.SessionKEK), w.keys.Device); err != nil {
		return nil, err
	}
	w.deps = keybackup.Deps{DB: store.New(w.fs), KEK: custody.NewWrapper(kc, w.keys.Backup), Storage: w.gcs, Project: project, Log: quiet}
	return w, nil
}

// provision manufactures n sensors as the provisioning command does,
// workers at a time.
func (w *world) provision(ctx context.Context, n, workers int) error {
	jobs := make(chan struct{})
	errs := make(chan error, workers)
	temperature, _ := devicetype.Lookup("temperature")
	spec := registry.Spec{Type: temperature.Name, ProductNumber: temperature.ProductNumber}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range jobs {
				m, err := w.reg.Manufacture(ctx, spec, w.keys.Device)
				if err != nil {
					errs <- err
					return
				}
				m.PSK.Clear()
			}
		})
	}
	for i := 0; i < n; i++ {
		select {
		case jobs <- struct{}{}:
		case err := <-errs:
			close(jobs)
			wg.Wait()
			return err
		}
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// readFloor times a plain read of every document a backup holds.
func (w *world) readFloor(ctx context.Context) (time.Duration, error) {
	t0 := time.Now()
	for _, c := range store.BackupKinds() {
		if _, err := w.fs.Collection(c).Documents(ctx).GetAll(); err != nil {
			return 0, err
		}
	}
	return time.Since(t0), nil
}

// writeFloor times a plain write of n small documents into a collection
// of their own, in transactions of as many creates as a restore's batch,
// without the reads a restore makes first.
func (w *world) writeFloor(ctx context.Context, n int) (time.Duration, error) {
	t0 := time.Now()
	for first := 0; first < n; first += store.MaxRestoreBatch {
		err := w.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
			for i := first; i < min(n, first+store.MaxRestoreBatch); i++ {
				id := fmt.Sprintf("d%06d", i)
				if err := tx.Create(w.fs.Collection("floor").Doc(id), map[string]any{"deviceId": id}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	return time.Since(t0), nil
}

// wipe deletes every document of the collections, as a lost database
// would.
func (w *world) wipe(ctx context.Context, collections ...string) error {
	bw := w.fs.BulkWriter(ctx)
	for _, c := range collections {
		docs, err := w.fs.Collection(c).Documents(ctx).GetAll()
		if err != nil {
			return err
		}
		for _, d := range docs {
			if _, err := bw.Delete(d.Ref); err != nil {
				return err
			}
		}
	}
	bw.End()
	return nil
}
