package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/shared/store"
)

// TestReplaceWrappedOnlyIfUnchanged: re-wrapping pages through a
// collection in id order, and its write lands only on the document it
// read; a key changed or deleted since is ErrChanged or ErrNotFound and
// keeps what is stored.
func TestReplaceWrappedOnlyIfUnchanged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := store.New(platformtest.Firestore(t, platformtest.ProjectID(t)))
	for _, id := range []string{"k1", "k2", "k3"} {
		if err := db.CreateKey(ctx, id, store.Key{Account: "acc-" + id, ProjectID: "p", WrappedSecret: []byte("old " + id), CreateTime: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	first, err := db.KeySecrets(ctx, "", 2)
	if err != nil || len(first) != 2 || first[0].ID != "k1" || first[1].ID != "k2" {
		t.Fatalf("first page: %+v, %v; want k1, k2", first, err)
	}
	if first[0].Doc.Account != "acc-k1" || string(first[0].Doc.WrappedSecret) != "old k1" || first[0].Version.IsZero() {
		t.Fatalf("k1 as read: %+v", first[0])
	}
	rest, err := db.KeySecrets(ctx, "k2", 2)
	if err != nil || len(rest) != 1 || rest[0].ID != "k3" {
		t.Fatalf("page after k2: %+v, %v; want k3", rest, err)
	}

	if err := db.ReplaceKeySecret(ctx, "k1", first[0].Version, []byte("new k1")); err != nil {
		t.Fatalf("replace of an unchanged key: %v", err)
	}
	// A second write from the same read is stale now.
	if err := db.ReplaceKeySecret(ctx, "k1", first[0].Version, []byte("stale k1")); !errors.Is(err, store.ErrChanged) {
		t.Fatalf("replace from a stale read: %v, want ErrChanged", err)
	}
	k, err := db.Key(ctx, "k1")
	if err != nil || string(k.WrappedSecret) != "new k1" || !k.AccountBound {
		t.Fatalf("k1 stored: %+v, %v; want the first replacement, account-bound", k, err)
	}
	if err := db.DeleteKey(ctx, "k2"); err != nil {
		t.Fatal(err)
	}
	if err := db.ReplaceKeySecret(ctx, "k2", first[1].Version, []byte("new k2")); !errors.Is(err, store.ErrChanged) && !store.IsNotFound(err) {
		t.Fatalf("replace of a deleted key: %v, want ErrChanged or not found", err)
	}
	if _, err := db.Key(ctx, "k2"); !store.IsNotFound(err) {
		t.Fatalf("a deleted key came back: %v", err)
	}
}
