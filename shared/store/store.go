// Package store is SealedSense's Firestore data model. Each file owns one
// collection: its name, its document struct, its typed updates and the
// queries callers run, with the composite index each query needs declared
// beside it. Nothing outside this package names a collection or a field.
package store

import (
	"context"
	"errors"
	"fmt"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sentinel errors, wrapped with the operation that met them.
var (
	ErrNotFound = errors.New("store: not found")
	ErrExists   = errors.New("store: already exists")
	// ErrUndecodable is a stored document that does not decode into its
	// struct: reading it again cannot help.
	ErrUndecodable = errors.New("store: document does not decode")
)

// DB is the data model over one Firestore database.
type DB struct {
	fs *firestore.Client
}

// New returns the data model over fs.
func New(fs *firestore.Client) *DB { return &DB{fs: fs} }

// RunTransaction runs f in a Firestore transaction, retrying it on
// contention as the client does.
func (db *DB) RunTransaction(ctx context.Context, f func(context.Context, *firestore.Transaction) error) error {
	return db.fs.RunTransaction(ctx, f)
}

// IsNotFound reports whether err is a missing document, from this package
// or straight from Firestore.
func IsNotFound(err error) bool {
	return errors.Is(err, ErrNotFound) || status.Code(err) == codes.NotFound
}

// IsExists reports whether err is a create of a document that exists.
func IsExists(err error) bool {
	return errors.Is(err, ErrExists) || status.Code(err) == codes.AlreadyExists
}

// wrap names the operation in err and maps Firestore's NotFound and
// AlreadyExists to this package's sentinels.
func wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case status.Code(err) == codes.NotFound:
		return fmt.Errorf("store: %s: %w", op, ErrNotFound)
	case status.Code(err) == codes.AlreadyExists:
		return fmt.Errorf("store: %s: %w", op, ErrExists)
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// get reads one document into a T.
func get[T any](ctx context.Context, ref *firestore.DocumentRef, op string) (T, error) {
	var v T
	snap, err := ref.Get(ctx)
	if err != nil {
		return v, wrap(op, err)
	}
	if err := snap.DataTo(&v); err != nil {
		return v, fmt.Errorf("store: %s %s: %w: %w", op, ref.ID, ErrUndecodable, err)
	}
	return v, nil
}

// decode reads a snapshot into a T.
func decode[T any](snap *firestore.DocumentSnapshot) (T, error) {
	var v T
	if err := snap.DataTo(&v); err != nil {
		return v, fmt.Errorf("store: %s/%s: %w: %w", snap.Ref.Parent.ID, snap.Ref.ID, ErrUndecodable, err)
	}
	return v, nil
}
