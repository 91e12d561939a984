package api

import (
	"context"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/iterator"

	"github.com/sealedsense/sealedsense/functions/api/pagetoken"
	"github.com/sealedsense/sealedsense/shared/dataconnector"
	"github.com/sealedsense/sealedsense/shared/registry"
)

// Organization is DT's organization resource.
type Organization struct {
	Name        string `json:"name"`
	DisplayName string `json:"displayName"`
}

type listOrganizations struct {
	Organizations []Organization `json:"organizations"`
	NextPageToken string         `json:"nextPageToken"`
}

// Project is DT's project resource, with the personnel-access setting as
// our extension.
type Project struct {
	Name            string    `json:"name"`
	DisplayName     string    `json:"displayName"`
	Inventory       bool      `json:"inventory"`
	Organization    string    `json:"organization"`
	PersonnelAccess string    `json:"personnelAccess"`
	CreateTime      time.Time `json:"createTime"`
}

type listProjects struct {
	Projects      []Project `json:"projects"`
	NextPageToken string    `json:"nextPageToken"`
}

type createProject struct {
	DisplayName  string `json:"displayName"`
	Organization string `json:"organization"`
}

type updateProject struct {
	DisplayName     *string `json:"displayName,omitempty"`
	PersonnelAccess *string `json:"personnelAccess,omitempty"`
}

type listRoles struct {
	Roles         []Role `json:"roles"`
	NextPageToken string `json:"nextPageToken"`
}

type listPermissions struct {
	Permissions   []string `json:"permissions"`
	NextPageToken string   `json:"nextPageToken"`
}

func toProject(id string, p projectDoc) Project {
	return Project{Name: "projects/" + id, DisplayName: p.DisplayName, Organization: "organizations/" + p.Organization,
		PersonnelAccess: p.PersonnelAccess, CreateTime: p.CreateTime}
}

// listOrganizations lists the organizations the caller administers.
func (s *Service) listOrganizations(c *call) (any, error) {
	out := listOrganizations{Organizations: []Organization{}}
	err := eachDoc(c.r.Context(), s.deps.Firestore, organizationsCollection, c.p.orgAdminOf(), func(id string, d orgDoc) {
		out.Organizations = append(out.Organizations, Organization{Name: "organizations/" + id, DisplayName: d.DisplayName})
	})
	return out, err
}

func (s *Service) getOrganization(c *call) (any, error) {
	o := c.r.PathValue("organization")
	if !slices.Contains(c.p.orgAdminOf(), o) {
		return nil, errForbidden("missing permission " + permOrgRead + " on organizations/" + o)
	}
	d, err := getDoc[orgDoc](c.r.Context(), s.deps.Firestore.Collection(organizationsCollection).Doc(o), "organization")
	if err != nil {
		return nil, err
	}
	return Organization{Name: "organizations/" + o, DisplayName: d.DisplayName}, nil
}

func (s *Service) listRoles(*call) (any, error) { return listRoles{Roles: roles()}, nil }

func (s *Service) getRole(c *call) (any, error) {
	r, ok := role("roles/" + c.r.PathValue("role"))
	if !ok {
		return nil, errNotFound("role not found")
	}
	return r, nil
}

// readableProjects lists the projects where the caller holds perm, within
// org if it is not empty.
func (s *Service) readableProjects(c *call, perm, org string) ([]string, error) {
	var ids []string
	for sc := range c.p.Grants {
		if p, ok := strings.CutPrefix(sc, "projects/"); ok {
			po, err := s.projectOrg(c.r.Context(), p)
			if err != nil {
				return nil, err
			}
			if po != "" && (org == "" || po == org) && c.p.can(perm, p, po) {
				ids = append(ids, p)
			}
		}
	}
	for _, o := range c.p.orgAdminOf() {
		if org != "" && o != org {
			continue
		}
		it := s.deps.Firestore.Collection(projectsCollection).Where("organization", "==", o).Select().Documents(c.r.Context())
		for {
			snap, err := it.Next()
			if err == iterator.Done {
				break
			}
			if err != nil {
				it.Stop()
				return nil, errUnavailable(err)
			}
			ids = append(ids, snap.Ref.ID)
		}
		it.Stop()
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

func (s *Service) listProjects(c *call) (any, error) {
	org := strings.TrimPrefix(c.r.URL.Query().Get("organization"), "organizations/")
	ids, err := s.readableProjects(c, permProjectRead, org)
	if err != nil {
		return nil, err
	}
	size, err := c.pageSize()
	if err != nil {
		return nil, err
	}
	// The list is the caller's own grants, so an offset token is enough;
	// it is still sealed, so it cannot be edited.
	start := 0
	if tok := c.r.URL.Query().Get("pageToken"); tok != "" {
		cur, err := s.pages.open(c.r.Context(), c.r.Pattern+"\x00"+org, tok)
		if err != nil {
			return nil, err
		}
		start, _ = slices.BinarySearch(ids, cur.ID)
		if start < len(ids) && ids[start] == cur.ID {
			start++
		}
	}
	out := listProjects{Projects: []Project{}}
	end := min(len(ids), start+size)
	err = eachDoc(c.r.Context(), s.deps.Firestore, projectsCollection, ids[start:end], func(id string, d projectDoc) {
		out.Projects = append(out.Projects, toProject(id, d))
	})
	if err != nil {
		return nil, err
	}
	if end < len(ids) {
		if out.NextPageToken, err = s.pages.seal(c.r.Context(), c.r.Pattern+"\x00"+org, pagetoken.Cursor{ID: ids[end-1]}); err != nil {
			return nil, errUnavailable(err)
		}
	}
	return out, nil
}

func (s *Service) createProject(c *call) (any, error) {
	var req createProject
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	org := strings.TrimPrefix(req.Organization, "organizations/")
	if org == "" || strings.TrimSpace(req.DisplayName) == "" || len(req.DisplayName) > 200 {
		return nil, errBadRequest("displayName (1 to 200 characters) and organization are required")
	}
	if !slices.Contains(c.p.orgAdminOf(), org) {
		return nil, errForbidden("missing permission " + permProjectCreate + " on organizations/" + org)
	}
	st := s.store()
	id, err := st.createProject(c.r.Context(), org, "", req.DisplayName)
	if err != nil {
		return nil, err
	}
	c.project, c.org = id, org
	return s.getProject(c)
}

func (s *Service) getProject(c *call) (any, error) {
	d, err := getDoc[projectDoc](c.r.Context(), s.deps.Firestore.Collection(projectsCollection).Doc(c.project), "project")
	if err != nil {
		return nil, err
	}
	return toProject(c.project, d), nil
}

func (s *Service) updateProject(c *call) (any, error) {
	var req updateProject
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	var upd []firestore.Update
	if req.DisplayName != nil {
		if strings.TrimSpace(*req.DisplayName) == "" || len(*req.DisplayName) > 200 {
			return nil, errBadRequest("displayName must be 1 to 200 characters")
		}
		upd = append(upd, firestore.Update{Path: "displayName", Value: *req.DisplayName})
	}
	if req.PersonnelAccess != nil {
		if *req.PersonnelAccess != PersonnelDeny && *req.PersonnelAccess != PersonnelAllowWithReason {
			return nil, errBadRequest("personnelAccess must be %s or %s", PersonnelDeny, PersonnelAllowWithReason)
		}
		upd = append(upd, firestore.Update{Path: "personnelAccess", Value: *req.PersonnelAccess})
	}
	if len(upd) > 0 {
		if _, err := s.deps.Firestore.Collection(projectsCollection).Doc(c.project).Update(c.r.Context(), upd); err != nil {
			if notFound(err) {
				return nil, errNotFound("project not found")
			}
			return nil, errUnavailable(err)
		}
	}
	return s.getProject(c)
}

// deleteProject deletes a project with no devices, service accounts or
// data connectors, as DT requires; its audit log stays. A connector left
// behind would deliver the events of a later project of the same id.
func (s *Service) deleteProject(c *call) (any, error) {
	ctx := c.r.Context()
	fs := s.deps.Firestore
	for _, q := range []firestore.Query{
		fs.Collection(registry.DevicesCollection).Where("projectId", "==", c.project).Limit(1),
		fs.Collection(accountsCollection).Where("projectId", "==", c.project).Limit(1),
		fs.Collection(dataconnector.Collection).Where("projectId", "==", c.project).Limit(1),
	} {
		docs, err := q.Documents(ctx).GetAll()
		if err != nil {
			return nil, errUnavailable(err)
		}
		if len(docs) > 0 {
			return nil, errConflict("the project still has devices, service accounts or data connectors")
		}
	}
	members, err := fs.Collection(membersCollection).Where("scope", "==", "projects/"+c.project).Documents(ctx).GetAll()
	if err != nil {
		return nil, errUnavailable(err)
	}
	err = fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		for _, m := range members {
			if err := tx.Delete(m.Ref); err != nil {
				return err
			}
		}
		return tx.Delete(fs.Collection(projectsCollection).Doc(c.project))
	})
	if err != nil {
		return nil, errUnavailable(err)
	}
	s.orgs.forget(c.project)
	return empty{}, nil
}

func (s *Service) listPermissions(c *call) (any, error) {
	return listPermissions{Permissions: append([]string{}, c.p.permissions(c.project, c.org)...)}, nil
}

func (s *Service) store() *Store {
	st := NewStore(s.deps.Firestore, s.deps.Secrets, s.cfg.Domain)
	st.now = func() time.Time { return s.deps.Now().UTC() }
	return st
}
