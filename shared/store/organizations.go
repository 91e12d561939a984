package store

import (
	"context"
	"time"

	"cloud.google.com/go/firestore"
)

// organizationsCollection holds one document per customer organization,
// named by its id. Projects name their organization; grants on
// "organizations/<id>" make an account an organization admin.
const organizationsCollection = "organizations"

// Organization is a customer organization.
type Organization struct {
	DisplayName string    `firestore:"displayName"`
	CreateTime  time.Time `firestore:"createTime"`
}

func (db *DB) organizationRef(id string) *firestore.DocumentRef {
	return db.fs.Collection(organizationsCollection).Doc(id)
}

// CreateOrganization stores a new organization; an id in use is ErrExists.
func (db *DB) CreateOrganization(ctx context.Context, id string, o Organization) error {
	_, err := db.organizationRef(id).Create(ctx, o)
	return wrap("create organization "+id, err)
}

// Organization reads one organization.
func (db *DB) Organization(ctx context.Context, id string) (Organization, error) {
	return get[Organization](ctx, db.organizationRef(id), "organization "+id)
}

// Organizations reads the organizations of ids that exist, in one round
// trip, keyed by id.
func (db *DB) Organizations(ctx context.Context, ids []string) (map[string]Organization, error) {
	return getByID[Organization](ctx, db.fs, organizationsCollection, ids)
}

// getByID reads the documents of ids that exist in collection, in one
// round trip, keyed by id.
func getByID[T any](ctx context.Context, fs *firestore.Client, collection string, ids []string) (map[string]T, error) {
	refs := make([]*firestore.DocumentRef, len(ids))
	for i, id := range ids {
		refs[i] = fs.Collection(collection).Doc(id)
	}
	snaps, err := fs.GetAll(ctx, refs)
	if err != nil {
		return nil, wrap(collection, err)
	}
	out := make(map[string]T, len(snaps))
	for _, s := range snaps {
		if !s.Exists() {
			continue
		}
		v, err := decode[T](s)
		if err != nil {
			return nil, err
		}
		out[s.Ref.ID] = v
	}
	return out, nil
}
