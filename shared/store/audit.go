package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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

// AppendAudit creates an entry, named by its time.
func (db *DB) AppendAudit(ctx context.Context, e AuditEntry) error {
	id, err := auditID(e.Time)
	if err != nil {
		return err
	}
	_, err = db.fs.Collection(auditCollection).Doc(id).Create(ctx, e)
	return wrap("audit", err)
}

// ProjectAudit is the query of a project's entries, newest first (in
// document-id order), for a caller to page through.
func (db *DB) ProjectAudit(project string) firestore.Query {
	return db.fs.Collection(auditCollection).Where("projectId", "==", project).OrderBy(firestore.DocumentID, firestore.Asc)
}
