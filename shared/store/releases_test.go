package store_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/shared/store"
)

func release(id, target string, version uint32) store.Release {
	return store.Release{ID: id, Target: target, Version: version, MinFrom: version - 1, Size: 1000, ChunkSize: 512,
		ImageSHA256: make([]byte, 32), KeyVersion: 1, Signed: []byte("signed " + id), Bucket: "b",
		Object: fmt.Sprintf("releases/%s/%d-%s", target, version, id), Created: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
}

// TestReleases: a release reads back as stored; a target's releases list
// newest version first and only that target's; an existing id and a second
// release of a target's version are refused, naming what holds them.
func TestReleases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := store.New(platformtest.Firestore(t, platformtest.ProjectID(t)))
	for _, r := range []store.Release{release("a1", "temperature", 2), release("a2", "temperature", 10), release("a3", "temperature", 3), release("c1", "ccon", 2)} {
		if err := db.CreateRelease(ctx, r); err != nil {
			t.Fatalf("create %s: %v", r.ID, err)
		}
	}
	want := release("a2", "temperature", 10)
	if got, err := db.Release(ctx, "a2"); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("release a2 = %+v, %v; want %+v", got, err, want)
	}
	if _, err := db.Release(ctx, "nope"); !store.IsNotFound(err) {
		t.Fatalf("missing release: %v, want not found", err)
	}
	list, err := db.ReleasesOf(ctx, "temperature")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range list {
		got = append(got, fmt.Sprintf("%s@%d", r.ID, r.Version))
	}
	if w := []string{"a2@10", "a3@3", "a1@2"}; !reflect.DeepEqual(got, w) {
		t.Fatalf("temperature releases %v, want %v (newest version first, no ccon)", got, w)
	}
	if list, err := db.ReleasesOf(ctx, "humidity"); err != nil || len(list) != 0 {
		t.Fatalf("humidity releases %v, %v; want none", list, err)
	}

	refusals := []struct {
		name string
		r    store.Release
		says string
	}{
		{"existing id", release("a1", "humidity", 7), "a1"},
		{"same target and version", release("a4", "temperature", 3), "temperature version 3 is already released, as release a3"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			err := db.CreateRelease(ctx, tc.r)
			if !errors.Is(err, store.ErrExists) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("CreateRelease(%s %s@%d) = %v; want ErrExists saying %q", tc.r.ID, tc.r.Target, tc.r.Version, err, tc.says)
			}
		})
	}
	if r, err := db.Release(ctx, "a1"); err != nil || r.Target != "temperature" {
		t.Fatalf("release a1 after the refused create: %+v, %v; want it unchanged", r, err)
	}
	if _, err := db.Release(ctx, "a4"); !store.IsNotFound(err) {
		t.Fatalf("refused release a4 was stored: %v", err)
	}
}

// TestReleaseSameVersionRace: of releases of one target and version
// created at once, exactly one is stored.
func TestReleaseSameVersionRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := store.New(platformtest.Firestore(t, platformtest.ProjectID(t)))
	const racers = 4
	errs := make(chan error, racers)
	for i := range racers {
		go func() { errs <- db.CreateRelease(ctx, release(fmt.Sprintf("r%d", i), "co2", 5)) }()
	}
	ok := 0
	for range racers {
		err := <-errs
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrExists):
			t.Errorf("a racing create failed otherwise than ErrExists: %v", err)
		}
	}
	list, err := db.ReleasesOf(ctx, "co2")
	if err != nil {
		t.Fatal(err)
	}
	if ok != 1 || len(list) != 1 {
		t.Fatalf("%d creates succeeded and %d releases stored; want exactly one of each", ok, len(list))
	}
}
