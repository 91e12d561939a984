package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
)

// releasesCollection holds the signed software releases, one document per
// release named by its release id.
const releasesCollection = "releases"

// Release is one signed software release: the facts of its manifest, the
// signed manifest exactly as devices receive it, and where its image is.
// Only the signed manifest is authoritative; the other fields are copies
// for queries and for the operators' listings.
type Release struct {
	// ID is the hex of the manifest's 16-byte ReleaseID; it is the
	// document's id too.
	ID          string `firestore:"releaseId"`
	Target      string `firestore:"target"` // a sensor device type, or ConnectorType
	Version     uint32 `firestore:"version"`
	MinFrom     uint32 `firestore:"minFrom"`
	Size        uint32 `firestore:"size"`
	ChunkSize   uint16 `firestore:"chunkSize"`
	ImageSHA256 []byte `firestore:"imageSha256"`
	KeyVersion  uint32 `firestore:"keyVersion"` // the release-signing KMS key version
	Signed      []byte `firestore:"signed"`     // the signed manifest (shared/release)
	// Bucket and Object name the image in Cloud Storage.
	Bucket  string    `firestore:"bucket"`
	Object  string    `firestore:"object"`
	Created time.Time `firestore:"created"`
}

func (db *DB) releaseRef(id string) *firestore.DocumentRef {
	return db.fs.Collection(releasesCollection).Doc(id)
}

// CreateRelease stores a new release. It refuses, wrapping ErrExists, an
// id that exists and a second release of the same target and version:
// devices tell releases of a target apart by version alone. The check
// and the write are one transaction, which Firestore serializes, so two
// operators releasing the same version at once cannot both succeed.
func (db *DB) CreateRelease(ctx context.Context, r Release) error {
	if r.ID == "" || r.Target == "" || r.Version == 0 {
		return fmt.Errorf("store: release needs an id, a target and a version, got %q %q %d", r.ID, r.Target, r.Version)
	}
	same := db.fs.Collection(releasesCollection).Where("target", "==", r.Target).Where("version", "==", r.Version).Limit(1)
	err := db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		docs, err := tx.Documents(same).GetAll()
		if err != nil {
			return err
		}
		if len(docs) > 0 {
			return fmt.Errorf("store: %s version %d is already released, as release %s: %w", r.Target, r.Version, docs[0].Ref.ID, ErrExists)
		}
		return tx.Create(db.releaseRef(r.ID), r)
	})
	if errors.Is(err, ErrExists) {
		return err // already says which release holds the version
	}
	return wrap("create release "+r.ID, err)
}

// Release reads one release by id.
func (db *DB) Release(ctx context.Context, id string) (Release, error) {
	return get[Release](ctx, db.releaseRef(id), "release "+id)
}

// releasesByVersion is the index ReleasesOf's query runs on.
var _ = needs(releasesCollection, Field{"target", Asc}, Field{"version", Desc})

// ReleasesOf lists a target's releases, newest version first.
func (db *DB) ReleasesOf(ctx context.Context, target string) ([]Release, error) {
	docs, err := db.fs.Collection(releasesCollection).Where("target", "==", target).OrderBy("version", firestore.Desc).Documents(ctx).GetAll()
	if err != nil {
		return nil, wrap("releases of "+target, err)
	}
	out := make([]Release, 0, len(docs))
	for _, d := range docs {
		r, err := decode[Release](d)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}
