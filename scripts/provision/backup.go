package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/storage"

	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/keybackup"
	"github.com/sealedsense/sealedsense/shared/store"
)

// openBackup makes what backup and restore work through. They need the
// backup key only: a restore into an empty project must not depend on
// anything else being configured.
func openBackup(ctx context.Context, getenv func(string) string, log *slog.Logger) (keybackup.Deps, func(), error) {
	project, key := getenv("GOOGLE_CLOUD_PROJECT"), getenv("SEALEDSENSE_BACKUP_KEY")
	if project == "" || key == "" {
		return keybackup.Deps{}, nil, errors.New("set GOOGLE_CLOUD_PROJECT and SEALEDSENSE_BACKUP_KEY")
	}
	fs, err := firestore.NewClient(ctx, project)
	if err != nil {
		return keybackup.Deps{}, nil, fmt.Errorf("firestore: %w", err)
	}
	kc, err := custody.NewKMSClient(ctx)
	if err != nil {
		fs.Close()
		return keybackup.Deps{}, nil, err
	}
	gcs, err := storage.NewClient(ctx)
	if err != nil {
		fs.Close()
		kc.Close()
		return keybackup.Deps{}, nil, fmt.Errorf("storage: %w", err)
	}
	closeAll := func() { fs.Close(); kc.Close(); gcs.Close() }
	return keybackup.Deps{DB: store.New(fs), KEK: custody.NewWrapper(kc, key), Storage: gcs, Project: project, Log: log}, closeAll, nil
}

// backupNow writes a backup on demand, as the scheduled function does.
func backupNow(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer, log *slog.Logger) error {
	fl := flag.NewFlagSet("backup", flag.ContinueOnError)
	list := fl.String("buckets", getenv("SEALEDSENSE_BACKUP_BUCKETS"), "comma-separated buckets to write the backup to")
	if err := fl.Parse(args); err != nil {
		return err
	}
	buckets := keybackup.Buckets(*list)
	if len(buckets) == 0 {
		return errors.New("-buckets (or SEALEDSENSE_BACKUP_BUCKETS) names no bucket")
	}
	d, closeAll, err := openBackup(ctx, getenv, log)
	if err != nil {
		return err
	}
	defer closeAll()
	res, runErr := keybackup.Run(ctx, d, buckets)
	for _, b := range res.Written {
		if _, err := fmt.Fprintf(stdout, "gs://%s/%s\n", b, res.Object); err != nil {
			return err
		}
	}
	return runErr
}

// restoreSource reads restore's -from and -at: an object, or the newest
// backup in a bucket at or before -at (default now).
func restoreSource(from, at string, now time.Time) (bucket, object string, when time.Time, err error) {
	bucket, object, err = keybackup.ParseLocation(from)
	if err != nil {
		return "", "", time.Time{}, fmt.Errorf("-from: %w", err)
	}
	when = now
	switch {
	case at != "" && object != "":
		return "", "", time.Time{}, errors.New("-at picks a backup in a bucket; -from already names one")
	case at != "":
		if when, err = time.Parse(time.RFC3339, at); err != nil {
			return "", "", time.Time{}, fmt.Errorf("-at must be an RFC 3339 time: %w", err)
		}
	}
	return bucket, object, when, nil
}

// restore checks a backup and writes back what is missing or older.
func restore(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer, log *slog.Logger) error {
	fl := flag.NewFlagSet("restore", flag.ContinueOnError)
	from := fl.String("from", "", "gs://bucket/object, or gs://bucket for its newest backup")
	at := fl.String("at", "", "with a bucket: the newest backup at or before this RFC 3339 time")
	dryRun := fl.Bool("dry-run", false, "check the backup and report what would change, writing nothing")
	if err := fl.Parse(args); err != nil {
		return err
	}
	bucket, object, when, err := restoreSource(*from, *at, time.Now())
	if err != nil {
		return err
	}
	d, closeAll, err := openBackup(ctx, getenv, log)
	if err != nil {
		return err
	}
	defer closeAll()
	if object == "" {
		if object, err = keybackup.Latest(ctx, d.Storage, bucket, when); err != nil {
			return err
		}
	}
	m, recs, err := keybackup.Load(ctx, d, bucket, object)
	if err != nil {
		return fmt.Errorf("backup refused, nothing written: %w", err)
	}
	if err := printManifest(stdout, bucket, m, *dryRun); err != nil {
		return err
	}
	rep, err := keybackup.Restore(ctx, d, recs, *dryRun)
	if _, perr := fmt.Fprintln(stdout, strings.Join(rep.Lines(), "\n")); perr != nil && err == nil {
		err = perr
	}
	if err == nil {
		log.Info("key backup restored", "object", object, "bucket", bucket, "dryRun", *dryRun)
	}
	return err
}

func printManifest(w io.Writer, bucket string, m keybackup.Manifest, dryRun bool) error {
	mode := "restoring"
	if dryRun {
		mode = "dry run: nothing is written"
	}
	_, err := fmt.Fprintf(w, "backup gs://%s/%s\nproject %s, made %s, data key wrapped by %s\nrecords' wrapping keys: %s\n%s\n",
		bucket, m.Object, m.Project, m.Created.Format(time.RFC3339), m.KMSVersion, strings.Join(m.WrapKeys, ", "), mode)
	return err
}
