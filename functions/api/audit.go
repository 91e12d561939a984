package api

import (
	"errors"
	"slices"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/store"
)

// audit writes the entries of one call: one for its project, and one for
// each further project a cross-project read showed.
func (s *Service) audit(c *call, rt route, code int) error {
	if o := c.r.PathValue("organization"); o != "" && c.project == "" {
		return s.db.AppendOrgAudit(c.r.Context(), store.AuditEntry{
			Organization: o, Time: s.deps.Now().UTC(), ActorType: c.p.actorType(), Actor: c.p.Email,
			Account: c.p.Account, KeyID: c.p.Key, Action: rt.Method + " " + rt.Pattern, Resource: requestPath(c.r), Code: code,
		})
	}
	projects := slices.Clone(c.touched)
	if c.project != "" && c.project != "-" && c.org != "" {
		projects = append(projects, c.project)
	}
	// A transfer touches a source project once per device it moved.
	slices.Sort(projects)
	projects = slices.Compact(projects)
	for _, p := range projects {
		e := store.AuditEntry{
			ProjectID: p, Time: s.deps.Now().UTC(), ActorType: c.p.actorType(), Actor: c.p.Email,
			Account: c.p.Account, KeyID: c.p.Key, Action: rt.Method + " " + rt.Pattern, Resource: requestPath(c.r), Code: code,
		}
		err := s.db.AppendAudit(c.r.Context(), e)
		if errors.Is(err, store.ErrProjectErased) {
			// The project's log is being erased with it: the call is
			// recorded in Cloud Logging instead (the erasure's tombstone
			// records the erasure itself).
			s.log.Info("audit of an erased project", "project", p, "actor", e.Actor, "action", e.Action, "resource", e.Resource, "code", code)
			continue
		}
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
	// Project names the erased project of a tombstone in an
	// organization's log.
	Project string `json:"project,omitempty"`
}

type listAudit struct {
	Entries       []AuditEntry `json:"entries"`
	NextPageToken string       `json:"nextPageToken"`
}

func toAuditEntry(project, id string, a store.AuditEntry) AuditEntry {
	return AuditEntry{Name: "projects/" + project + "/auditLog/" + id, Time: a.Time, ActorType: a.ActorType,
		Actor: a.Actor, KeyID: a.KeyID, Action: a.Action, Resource: a.Resource, Code: a.Code, Reason: a.Reason}
}

func (s *Service) listAudit(c *call) (any, error) {
	docs, next, err := c.page(s.db.ProjectAudit(c.project), ordering{}, "")
	if err != nil {
		return nil, err
	}
	out := listAudit{Entries: []AuditEntry{}, NextPageToken: next}
	err = eachSnap(docs, func(id string, a store.AuditEntry) {
		out.Entries = append(out.Entries, toAuditEntry(c.project, id, a))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Service) listOrgAudit(c *call) (any, error) {
	o := c.r.PathValue("organization")
	docs, next, err := c.page(s.db.OrganizationAudit(o), ordering{}, "")
	if err != nil {
		return nil, err
	}
	out := listAudit{Entries: []AuditEntry{}, NextPageToken: next}
	err = eachSnap(docs, func(id string, a store.AuditEntry) {
		e := toAuditEntry("", id, a)
		e.Name = "organizations/" + o + "/auditLog/" + id
		if a.ProjectID != "" {
			e.Project = "projects/" + a.ProjectID
		}
		out.Entries = append(out.Entries, e)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// eachSnap decodes a page of documents and calls f for each, in order.
func eachSnap[T any](docs []*firestore.DocumentSnapshot, f func(id string, v T)) error {
	for _, d := range docs {
		var v T
		if err := d.DataTo(&v); err != nil {
			return err
		}
		f(d.Ref.ID, v)
	}
	return nil
}
