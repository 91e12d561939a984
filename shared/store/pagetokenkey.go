package store

import (
	"context"
	"time"

	"cloud.google.com/go/firestore"
)

// Re-wrapping the API's page-token key, a singleton of the cloud
// collection (cloud.go). It sits apart from cloud.go so that the cloud's
// own keys can change shape without touching it.

// WrappedPageTokenKey reads the API's wrapped page-token key with the
// update time that ReplacePageTokenKey names; before the API's first list
// request there is none (ErrNotFound).
func (db *DB) WrappedPageTokenKey(ctx context.Context) (wrapped []byte, version time.Time, err error) {
	snap, err := db.pageTokenKeyRef().Get(ctx)
	if err != nil {
		return nil, time.Time{}, wrap("page-token key", err)
	}
	k, err := decode[pageTokenKey](snap)
	if err != nil {
		return nil, time.Time{}, err
	}
	return k.WrappedKey, snap.UpdateTime, nil
}

// ReplacePageTokenKey stores the page-token key re-wrapped, unless it
// changed since version (ErrChanged).
func (db *DB) ReplacePageTokenKey(ctx context.Context, version time.Time, wrapped []byte) error {
	return replaceWrapped(ctx, db.pageTokenKeyRef(), version, []firestore.Update{{Path: "wrappedKey", Value: wrapped}})
}

func (db *DB) pageTokenKeyRef() *firestore.DocumentRef {
	return db.fs.Collection(cloudCollection).Doc(apiPageTokensDoc)
}
