package store

import (
	"context"
	"time"
)

// deliveryKeysCollection holds the deliver instances' ES256 public keys,
// each certified by the webhook-signing KMS key, named by their kid.
const deliveryKeysCollection = "deliveryKeys"

// DeliveryKey is a deliver instance's public key as the API's JWKS reads
// it. Only the certificate carries the key, so a Firestore writer without
// KMS sign access cannot add a key receivers would trust.
type DeliveryKey struct {
	Cert     string    `firestore:"cert"`
	NotAfter time.Time `firestore:"notAfter"`
	// ExpireAt outlives NotAfter by a signature's life, so a signature
	// made just before the key retired still verifies.
	ExpireAt time.Time `firestore:"expireAt"`
}

// DeliveryKeyEntry is a key with its kid.
type DeliveryKeyEntry struct {
	Kid string
	DeliveryKey
}

// CreateDeliveryKey publishes a key under its kid.
func (db *DB) CreateDeliveryKey(ctx context.Context, kid string, k DeliveryKey) error {
	_, err := db.fs.Collection(deliveryKeysCollection).Doc(kid).Create(ctx, k)
	return wrap("publish delivery key "+kid, err)
}

// LiveDeliveryKeys lists the keys whose expireAt is after now (a
// single-field range: no composite index). A document that does not
// decode is left out: it is no key anyone certified.
func (db *DB) LiveDeliveryKeys(ctx context.Context, now time.Time) ([]DeliveryKeyEntry, error) {
	docs, err := db.fs.Collection(deliveryKeysCollection).Where("expireAt", ">", now).Documents(ctx).GetAll()
	if err != nil {
		return nil, wrap("delivery keys", err)
	}
	var out []DeliveryKeyEntry
	for _, d := range docs {
		k, err := decode[DeliveryKey](d)
		if err != nil {
			continue
		}
		out = append(out, DeliveryKeyEntry{Kid: d.Ref.ID, DeliveryKey: k})
	}
	return out, nil
}
