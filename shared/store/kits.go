package store

import (
	"context"

	"cloud.google.com/go/firestore"
)

// kitsCollection holds the kits devices are sold in; a customer can claim
// a whole kit.
const kitsCollection = "kits"

// Kit groups the devices sold together.
type Kit struct {
	DisplayName string   `firestore:"displayName"`
	DeviceIDs   []string `firestore:"deviceIds"`
}

func (db *DB) kitRef(id string) *firestore.DocumentRef {
	return db.fs.Collection(kitsCollection).Doc(id)
}

// Kit reads one kit.
func (db *DB) Kit(ctx context.Context, id string) (Kit, error) {
	return get[Kit](ctx, db.kitRef(id), "kit "+id)
}

// AddToKit adds a device to kit id in tx, making the kit with name if it
// does not exist. Reads come first in a transaction, so it returns the
// write to do after the caller's other reads.
func (db *DB) AddToKit(tx *firestore.Transaction, id, name, deviceID string) (func() error, error) {
	ref := db.kitRef(id)
	k := Kit{DisplayName: name}
	snap, err := tx.Get(ref)
	switch {
	case err == nil:
		if k, err = decode[Kit](snap); err != nil {
			return nil, err
		}
	case !IsNotFound(err):
		return nil, err
	}
	k.DeviceIDs = append(k.DeviceIDs, deviceID)
	return func() error { return tx.Set(ref, k) }, nil
}
