package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"cloud.google.com/go/firestore"
)

// cloudCollection holds the cloud's own singletons: its long-lived keys
// and the API's page-token key, each private part KMS-wrapped.
const cloudCollection = "cloud"

const (
	cloudKeysDoc     = "keys"
	apiPageTokensDoc = "apiPageTokens"
)

// KeyRole names one of the cloud's versioned keys; it is also the field
// that holds the role's versions.
type KeyRole string

// The cloud's versioned keys.
const (
	// RoleStatic is the X25519 key sensors handshake with. Every stored
	// version is accepted; the newest is the one sensors are told to use.
	RoleStatic KeyRole = "statics"
	// RoleChannel is the Ed25519 key that signs downlinks to connectors.
	// The newest signs; an older version endorses it for connectors that
	// have not learned it yet.
	RoleChannel KeyRole = "channels"
	// RoleKEK is the session key-encryption key, wrapped by the
	// session-KEK CryptoKey (not the device key), so the two can be
	// rotated and access-controlled apart. The newest seals new sessions;
	// older ones still open theirs until retired.
	RoleKEK KeyRole = "keks"
)

// ErrLastKey refuses to retire the newest version of a key: nothing would
// be left to use.
var ErrLastKey = errors.New("store: the newest version of a key cannot be retired")

// ErrConflict means a concurrent change won; read again and retry.
var ErrConflict = errors.New("store: changed concurrently")

// CloudKey is one version of one of the cloud's keys.
type CloudKey struct {
	Version int       `firestore:"version"`
	Public  []byte    `firestore:"public,omitempty"` // none for a KEK
	Wrapped []byte    `firestore:"wrapped"`
	Created time.Time `firestore:"created"`
}

// KEKID is the id a session envelope names this version by, when the key
// is a KEK.
func (k CloudKey) KEKID() string { return fmt.Sprintf("kek-%d", k.Version) }

// CloudKeys is the stored form of the cloud's keys.
type CloudKeys struct {
	Statics  []CloudKey `firestore:"statics"`  // oldest first
	Channels []CloudKey `firestore:"channels"` // oldest first
	KEKs     []CloudKey `firestore:"keks"`     // oldest first

	WrapKey    string    `firestore:"wrapKey"` // the device-key CryptoKey name
	CreateTime time.Time `firestore:"createTime"`

	// A bootstrap from before keys had versions wrote one of each in
	// these fields; reads turn them into version 1 of each role.
	LegacyStaticPublic  []byte `firestore:"staticPublic,omitempty"`
	LegacyStaticWrapped []byte `firestore:"staticWrapped,omitempty"`
	LegacyChannelPublic []byte `firestore:"channelPublic,omitempty"`
	LegacyChannelWrap   []byte `firestore:"channelWrapped,omitempty"`
	LegacyKEKID         string `firestore:"kekId,omitempty"`
	LegacyKEKWrapped    []byte `firestore:"kekWrapped,omitempty"`
}

// normalize turns legacy single-version fields into version 1 of each role.
func (ck CloudKeys) normalize() CloudKeys {
	if len(ck.Statics) == 0 && len(ck.LegacyStaticWrapped) > 0 {
		ck.Statics = []CloudKey{{Version: 1, Public: ck.LegacyStaticPublic, Wrapped: ck.LegacyStaticWrapped, Created: ck.CreateTime}}
	}
	if len(ck.Channels) == 0 && len(ck.LegacyChannelWrap) > 0 {
		ck.Channels = []CloudKey{{Version: 1, Public: ck.LegacyChannelPublic, Wrapped: ck.LegacyChannelWrap, Created: ck.CreateTime}}
	}
	if len(ck.KEKs) == 0 && len(ck.LegacyKEKWrapped) > 0 {
		ck.KEKs = []CloudKey{{Version: 1, Wrapped: ck.LegacyKEKWrapped, Created: ck.CreateTime}}
	}
	ck.LegacyStaticPublic, ck.LegacyStaticWrapped = nil, nil
	ck.LegacyChannelPublic, ck.LegacyChannelWrap = nil, nil
	ck.LegacyKEKID, ck.LegacyKEKWrapped = "", nil
	return ck
}

// Versions returns the versions of role, oldest first.
func (ck CloudKeys) Versions(role KeyRole) []CloudKey {
	switch role {
	case RoleStatic:
		return ck.Statics
	case RoleChannel:
		return ck.Channels
	case RoleKEK:
		return ck.KEKs
	}
	return nil
}

// Newest returns the newest version of role; ok is false if it has none.
func (ck CloudKeys) Newest(role KeyRole) (k CloudKey, ok bool) {
	vs := ck.Versions(role)
	if len(vs) == 0 {
		return CloudKey{}, false
	}
	return vs[len(vs)-1], true
}

// Version returns version v of role.
func (ck CloudKeys) Version(role KeyRole, v int) (CloudKey, bool) {
	i := slices.IndexFunc(ck.Versions(role), func(k CloudKey) bool { return k.Version == v })
	if i < 0 {
		return CloudKey{}, false
	}
	return ck.Versions(role)[i], true
}

func (ck *CloudKeys) set(role KeyRole, vs []CloudKey) {
	switch role {
	case RoleStatic:
		ck.Statics = vs
	case RoleChannel:
		ck.Channels = vs
	case RoleKEK:
		ck.KEKs = vs
	}
}

func (db *DB) cloudKeysRef() *firestore.DocumentRef {
	return db.fs.Collection(cloudCollection).Doc(cloudKeysDoc)
}

// CreateCloudKeys stores the cloud's keys once; a second bootstrap meets
// ErrExists.
func (db *DB) CreateCloudKeys(ctx context.Context, ck CloudKeys) error {
	_, err := db.cloudKeysRef().Create(ctx, ck)
	return wrap("bootstrap", err)
}

// CloudKeys reads the cloud's keys.
func (db *DB) CloudKeys(ctx context.Context) (CloudKeys, error) {
	ck, err := get[CloudKeys](ctx, db.cloudKeysRef(), "cloud keys")
	return ck.normalize(), err
}

// AddCloudKey stores k as the newest version of role. k.Version must be
// one more than the newest stored: the caller wrapped the key with an AAD
// naming that version, so a concurrent rotation that took it meets
// ErrConflict instead of storing two keys under one version.
func (db *DB) AddCloudKey(ctx context.Context, role KeyRole, k CloudKey) error {
	return db.changeCloudKeys(ctx, "add cloud key", func(ck *CloudKeys) error {
		newest, _ := ck.Newest(role)
		if k.Version != newest.Version+1 {
			return fmt.Errorf("store: %s version %d after %d: %w", role, k.Version, newest.Version, ErrConflict)
		}
		ck.set(role, append(slices.Clone(ck.Versions(role)), k))
		return nil
	})
}

// RetireCloudKey deletes version v of role, which makes everything that
// still uses it fail. The newest version cannot be retired.
func (db *DB) RetireCloudKey(ctx context.Context, role KeyRole, v int) error {
	return db.changeCloudKeys(ctx, "retire cloud key", func(ck *CloudKeys) error {
		vs := ck.Versions(role)
		i := slices.IndexFunc(vs, func(k CloudKey) bool { return k.Version == v })
		switch {
		case i < 0:
			return fmt.Errorf("store: %s version %d: %w", role, v, ErrNotFound)
		case i == len(vs)-1:
			return fmt.Errorf("store: %s version %d: %w", role, v, ErrLastKey)
		}
		ck.set(role, slices.Delete(slices.Clone(vs), i, i+1))
		return nil
	})
}

// ReplaceCloudKeyWrapped stores a new wrapped form of version v of role,
// if the stored one is still old: a re-wrap must not undo a concurrent one.
func (db *DB) ReplaceCloudKeyWrapped(ctx context.Context, role KeyRole, v int, old, wrapped []byte) error {
	return db.changeCloudKeys(ctx, "rewrap cloud key", func(ck *CloudKeys) error {
		vs := slices.Clone(ck.Versions(role))
		i := slices.IndexFunc(vs, func(k CloudKey) bool { return k.Version == v })
		switch {
		case i < 0:
			return fmt.Errorf("store: %s version %d: %w", role, v, ErrNotFound)
		case string(vs[i].Wrapped) != string(old):
			return fmt.Errorf("store: %s version %d: %w", role, v, ErrConflict)
		}
		vs[i].Wrapped = wrapped
		ck.set(role, vs)
		return nil
	})
}

// changeCloudKeys applies change to the stored keys in a transaction,
// writing them back in their versioned form.
func (db *DB) changeCloudKeys(ctx context.Context, op string, change func(*CloudKeys) error) error {
	ref := db.cloudKeysRef()
	err := db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snap, err := tx.Get(ref)
		if err != nil {
			return err
		}
		ck, err := decode[CloudKeys](snap)
		if err != nil {
			return err
		}
		ck = ck.normalize()
		if err := change(&ck); err != nil {
			return err
		}
		return tx.Set(ref, ck)
	})
	return wrap(op, err)
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

// StaticPublic is the newest static public key: the one a new sensor is
// given at manufacture.
func (ck CloudKeys) StaticPublic() []byte {
	k, _ := ck.Newest(RoleStatic)
	return k.Public
}

// ChannelPublic is the newest channel public key: the one a new connector
// is given to verify downlinks.
func (ck CloudKeys) ChannelPublic() []byte {
	k, _ := ck.Newest(RoleChannel)
	return k.Public
}
