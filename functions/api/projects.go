package api

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sealedsense/sealedsense/functions/api/pagetoken"
	"github.com/sealedsense/sealedsense/shared/store"
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
	Name                    string    `json:"name"`
	DisplayName             string    `json:"displayName"`
	Inventory               bool      `json:"inventory"`
	Organization            string    `json:"organization"`
	OrganizationDisplayName string    `json:"organizationDisplayName"`
	SensorCount             int64     `json:"sensorCount"`
	CloudConnectorCount     int64     `json:"cloudConnectorCount"`
	PersonnelAccess         string    `json:"personnelAccess"`
	CreateTime              time.Time `json:"createTime"`
	// EventRetention is how long events are kept, as seconds ("2592000s");
	// Erasing names the erasure under way (SealedSense extensions).
	EventRetention string `json:"eventRetention"`
	Erasing        string `json:"erasing,omitempty"`
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
	EventRetention  *string `json:"eventRetention,omitempty"`
}

type listRoles struct {
	Roles         []Role `json:"roles"`
	NextPageToken string `json:"nextPageToken"`
}

type listPermissions struct {
	Permissions   []string `json:"permissions"`
	NextPageToken string   `json:"nextPageToken"`
}

func (s *Service) toProject(id string, p store.Project) Project {
	out := Project{Name: "projects/" + id, DisplayName: p.DisplayName, Organization: "organizations/" + p.Organization,
		PersonnelAccess: p.PersonnelAccess, CreateTime: p.CreateTime,
		EventRetention: fmt.Sprintf("%ds", int64(p.EventRetention(s.cfg.EventRetention).Seconds()))}
	if p.Erasing != "" {
		out.Erasing = "projects/" + id + "/erasures/" + p.Erasing
	}
	return out
}

// listOrganizations lists the organizations the caller administers.
func (s *Service) listOrganizations(c *call) (any, error) {
	ids := c.p.orgAdminOf()
	orgs, err := s.db.Organizations(c.r.Context(), ids)
	if err != nil {
		return nil, storeErr(err, "organization")
	}
	out := listOrganizations{Organizations: []Organization{}}
	for _, id := range ids {
		if d, ok := orgs[id]; ok {
			out.Organizations = append(out.Organizations, Organization{Name: "organizations/" + id, DisplayName: d.DisplayName})
		}
	}
	return out, nil
}

func (s *Service) getOrganization(c *call) (any, error) {
	o := c.r.PathValue("organization")
	if !slices.Contains(c.p.orgAdminOf(), o) {
		return nil, errForbidden("missing permission " + permOrgRead + " on organizations/" + o)
	}
	d, err := s.db.Organization(c.r.Context(), o)
	if err != nil {
		return nil, storeErr(err, "organization")
	}
	return Organization{Name: "organizations/" + o, DisplayName: d.DisplayName}, nil
}

func (s *Service) listOrgPermissions(c *call) (any, error) {
	return listPermissions{Permissions: c.p.orgPermissions(c.r.PathValue("organization"))}, nil
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
		ps, err := s.db.OrganizationProjects(c.r.Context(), o)
		if err != nil {
			return nil, errUnavailable(err)
		}
		ids = append(ids, ps...)
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
	scope := c.r.Pattern + "\x00" + org
	start, err := s.offsetAfter(c, scope, ids)
	if err != nil {
		return nil, err
	}
	end := min(len(ids), start+size)
	out := listProjects{Projects: []Project{}}
	if out.Projects, err = s.projects(c, ids[start:end]); err != nil {
		return nil, err
	}
	if end < len(ids) {
		if out.NextPageToken, err = s.pages.seal(c.r.Context(), scope, pagetoken.Cursor{ID: ids[end-1]}); err != nil {
			return nil, errUnavailable(err)
		}
	}
	return out, nil
}

// offsetAfter is where in the sorted ids the page token's listing goes
// on: after the id it ended with.
func (s *Service) offsetAfter(c *call, scope string, ids []string) (int, error) {
	tok := c.r.URL.Query().Get("pageToken")
	if tok == "" {
		return 0, nil
	}
	cur, err := s.pages.open(c.r.Context(), scope, tok)
	if err != nil {
		return 0, err
	}
	start, found := slices.BinarySearch(ids, cur.ID)
	if found {
		start++
	}
	return start, nil
}

// projects reads the projects of ids that exist, in the order of ids,
// with their organizations' names and device counts.
func (s *Service) projects(c *call, ids []string) ([]Project, error) {
	ctx := c.r.Context()
	ps, err := s.db.Projects(ctx, ids)
	if err != nil {
		return nil, storeErr(err, "project")
	}
	var orgIDs []string
	out := []Project{}
	for _, id := range ids {
		if p, ok := ps[id]; ok {
			out = append(out, s.toProject(id, p))
			orgIDs = append(orgIDs, p.Organization)
		}
	}
	slices.Sort(orgIDs)
	orgs, err := s.db.Organizations(ctx, slices.Compact(orgIDs))
	if err != nil {
		return nil, storeErr(err, "organization")
	}
	for i := range out {
		out[i].OrganizationDisplayName = orgs[strings.TrimPrefix(out[i].Organization, "organizations/")].DisplayName
	}
	return out, s.countDevices(ctx, out)
}

// countDevices fills in the projects' sensor and Cloud Connector
// counts, a few projects at a time.
func (s *Service) countDevices(ctx context.Context, ps []Project) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range ps {
		p := &ps[i]
		g.Go(func() (err error) {
			p.SensorCount, p.CloudConnectorCount, err = s.db.ProjectDeviceCounts(ctx, strings.TrimPrefix(p.Name, "projects/"))
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return errUnavailable(err)
	}
	return nil
}

// newProjectOrg checks a project to create and says its organization.
func newProjectOrg(req createProject) (string, error) {
	org := strings.TrimPrefix(req.Organization, "organizations/")
	if org == "" || strings.TrimSpace(req.DisplayName) == "" || len(req.DisplayName) > maxDisplayName {
		return "", errBadRequest("displayName (1 to 200 characters) and organization are required")
	}
	return org, nil
}

func (s *Service) createProject(c *call) (any, error) {
	var req createProject
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	org, err := newProjectOrg(req)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(c.p.orgAdminOf(), org) {
		return nil, errForbidden("missing permission " + permProjectCreate + " on organizations/" + org)
	}
	id, err := s.store().createProject(c.r.Context(), org, "", req.DisplayName)
	if err != nil {
		return nil, err
	}
	c.project, c.org = id, org
	return s.getProject(c)
}

func (s *Service) getProject(c *call) (any, error) {
	ps, err := s.projects(c, []string{c.project})
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, errNotFound("project not found")
	}
	return ps[0], nil
}

// projectUpdate checks a project update and says what it changes.
func projectUpdate(req updateProject) (store.ProjectUpdate, error) {
	if n := req.DisplayName; n != nil && (strings.TrimSpace(*n) == "" || len(*n) > maxDisplayName) {
		return store.ProjectUpdate{}, errBadRequest("displayName must be 1 to 200 characters")
	}
	if a := req.PersonnelAccess; a != nil && *a != PersonnelDeny && *a != PersonnelAllowWithReason {
		return store.ProjectUpdate{}, errBadRequest("personnelAccess must be %s or %s", PersonnelDeny, PersonnelAllowWithReason)
	}
	u := store.ProjectUpdate{DisplayName: req.DisplayName, PersonnelAccess: req.PersonnelAccess}
	if req.EventRetention != nil {
		d, err := parseRetention(*req.EventRetention)
		if err != nil {
			return store.ProjectUpdate{}, err
		}
		u.EventRetention = &d
	}
	return u, nil
}

func (s *Service) updateProject(c *call) (any, error) {
	var req updateProject
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	upd, err := projectUpdate(req)
	if err != nil {
		return nil, err
	}
	if upd.EventRetention != nil {
		// Events stored from now on take the new retention (ingest reads
		// it within a minute); the job rewrites the expiry of the others.
		upd.RetentionJob = &store.DataJob{ProjectID: c.project, Organization: c.org, Kind: store.JobRetention, State: store.JobRunning,
			Actor: c.p.Email, CreateTime: s.deps.Now().UTC(), RetentionSeconds: int64(upd.EventRetention.Seconds()), Counts: map[string]int64{}}
	}
	if err := s.db.UpdateProject(c.r.Context(), c.project, upd); err != nil {
		return nil, storeErr(err, "project")
	}
	return s.getProject(c)
}

// deleteProject deletes a project with no devices, service accounts or
// data connectors, as DT requires; its audit log stays. A connector left
// behind would deliver the events of a later project of the same id.
func (s *Service) deleteProject(c *call) (any, error) {
	ctx := c.r.Context()
	for _, has := range []func(context.Context, string) (bool, error){s.db.ProjectHasDevices, s.db.ProjectHasAccounts, s.projectHasConnectors} {
		in, err := has(ctx, c.project)
		if err != nil {
			return nil, errUnavailable(err)
		}
		if in {
			return nil, errConflict("the project still has devices, service accounts or data connectors")
		}
	}
	if err := s.db.DeleteProject(ctx, c.project); err != nil {
		return nil, errUnavailable(err)
	}
	s.orgs.Remove(c.project)
	return empty{}, nil
}

// projectHasConnectors says whether a project has a data connector.
func (s *Service) projectHasConnectors(ctx context.Context, project string) (bool, error) {
	n, err := s.db.CountDataConnectors(ctx, project, 1)
	return n > 0, err
}

func (s *Service) listPermissions(c *call) (any, error) {
	return listPermissions{Permissions: append([]string{}, c.p.permissions(c.project, c.org)...)}, nil
}

func (s *Service) store() *Store {
	st := NewStore(s.deps.Firestore, s.deps.Secrets, s.cfg.Domain)
	st.now = func() time.Time { return s.deps.Now().UTC() }
	return st
}
