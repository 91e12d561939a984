package store

import (
	"context"
	"time"

	"cloud.google.com/go/firestore"
)

// Wrapped is a document holding a KMS-wrapped secret, as re-wrapping
// reads it: its id, the update time that the write replacing the secret
// must find unchanged, and the document projected to the fields that the
// secret and its additional data need.
type Wrapped[T any] struct {
	ID      string
	Version time.Time
	Doc     T
}

// wrappedPage reads up to n documents of coll after the document id after
// (from the first when empty), in id order, projected to fields. Ordered
// by id alone, it needs no index.
func wrappedPage[T any](ctx context.Context, coll *firestore.CollectionRef, after string, n int, fields ...string) ([]Wrapped[T], error) {
	q := coll.Select(fields...).OrderBy(firestore.DocumentID, firestore.Asc)
	if after != "" {
		q = q.StartAfter(after)
	}
	docs, err := q.Limit(n).Documents(ctx).GetAll()
	if err != nil {
		return nil, wrap(coll.ID+" page", err)
	}
	out := make([]Wrapped[T], len(docs))
	for i, d := range docs {
		v, err := decode[T](d)
		if err != nil {
			return nil, err
		}
		out[i] = Wrapped[T]{ID: d.Ref.ID, Version: d.UpdateTime, Doc: v}
	}
	return out, nil
}

// replaceWrapped writes upd to ref unless the document changed since
// version (ErrChanged) or is gone (ErrNotFound): a secret re-wrapped from
// a stale read must never overwrite a newer one.
func replaceWrapped(ctx context.Context, ref *firestore.DocumentRef, version time.Time, upd []firestore.Update) error {
	_, err := ref.Update(ctx, upd, firestore.LastUpdateTime(version))
	return wrapCond("replace wrapped secret of "+ref.Parent.ID+"/"+ref.ID, err)
}
