package store

import (
	"context"
	"encoding/base64"
	"errors"
	"time"

	"cloud.google.com/go/firestore"
)

// membersCollection holds one grant of roles to a service account on a
// scope per document, named by memberID(scope, account), so one account
// has at most one grant per scope and a grant is read without a query.
const membersCollection = "members"

// Member grants roles on a scope to a service account.
type Member struct {
	Scope      string    `firestore:"scope"` // ProjectScope or OrganizationScope
	Account    string    `firestore:"account"`
	Email      string    `firestore:"email"`
	Roles      []string  `firestore:"roles"`
	CreateTime time.Time `firestore:"createTime"`
	// Type is MemberUser for a person; empty (older grants) or
	// MemberServiceAccount for a service account.
	Type string `firestore:"type,omitempty"`
}

// Member types.
const (
	MemberServiceAccount = "SERVICE_ACCOUNT"
	MemberUser           = "USER"
)

// ProjectScope is the scope of grants on a project.
func ProjectScope(project string) string { return "projects/" + project }

// OrganizationScope is the scope of grants on an organization.
func OrganizationScope(org string) string { return "organizations/" + org }

// memberID names a grant's document: the scope base64url-encoded (it has
// a slash, which a document id cannot), a dot, the account id.
func memberID(scope, account string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(scope)) + "." + account
}

func (db *DB) memberRef(scope, account string) *firestore.DocumentRef {
	return db.fs.Collection(membersCollection).Doc(memberID(scope, account))
}

// Grant stores a new grant; an account that already has one on the scope
// meets ErrExists.
func (db *DB) Grant(ctx context.Context, m Member) error {
	_, err := db.memberRef(m.Scope, m.Account).Create(ctx, m)
	return wrap("grant "+m.Scope+" to "+m.Account, err)
}

// Member reads account's grant on scope.
func (db *DB) Member(ctx context.Context, scope, account string) (Member, error) {
	return get[Member](ctx, db.memberRef(scope, account), "member "+account)
}

// SetMemberRoles replaces the roles of account's grant on scope; a
// missing grant is ErrNotFound.
func (db *DB) SetMemberRoles(ctx context.Context, scope, account string, roles []string) error {
	_, err := db.memberRef(scope, account).Update(ctx, []firestore.Update{{Path: "roles", Value: roles}})
	return wrap("member "+account, err)
}

// DeleteMember removes account's grant on scope; a missing grant is
// ErrNotFound.
func (db *DB) DeleteMember(ctx context.Context, scope, account string) error {
	_, err := db.memberRef(scope, account).Delete(ctx, firestore.Exists)
	return wrap("delete member "+account, err)
}

// ScopeMembers is the query of a scope's grants in document-id order,
// for a caller to page through.
func (db *DB) ScopeMembers(scope string) firestore.Query {
	return db.fs.Collection(membersCollection).Where("scope", "==", scope).OrderBy(firestore.DocumentID, firestore.Asc)
}

// ErrLastMember refuses to remove a scope's last grant.
var ErrLastMember = errors.New("store: the scope's last member")

// DeleteMemberNotLast removes account's grant on scope unless it is the
// scope's last, in one transaction, so two removals at once cannot both
// pass the check and leave the scope with none. A missing grant is
// ErrNotFound; the last is ErrLastMember.
func (db *DB) DeleteMemberNotLast(ctx context.Context, scope, account string) error {
	ref := db.memberRef(scope, account)
	err := db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		if _, err := tx.Get(ref); err != nil {
			return err
		}
		two, err := tx.Documents(db.ScopeMembers(scope).Limit(2)).GetAll()
		if err != nil {
			return err
		}
		if len(two) < 2 {
			return ErrLastMember
		}
		return tx.Delete(ref)
	})
	return wrap("delete member "+account, err)
}

// AccountMembers reads every grant of an account.
func (db *DB) AccountMembers(ctx context.Context, account string) ([]Member, error) {
	docs, err := db.accountMembers(account).Documents(ctx).GetAll()
	if err != nil {
		return nil, wrap("grants of "+account, err)
	}
	out := make([]Member, 0, len(docs))
	for _, d := range docs {
		m, err := decode[Member](d)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func (db *DB) accountMembers(account string) firestore.Query {
	return db.fs.Collection(membersCollection).Where("account", "==", account)
}

// scopeMemberRefs lists the grants on a scope, to delete with it.
func (db *DB) scopeMemberRefs(ctx context.Context, scope string) ([]*firestore.DocumentRef, error) {
	return refsOf(ctx, db.fs.Collection(membersCollection).Where("scope", "==", scope), "grants on "+scope)
}

// refsOf runs q and returns the references of what it found.
func refsOf(ctx context.Context, q firestore.Query, op string) ([]*firestore.DocumentRef, error) {
	docs, err := q.Documents(ctx).GetAll()
	if err != nil {
		return nil, wrap(op, err)
	}
	refs := make([]*firestore.DocumentRef, len(docs))
	for i, d := range docs {
		refs[i] = d.Ref
	}
	return refs, nil
}
