package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"time"

	"cloud.google.com/go/firestore"
)

// auditDoc is one audit entry. Entries are only ever created: no route
// changes or deletes them, and only the functions' service accounts can
// write Firestore at all.
type auditDoc struct {
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

// auditID orders entries newest first by document id, so the log lists
// without an index.
func auditID(t time.Time) (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return fmt.Sprintf("%019d-%s", math.MaxInt64-t.UnixNano(), hex.EncodeToString(b[:])), nil
}

func appendAudit(ctx context.Context, fs *firestore.Client, d auditDoc) error {
	id, err := auditID(d.Time)
	if err != nil {
		return err
	}
	if _, err := fs.Collection(auditCollection).Doc(id).Create(ctx, d); err != nil {
		return fmt.Errorf("api: audit: %w", err)
	}
	return nil
}

// audit writes the entries of one call: one for its project, and one for
// each further project a cross-project read showed.
func (s *Service) audit(c *call, rt route, code int) error {
	projects := slices.Clone(c.touched)
	if c.project != "" && c.project != "-" && c.org != "" {
		projects = append(projects, c.project)
	}
	// A transfer touches a source project once per device it moved.
	slices.Sort(projects)
	projects = slices.Compact(projects)
	for _, p := range projects {
		err := appendAudit(c.r.Context(), s.deps.Firestore, auditDoc{
			ProjectID: p, Time: s.deps.Now().UTC(), ActorType: "SERVICE_ACCOUNT", Actor: c.p.Email,
			Account: c.p.Account, KeyID: c.p.Key, Action: rt.Method + " " + rt.Pattern, Resource: requestPath(c.r), Code: code,
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// AuditEntry is an entry as the customer lists it.
type AuditEntry struct {
	Name      string    `json:"name"`
	Time      time.Time `json:"time"`
	ActorType string    `json:"actorType"`
	Actor     string    `json:"actor"`
	KeyID     string    `json:"keyId,omitempty"`
	Action    string    `json:"action"`
	Resource  string    `json:"resource"`
	Code      int       `json:"code"`
	Reason    string    `json:"reason,omitempty"`
}

type listAudit struct {
	Entries       []AuditEntry `json:"entries"`
	NextPageToken string       `json:"nextPageToken"`
}

func (s *Service) listAudit(c *call) (any, error) {
	q := s.deps.Firestore.Collection(auditCollection).Where("projectId", "==", c.project).OrderBy(firestore.DocumentID, firestore.Asc)
	docs, next, err := c.page(q, ordering{}, "")
	if err != nil {
		return nil, err
	}
	out := listAudit{Entries: []AuditEntry{}, NextPageToken: next}
	for _, d := range docs {
		var a auditDoc
		if err := d.DataTo(&a); err != nil {
			return nil, err
		}
		out.Entries = append(out.Entries, AuditEntry{Name: "projects/" + c.project + "/auditLog/" + d.Ref.ID, Time: a.Time, ActorType: a.ActorType,
			Actor: a.Actor, KeyID: a.KeyID, Action: a.Action, Resource: a.Resource, Code: a.Code, Reason: a.Reason})
	}
	return out, nil
}
