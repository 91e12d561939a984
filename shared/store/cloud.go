package store

import (
	"context"
	"time"
)

// cloudCollection holds the cloud's own singletons: its long-lived keys
// and the API's page-token key, each private part KMS-wrapped.
const cloudCollection = "cloud"

const (
	cloudKeysDoc     = "keys"
	apiPageTokensDoc = "apiPageTokens"
)

// CloudKeys is the stored form of the cloud's keys.
type CloudKeys struct {
	// StaticPublic is the X25519 key every sensor is given at manufacture.
	StaticPublic  []byte `firestore:"staticPublic"`
	StaticWrapped []byte `firestore:"staticWrapped"`
	// ChannelPublic verifies the downlinks the cloud signs for connectors.
	ChannelPublic  []byte `firestore:"channelPublic"`
	ChannelWrapped []byte `firestore:"channelWrapped"`
	// KEKID and KEKWrapped are the session key-encryption key, wrapped by
	// the session-KEK CryptoKey (not the device key), so the two can be
	// rotated and access-controlled apart.
	KEKID      string    `firestore:"kekId"`
	KEKWrapped []byte    `firestore:"kekWrapped"`
	WrapKey    string    `firestore:"wrapKey"` // the device-key CryptoKey name
	CreateTime time.Time `firestore:"createTime"`
}

// CreateCloudKeys stores the cloud's keys once; a second bootstrap meets
// ErrExists.
func (db *DB) CreateCloudKeys(ctx context.Context, ck CloudKeys) error {
	_, err := db.fs.Collection(cloudCollection).Doc(cloudKeysDoc).Create(ctx, ck)
	return wrap("bootstrap", err)
}

// CloudKeys reads the cloud's keys.
func (db *DB) CloudKeys(ctx context.Context) (CloudKeys, error) {
	return get[CloudKeys](ctx, db.fs.Collection(cloudCollection).Doc(cloudKeysDoc), "cloud keys")
}

type pageTokenKey struct {
	WrappedKey []byte `firestore:"wrappedKey"`
}

// CreatePageTokenKey stores the API's wrapped page-token key unless one
// exists, and returns the stored one: whoever created it first won.
func (db *DB) CreatePageTokenKey(ctx context.Context, wrapped []byte) ([]byte, error) {
	ref := db.fs.Collection(cloudCollection).Doc(apiPageTokensDoc)
	if _, err := ref.Create(ctx, pageTokenKey{WrappedKey: wrapped}); err != nil && !IsExists(err) {
		return nil, wrap("page-token key", err)
	}
	return db.PageTokenKey(ctx)
}

// PageTokenKey reads the API's wrapped page-token key.
func (db *DB) PageTokenKey(ctx context.Context) ([]byte, error) {
	k, err := get[pageTokenKey](ctx, db.fs.Collection(cloudCollection).Doc(apiPageTokensDoc), "page-token key")
	return k.WrappedKey, err
}
