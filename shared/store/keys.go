package store

import (
	"context"
	"time"

	"cloud.google.com/go/firestore"
)

// keysCollection holds one document per service-account key, named by
// the key id that assertions and Basic credentials carry.
const keysCollection = "serviceAccountKeys"

// Key is a service-account key. Its secret is stored only KMS-wrapped,
// with the key id and, where AccountBound, its account as additional
// data, so a wrapped secret copied to another key, or a key whose account
// was edited, does not unwrap.
type Key struct {
	Account       string    `firestore:"account"`
	ProjectID     string    `firestore:"projectId"`
	WrappedSecret []byte    `firestore:"wrappedSecret"`
	CreateTime    time.Time `firestore:"createTime"`
	// AccountBound says the secret was wrapped with the account too; keys
	// minted before that was done are not, until rewrapped or re-minted.
	// It only picks the additional data to try: a bound secret does not
	// unwrap as unbound.
	AccountBound bool `firestore:"accountBound,omitempty"`
}

func (db *DB) keyRef(id string) *firestore.DocumentRef {
	return db.fs.Collection(keysCollection).Doc(id)
}

// CreateKey stores a new key; an id in use is ErrExists.
func (db *DB) CreateKey(ctx context.Context, id string, k Key) error {
	_, err := db.keyRef(id).Create(ctx, k)
	return wrap("create key "+id, err)
}

// Key reads one key.
func (db *DB) Key(ctx context.Context, id string) (Key, error) {
	return get[Key](ctx, db.keyRef(id), "key "+id)
}

// DeleteKey deletes a key; deleting a missing one is no error.
func (db *DB) DeleteKey(ctx context.Context, id string) error {
	_, err := db.keyRef(id).Delete(ctx)
	return wrap("delete key "+id, err)
}

// AccountKeys is the query of an account's keys in document-id order,
// for a caller to page through.
func (db *DB) AccountKeys(account string) firestore.Query {
	return db.accountKeys(account).OrderBy(firestore.DocumentID, firestore.Asc)
}

func (db *DB) accountKeys(account string) firestore.Query {
	return db.fs.Collection(keysCollection).Where("account", "==", account)
}

// KeySecrets reads up to n keys after the key id after, in id order,
// with only their account, wrapped secret and whether it is bound to the
// account.
func (db *DB) KeySecrets(ctx context.Context, after string, n int) ([]Wrapped[Key], error) {
	return wrappedPage[Key](ctx, db.fs.Collection(keysCollection), after, n, "account", "wrappedSecret", "accountBound")
}

// ReplaceKeySecret stores a key's secret re-wrapped with its account as
// additional data, and marks it account-bound, unless the key changed
// since version (ErrChanged).
func (db *DB) ReplaceKeySecret(ctx context.Context, id string, version time.Time, wrapped []byte) error {
	return replaceWrapped(ctx, db.keyRef(id), version, []firestore.Update{{Path: "wrappedSecret", Value: wrapped}, {Path: "accountBound", Value: true}})
}
