package keybackup

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"strings"
	"time"

	"cloud.google.com/go/storage"

	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/store"
)

// Object names: keybackups/<RFC 3339 UTC time>-<random>.ssbk. The time
// has a fixed width, so names sort by time.
const (
	ObjectPrefix = "keybackups/"
	ObjectSuffix = ".ssbk"
)

// exportPage is how many records one Firestore read returns.
const exportPage = 500

// KeyWrapper is the backup KEK: it wraps data keys when backing up and
// unwraps them when restoring. *custody.Wrapper is one.
type KeyWrapper interface {
	Wrapper
	Unwrapper
	KeyName() string
}

// Deps are what backing up and restoring work through.
type Deps struct {
	DB      *store.DB
	KEK     KeyWrapper
	Storage *storage.Client
	Project string
	Log     *slog.Logger
	Now     func() time.Time // default time.Now
}

// Result is one backup run: the object and where it was written.
type Result struct {
	Object  string         `json:"object"`
	Bytes   int            `json:"bytes"`
	Counts  map[string]int `json:"counts"`
	Written []string       `json:"written"` // the buckets that hold it
}

// clock is d.Now, or time.Now when unset.
func (d Deps) clock() func() time.Time {
	if d.Now != nil {
		return d.Now
	}
	return time.Now
}

// ObjectName names a backup made at t.
func ObjectName(t time.Time) string {
	return ObjectPrefix + t.UTC().Format(time.RFC3339) + "-" + rand.Text() + ObjectSuffix
}

// Run exports the registry, seals it into one object and writes that
// object to every bucket. Each bucket is written on its own: one that
// fails does not stop the next, and every failure is returned, joined.
func Run(ctx context.Context, d Deps, buckets []string) (Result, error) {
	if len(buckets) == 0 {
		return Result{}, errors.New("keybackup: no bucket to write to")
	}
	now := d.clock()
	var recs []store.Record
	if err := d.DB.ExportRegistry(ctx, exportPage, func(p []store.Record) error {
		for _, r := range p {
			// A Cloud Connector's device holds no key and is made again
			// by its next status; its connector record is backed up.
			if !store.IsConnectorDevice(r) {
				recs = append(recs, r)
			}
		}
		return nil
	}); err != nil {
		return Result{}, fmt.Errorf("keybackup: %w", err)
	}
	created := now()
	object := ObjectName(created)
	data, m, err := Seal(ctx, d.KEK, d.Project, object, created, recs)
	if err != nil {
		return Result{}, err
	}
	res := Result{Object: object, Bytes: len(data), Counts: m.Counts}
	var errs []error
	for _, b := range buckets {
		if err := write(ctx, d.Storage, b, object, data); err != nil {
			d.Log.Error("key backup failed", "alert", "key-backup-failed", "bucket", b, "object", object, "devices", m.Counts["devices"], "bytes", len(data), "error", err.Error())
			errs = append(errs, fmt.Errorf("keybackup: bucket %s: %w", b, err))
			continue
		}
		d.Log.Info("key backup written", "bucket", b, "object", object, "devices", m.Counts["devices"], "bytes", len(data))
		res.Written = append(res.Written, b)
	}
	return res, errors.Join(errs...)
}

// write stores data as a new object: a backup is never overwritten, and
// the CRC32C lets Cloud Storage refuse a copy damaged on the way.
func write(ctx context.Context, c *storage.Client, bucket, object string, data []byte) error {
	w := c.Bucket(bucket).Object(object).If(storage.Conditions{DoesNotExist: true}).NewWriter(ctx)
	w.ContentType = "application/octet-stream"
	w.CRC32C = crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
	w.SendCRC32C = true
	if _, err := w.Write(data); err != nil {
		_ = w.Close()
		return err
	}
	return w.Close()
}

// backupTime is the time in a backup's object name.
func backupTime(name string) (time.Time, bool) {
	s, ok := strings.CutPrefix(name, ObjectPrefix)
	if !ok {
		return time.Time{}, false
	}
	if s, ok = strings.CutSuffix(s, ObjectSuffix); !ok {
		return time.Time{}, false
	}
	i := strings.LastIndexByte(s, '-')
	if i < 0 || i == len(s)-1 {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, s[:i])
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

var _ KeyWrapper = (*custody.Wrapper)(nil)
