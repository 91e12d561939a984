package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/shared/store"
)

// TestCloudKeyVersions: a bootstrap from before versions reads as version
// 1 of each role; rotation adds versions in order, refuses a version a
// concurrent rotation took, and retirement never removes the newest.
func TestCloudKeyVersions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := store.New(platformtest.Firestore(t, platformtest.ProjectID(t)))
	at := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	legacy := store.CloudKeys{WrapKey: "wk", CreateTime: at,
		LegacyStaticPublic: []byte("sp"), LegacyStaticWrapped: []byte("sw"),
		LegacyChannelPublic: []byte("cp"), LegacyChannelWrap: []byte("cw"),
		LegacyKEKID: "kek-1", LegacyKEKWrapped: []byte("kw")}
	if err := db.CreateCloudKeys(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	ck, err := db.CloudKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(ck.StaticPublic()) != "sp" || string(ck.ChannelPublic()) != "cp" || len(ck.KEKs) != 1 || ck.KEKs[0].KEKID() != "kek-1" || string(ck.KEKs[0].Wrapped) != "kw" {
		t.Fatalf("legacy keys read as %+v", ck)
	}

	if err := db.AddCloudKey(ctx, store.RoleStatic, store.CloudKey{Version: 3, Public: []byte("x")}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("adding version 3 after 1 = %v, want ErrConflict", err)
	}
	if err := db.AddCloudKey(ctx, store.RoleStatic, store.CloudKey{Version: 2, Public: []byte("sp2"), Wrapped: []byte("sw2")}); err != nil {
		t.Fatal(err)
	}
	if err := db.RetireCloudKey(ctx, store.RoleStatic, 2); !errors.Is(err, store.ErrLastKey) {
		t.Fatalf("retiring the newest = %v, want ErrLastKey", err)
	}
	if err := db.RetireCloudKey(ctx, store.RoleStatic, 1); err != nil {
		t.Fatal(err)
	}
	ck, err = db.CloudKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ck.Statics) != 1 || ck.Statics[0].Version != 2 || string(ck.StaticPublic()) != "sp2" {
		t.Fatalf("statics after rotate and retire = %+v", ck.Statics)
	}
	// The other roles kept their legacy version 1, now stored versioned.
	if len(ck.Channels) != 1 || string(ck.Channels[0].Wrapped) != "cw" || len(ck.KEKs) != 1 || ck.LegacyKEKWrapped != nil {
		t.Fatalf("other roles after the change = %+v", ck)
	}
	if err := db.ReplaceCloudKeyWrapped(ctx, store.RoleKEK, 1, []byte("stale"), []byte("new")); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("rewrap from a stale value = %v, want ErrConflict", err)
	}
}
