package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/shared/devconfig"
	"github.com/sealedsense/sealedsense/shared/store"
)

// TestSetDesiredConfiguration: each change is one version above the last,
// and what the version check, the project or the type's ranges refuse is
// never written.
func TestSetDesiredConfiguration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := store.New(platformtest.Firestore(t, platformtest.ProjectID(t)))
	at := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	err := db.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		return db.CreateDevice(tx, "dev", store.Device{Type: "temperature", ProjectID: "p", PublicKeyHash: "k", CreateTime: at})
	})
	if err != nil {
		t.Fatal(err)
	}
	zero := int64(0)
	set := func(project string, c devconfig.Config, ifVersion *int64) (store.ConfigState, error) {
		return db.SetDesiredConfiguration(ctx, "dev", store.ConfigRequest{Project: project, Desired: c, IfVersion: ifVersion, Time: at})
	}
	st, err := set("p", devconfig.Config{SampleInterval: 60}, &zero)
	if err != nil || st.DesiredVersion != 1 || st.Status != store.ConfigPending {
		t.Fatalf("first change: %+v, %v; want PENDING at version 1", st, err)
	}
	for _, tc := range []struct {
		name    string
		project string
		c       devconfig.Config
		ifV     *int64
		want    error
	}{
		{"a stale version", "p", devconfig.Config{SampleInterval: 120}, &zero, store.ErrStale},
		{"another project", "q", devconfig.Config{SampleInterval: 120}, nil, store.ErrNotFound},
		{"out of the type's range", "p", devconfig.Config{SampleInterval: 5}, nil, devconfig.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := set(tc.project, tc.c, tc.ifV); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	d, err := db.Device(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	if got := d.ConfigurationState(); got.DesiredVersion != 1 || got.Desired.SampleInterval != 60 {
		t.Fatalf("stored %+v; want the first change only", got)
	}
	if _, err := db.SetDesiredConfiguration(ctx, "nodev", store.ConfigRequest{Project: "p", Desired: devconfig.Config{SampleInterval: 60}, Time: at}); !store.IsNotFound(err) {
		t.Fatalf("unknown device: %v, want not found", err)
	}
}
