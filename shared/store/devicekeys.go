package store

import (
	"context"

	"cloud.google.com/go/firestore"
)

// deviceKeysCollection maps a sensor's public-key hash (the document id)
// to its device. psk2 lets the cloud learn a sensor's static key only from
// inside message 1, so this is how a handshake finds the device it came
// from.
const deviceKeysCollection = "deviceKeys"

type deviceKey struct {
	DeviceID string `firestore:"deviceId"`
}

// DeviceIDByKeyHash finds the device whose public key hashes to hash.
func (db *DB) DeviceIDByKeyHash(ctx context.Context, hash string) (string, error) {
	k, err := get[deviceKey](ctx, db.fs.Collection(deviceKeysCollection).Doc(hash), "device lookup")
	return k.DeviceID, err
}

// CreateDevice stores a new device and its public-key lookup in tx.
func (db *DB) CreateDevice(tx *firestore.Transaction, id string, d Device) error {
	if err := tx.Create(db.deviceRef(id), d); err != nil {
		return err
	}
	return tx.Create(db.fs.Collection(deviceKeysCollection).Doc(d.PublicKeyHash), deviceKey{DeviceID: id})
}
