package store

import (
	"context"
	"time"

	"cloud.google.com/go/firestore"
)

// accountsCollection holds one document per service account, named by
// its id. An account belongs to one project; its grants (members) may
// reach further.
const accountsCollection = "serviceAccounts"

// Account is a service account.
type Account struct {
	ProjectID   string    `firestore:"projectId"`
	Email       string    `firestore:"email"` // unique: members are added by email
	DisplayName string    `firestore:"displayName"`
	BasicAuth   bool      `firestore:"enableBasicAuth"`
	Disabled    bool      `firestore:"disabled"`
	CreateTime  time.Time `firestore:"createTime"`
	UpdateTime  time.Time `firestore:"updateTime"`
}

// AccountUpdate changes the fields that are not nil, and always the
// update time.
type AccountUpdate struct {
	UpdateTime  time.Time
	DisplayName *string
	BasicAuth   *bool
	Disabled    *bool
}

func (u AccountUpdate) updates() []firestore.Update {
	upd := []firestore.Update{{Path: "updateTime", Value: u.UpdateTime}}
	if u.DisplayName != nil {
		upd = append(upd, firestore.Update{Path: "displayName", Value: *u.DisplayName})
	}
	if u.BasicAuth != nil {
		upd = append(upd, firestore.Update{Path: "enableBasicAuth", Value: *u.BasicAuth})
	}
	if u.Disabled != nil {
		upd = append(upd, firestore.Update{Path: "disabled", Value: *u.Disabled})
	}
	return upd
}

func (db *DB) accountRef(id string) *firestore.DocumentRef {
	return db.fs.Collection(accountsCollection).Doc(id)
}

// CreateAccount stores a new service account; an id in use is ErrExists.
func (db *DB) CreateAccount(ctx context.Context, id string, a Account) error {
	_, err := db.accountRef(id).Create(ctx, a)
	return wrap("create service account "+id, err)
}

// Account reads one service account.
func (db *DB) Account(ctx context.Context, id string) (Account, error) {
	return get[Account](ctx, db.accountRef(id), "service account "+id)
}

// AccountByEmail finds the service account with an email; none is
// ErrNotFound.
func (db *DB) AccountByEmail(ctx context.Context, email string) (string, Account, error) {
	docs, err := db.fs.Collection(accountsCollection).Where("email", "==", email).Limit(1).Documents(ctx).GetAll()
	if err != nil {
		return "", Account{}, wrap("service account by email", err)
	}
	if len(docs) == 0 {
		return "", Account{}, wrap("service account by email", ErrNotFound)
	}
	a, err := decode[Account](docs[0])
	return docs[0].Ref.ID, a, err
}

// ProjectAccounts is the query of a project's service accounts in
// document-id order, for a caller to page through.
func (db *DB) ProjectAccounts(project string) firestore.Query {
	return db.fs.Collection(accountsCollection).Where("projectId", "==", project).OrderBy(firestore.DocumentID, firestore.Asc)
}

// ProjectHasAccounts says whether a project has a service account.
func (db *DB) ProjectHasAccounts(ctx context.Context, project string) (bool, error) {
	docs, err := db.fs.Collection(accountsCollection).Where("projectId", "==", project).Limit(1).Documents(ctx).GetAll()
	if err != nil {
		return false, wrap("service accounts of "+project, err)
	}
	return len(docs) > 0, nil
}

// UpdateAccount changes a service account; a missing one is ErrNotFound.
func (db *DB) UpdateAccount(ctx context.Context, id string, u AccountUpdate) error {
	_, err := db.accountRef(id).Update(ctx, u.updates())
	return wrap("update service account "+id, err)
}

// DeleteAccount deletes a service account with its keys and grants in one
// transaction, so no key outlives its account, and returns the ids of the
// keys it deleted.
func (db *DB) DeleteAccount(ctx context.Context, id string) ([]string, error) {
	keys, err := refsOf(ctx, db.accountKeys(id), "keys of "+id)
	if err != nil {
		return nil, err
	}
	grants, err := refsOf(ctx, db.accountMembers(id), "grants of "+id)
	if err != nil {
		return nil, err
	}
	err = db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		for _, ref := range append(keys, grants...) {
			if err := tx.Delete(ref); err != nil {
				return err
			}
		}
		return tx.Delete(db.accountRef(id))
	})
	if err != nil {
		return nil, wrap("delete service account "+id, err)
	}
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.ID
	}
	return ids, nil
}
