package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"

	"cloud.google.com/go/firestore"
)

// auditCollection holds the audit log of every project: one document per
// entry, only ever created. No route changes or deletes an entry, and
// only the functions' service accounts can write Firestore at all.
const auditCollection = "auditLog"

// AuditEntry is one audited read or change of customer data.
type AuditEntry struct {
	ProjectID string    `firestore:"projectId"`
	Time      time.Time `firestore:"time"`
	ActorType string    `firestore:"actorType"` // SERVICE_ACCOUNT or PERSONNEL
	Actor     string    `firestore:"actor"`     // the account's email, or the operator
	Account   string    `firestore:"account,omitempty"`
	KeyID     string    `firestore:"keyId,omitempty"`
	Action    string    `firestore:"action"`   // "GET /v2/projects/{project}/devices"
	Resource  string    `firestore:"resource"` // the request path
	Code      int       `firestore:"code"`     // the HTTP status answered
	Reason    string    `firestore:"reason,omitempty"`
	// Organization is set on an entry of the organization's own log, with
	// no ProjectID, and on an erasure's tombstone: the project, which
	// names it otherwise, is gone.
	Organization string `firestore:"organization,omitempty"`
}

// auditID orders entries newest first by document id, so that a
// project's log lists without a composite index: the nanoseconds left
// until the end of time, zero-padded, then random bytes against
// collisions.
func auditID(t time.Time) (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return fmt.Sprintf("%019d-%s", math.MaxInt64-t.UnixNano(), hex.EncodeToString(b[:])), nil
}

// ErrProjectErased refuses an audit entry of a project being erased or
// gone: its log is erased with it, and an entry written now would
// outlive the erasure. The caller logs the entry instead.
var ErrProjectErased = errors.New("store: the project is erased")

// AppendAudit creates an entry, named by its time, in the transaction
// that finds its project there and not being erased: an erasure that
// starts later deletes it, one under way refuses it (ErrProjectErased).
func (db *DB) AppendAudit(ctx context.Context, e AuditEntry) error {
	id, err := auditID(e.Time)
	if err != nil {
		return err
	}
	err = db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		p, err := getIn[Project](tx, db.projectRef(e.ProjectID))
		switch {
		case IsNotFound(err) || (err == nil && p.Erasing != ""):
			return ErrProjectErased
		case err != nil:
			return err
		}
		return tx.Create(db.fs.Collection(auditCollection).Doc(id), e)
	})
	if errors.Is(err, ErrProjectErased) {
		return fmt.Errorf("store: audit of %s: %w", e.ProjectID, ErrProjectErased)
	}
	return wrap("audit", err)
}

// AppendOrgAudit creates an entry of an organization's own log (a change
// to its members), named by its time. Organizations are never erased, so
// no project check applies.
func (db *DB) AppendOrgAudit(ctx context.Context, e AuditEntry) error {
	if e.Organization == "" || e.ProjectID != "" {
		return fmt.Errorf("store: an organization's audit entry names the organization and no project")
	}
	id, err := auditID(e.Time)
	if err != nil {
		return err
	}
	_, err = db.fs.Collection(auditCollection).Doc(id).Create(ctx, e)
	return wrap("audit of "+e.Organization, err)
}

// OrganizationAudit is the query of an organization's entries, newest
// first: its own, and the tombstones of its erased projects.
func (db *DB) OrganizationAudit(org string) firestore.Query {
	return db.fs.Collection(auditCollection).Where("organization", "==", org).OrderBy(firestore.DocumentID, firestore.Asc)
}

// ProjectAudit is the query of a project's entries, newest first (in
// document-id order), for a caller to page through.
func (db *DB) ProjectAudit(project string) firestore.Query {
	return db.fs.Collection(auditCollection).Where("projectId", "==", project).OrderBy(firestore.DocumentID, firestore.Asc)
}
