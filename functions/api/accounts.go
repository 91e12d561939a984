package api

import (
	"context"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/firestore"
)

// Member is DT's member resource; members here are service accounts.
type Member struct {
	Name        string    `json:"name"`
	DisplayName string    `json:"displayName"`
	Roles       []string  `json:"roles"`
	Status      string    `json:"status"`
	Email       string    `json:"email"`
	AccountType string    `json:"accountType"`
	CreateTime  time.Time `json:"createTime"`
}

type listMembers struct {
	Members       []Member `json:"members"`
	NextPageToken string   `json:"nextPageToken"`
}

type createMember struct {
	Roles []string `json:"roles"`
	Email string   `json:"email"`
}

type updateMember struct {
	Roles []string `json:"roles"`
}

// ServiceAccount is DT's service account resource, with disabled as our
// extension.
type ServiceAccount struct {
	Name            string    `json:"name"`
	Email           string    `json:"email"`
	DisplayName     string    `json:"displayName"`
	EnableBasicAuth bool      `json:"enableBasicAuth"`
	Disabled        bool      `json:"disabled"`
	CreateTime      time.Time `json:"createTime"`
	UpdateTime      time.Time `json:"updateTime"`
}

type listAccounts struct {
	ServiceAccounts []ServiceAccount `json:"serviceAccounts"`
	NextPageToken   string           `json:"nextPageToken"`
}

type createAccount struct {
	DisplayName     string `json:"displayName"`
	EnableBasicAuth bool   `json:"enableBasicAuth"`
}

type updateAccount struct {
	DisplayName     *string `json:"displayName,omitempty"`
	EnableBasicAuth *bool   `json:"enableBasicAuth,omitempty"`
	Disabled        *bool   `json:"disabled,omitempty"`
}

// Key is DT's key resource; its secret is never part of it.
type Key struct {
	Name       string    `json:"name"`
	ID         string    `json:"id"`
	CreateTime time.Time `json:"createTime"`
}

type listKeys struct {
	Keys          []Key  `json:"keys"`
	NextPageToken string `json:"nextPageToken"`
}

type createdKey struct {
	Key    Key    `json:"key"`
	Secret string `json:"secret"`
}

func toMember(project string, m memberDoc) Member {
	return Member{Name: "projects/" + project + "/members/" + m.Account, DisplayName: m.Email, Roles: m.Roles,
		Status: "ACCEPTED", Email: m.Email, AccountType: "SERVICE_ACCOUNT", CreateTime: m.CreateTime}
}

func checkRoles(rs []string) error {
	if len(rs) != 1 || !projectRole(rs[0]) {
		return errBadRequest("roles must be one of %s, %s, %s", roleUser, roleDeveloper, roleAdmin)
	}
	return nil
}

func (s *Service) listMembers(c *call) (any, error) {
	q := s.deps.Firestore.Collection(membersCollection).Where("scope", "==", "projects/"+c.project).OrderBy(firestore.DocumentID, firestore.Asc)
	docs, next, err := c.page(q, ordering{}, "")
	if err != nil {
		return nil, err
	}
	out := listMembers{Members: []Member{}, NextPageToken: next}
	for _, d := range docs {
		var m memberDoc
		if err := d.DataTo(&m); err != nil {
			return nil, err
		}
		out.Members = append(out.Members, toMember(c.project, m))
	}
	return out, nil
}

// createMember grants a role to a service account of the same
// organization, named by email.
func (s *Service) createMember(c *call) (any, error) {
	var req createMember
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	if err := checkRoles(req.Roles); err != nil {
		return nil, err
	}
	ctx := c.r.Context()
	docs, err := s.deps.Firestore.Collection(accountsCollection).Where("email", "==", req.Email).Limit(1).Documents(ctx).GetAll()
	if err != nil {
		return nil, errUnavailable(err)
	}
	if len(docs) == 0 {
		return nil, errNotFound("no service account with that email")
	}
	var a accountDoc
	if err := docs[0].DataTo(&a); err != nil {
		return nil, err
	}
	// An account of another organization is answered as unknown, so that
	// emails cannot be probed across organizations.
	if org, err := s.projectOrg(ctx, a.ProjectID); err != nil {
		return nil, err
	} else if org != c.org {
		return nil, errNotFound("no service account with that email")
	}
	m := memberDoc{Scope: "projects/" + c.project, Account: docs[0].Ref.ID, Email: a.Email, Roles: req.Roles, CreateTime: s.deps.Now().UTC()}
	if err := s.store().grant(ctx, m.Scope, m.Account, m.Email, m.Roles); err != nil {
		return nil, err
	}
	return toMember(c.project, m), nil
}

func (s *Service) memberRef(c *call) *firestore.DocumentRef {
	return s.deps.Firestore.Collection(membersCollection).Doc(memberID("projects/"+c.project, c.r.PathValue("member")))
}

func (s *Service) getMember(c *call) (any, error) {
	m, err := getDoc[memberDoc](c.r.Context(), s.memberRef(c), "member")
	if err != nil {
		return nil, err
	}
	return toMember(c.project, m), nil
}

func (s *Service) updateMember(c *call) (any, error) {
	var req updateMember
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	if err := checkRoles(req.Roles); err != nil {
		return nil, err
	}
	if _, err := s.memberRef(c).Update(c.r.Context(), []firestore.Update{{Path: "roles", Value: req.Roles}}); err != nil {
		if notFound(err) {
			return nil, errNotFound("member not found")
		}
		return nil, errUnavailable(err)
	}
	return s.getMember(c)
}

func (s *Service) deleteMember(c *call) (any, error) {
	_, err := s.memberRef(c).Delete(c.r.Context(), firestore.Exists)
	if notFound(err) {
		return nil, errNotFound("member not found")
	}
	if err != nil {
		return nil, errUnavailable(err)
	}
	return empty{}, nil
}

func toAccount(project, id string, a accountDoc) ServiceAccount {
	return ServiceAccount{Name: "projects/" + project + "/serviceaccounts/" + id, Email: a.Email, DisplayName: a.DisplayName,
		EnableBasicAuth: a.BasicAuth, Disabled: a.Disabled, CreateTime: a.CreateTime, UpdateTime: a.UpdateTime}
}

func (s *Service) listAccounts(c *call) (any, error) {
	q := s.deps.Firestore.Collection(accountsCollection).Where("projectId", "==", c.project).OrderBy(firestore.DocumentID, firestore.Asc)
	docs, next, err := c.page(q, ordering{}, "")
	if err != nil {
		return nil, err
	}
	out := listAccounts{ServiceAccounts: []ServiceAccount{}, NextPageToken: next}
	for _, d := range docs {
		var a accountDoc
		if err := d.DataTo(&a); err != nil {
			return nil, err
		}
		out.ServiceAccounts = append(out.ServiceAccounts, toAccount(c.project, d.Ref.ID, a))
	}
	return out, nil
}

func (s *Service) createAccount(c *call) (any, error) {
	var req createAccount
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	if len(req.DisplayName) > 200 {
		return nil, errBadRequest("displayName must be at most 200 characters")
	}
	a, err := s.store().createAccount(c.r.Context(), c.project, req.DisplayName, req.EnableBasicAuth)
	if err != nil {
		return nil, err
	}
	return toAccount(c.project, a.id, a.doc), nil
}

// account reads the path's service account, which must belong to the
// path's project.
func (s *Service) account(c *call) (string, accountDoc, error) {
	id := c.r.PathValue("account")
	a, err := getDoc[accountDoc](c.r.Context(), s.deps.Firestore.Collection(accountsCollection).Doc(id), "service account")
	if err != nil {
		return "", accountDoc{}, err
	}
	if a.ProjectID != c.project {
		return "", accountDoc{}, errNotFound("service account not found")
	}
	return id, a, nil
}

// manageable reads the path's account and checks that the caller holds,
// wherever the account has a grant, the right to manage accounts there: a
// project admin must not mint a key for, disable or delete an account that
// is an organization admin, or an admin of a project the caller is not.
func (s *Service) manageable(c *call) (string, accountDoc, error) {
	id, a, err := s.account(c)
	if err != nil {
		return "", accountDoc{}, err
	}
	grants, err := s.deps.Firestore.Collection(membersCollection).Where("account", "==", id).Documents(c.r.Context()).GetAll()
	if err != nil {
		return "", accountDoc{}, errUnavailable(err)
	}
	for _, g := range grants {
		scope, _ := g.Data()["scope"].(string)
		if o, ok := strings.CutPrefix(scope, "organizations/"); ok {
			if !slices.Contains(c.p.orgAdminOf(), o) {
				return "", accountDoc{}, errForbidden("the account is an organization admin; only an organization admin may manage it")
			}
			continue
		}
		p := strings.TrimPrefix(scope, "projects/")
		org, err := s.projectOrg(c.r.Context(), p)
		if err != nil {
			return "", accountDoc{}, err
		}
		if !c.p.can(permAccountWrite, p, org) {
			return "", accountDoc{}, errForbidden("the account has roles in projects/" + p + ", where the caller may not manage accounts")
		}
	}
	return id, a, nil
}

func (s *Service) getAccount(c *call) (any, error) {
	id, a, err := s.account(c)
	if err != nil {
		return nil, err
	}
	return toAccount(c.project, id, a), nil
}

func (s *Service) updateAccount(c *call) (any, error) {
	var req updateAccount
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	id, _, err := s.manageable(c)
	if err != nil {
		return nil, err
	}
	upd := []firestore.Update{{Path: "updateTime", Value: s.deps.Now().UTC()}}
	if req.DisplayName != nil {
		if len(*req.DisplayName) > 200 {
			return nil, errBadRequest("displayName must be at most 200 characters")
		}
		upd = append(upd, firestore.Update{Path: "displayName", Value: *req.DisplayName})
	}
	if req.EnableBasicAuth != nil {
		upd = append(upd, firestore.Update{Path: "enableBasicAuth", Value: *req.EnableBasicAuth})
	}
	if req.Disabled != nil {
		upd = append(upd, firestore.Update{Path: "disabled", Value: *req.Disabled})
	}
	if _, err := s.deps.Firestore.Collection(accountsCollection).Doc(id).Update(c.r.Context(), upd); err != nil {
		return nil, errUnavailable(err)
	}
	return s.getAccount(c)
}

// deleteAccount deletes the account with its keys and memberships in one
// transaction, so no key outlives its account.
func (s *Service) deleteAccount(c *call) (any, error) {
	id, _, err := s.manageable(c)
	if err != nil {
		return nil, err
	}
	if id == c.p.Account {
		return nil, errConflict("an account cannot delete itself")
	}
	ctx := c.r.Context()
	fs := s.deps.Firestore
	keys, err := fs.Collection(keysCollection).Where("account", "==", id).Documents(ctx).GetAll()
	if err != nil {
		return nil, errUnavailable(err)
	}
	members, err := fs.Collection(membersCollection).Where("account", "==", id).Documents(ctx).GetAll()
	if err != nil {
		return nil, errUnavailable(err)
	}
	err = fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		for _, d := range append(keys, members...) {
			if err := tx.Delete(d.Ref); err != nil {
				return err
			}
		}
		return tx.Delete(fs.Collection(accountsCollection).Doc(id))
	})
	if err != nil {
		return nil, errUnavailable(err)
	}
	// As deleteKey does: this instance stops honouring them at once.
	for _, k := range keys {
		s.principals.forget(k.Ref.ID)
	}
	return empty{}, nil
}

func toKey(project, account, id string, k keyDoc) Key {
	return Key{Name: "projects/" + project + "/serviceaccounts/" + account + "/keys/" + id, ID: id, CreateTime: k.CreateTime}
}

func (s *Service) listKeys(c *call) (any, error) {
	acc, _, err := s.account(c)
	if err != nil {
		return nil, err
	}
	q := s.deps.Firestore.Collection(keysCollection).Where("account", "==", acc).OrderBy(firestore.DocumentID, firestore.Asc)
	docs, next, err := c.page(q, ordering{}, "")
	if err != nil {
		return nil, err
	}
	out := listKeys{Keys: []Key{}, NextPageToken: next}
	for _, d := range docs {
		var k keyDoc
		if err := d.DataTo(&k); err != nil {
			return nil, err
		}
		out.Keys = append(out.Keys, toKey(c.project, acc, d.Ref.ID, k))
	}
	return out, nil
}

func (s *Service) createKey(c *call) (any, error) {
	acc, a, err := s.manageable(c)
	if err != nil {
		return nil, err
	}
	creds, k, err := s.store().createKey(c.r.Context(), acc, a, s.cfg.TokenURL())
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(c.r.Pattern, ":createCredentialsFile") {
		c.w.Header().Set("Content-Disposition", `attachment; filename="sealedsense-credentials.json"`)
		return creds, nil
	}
	return createdKey{Key: toKey(c.project, acc, creds.KeyID, k), Secret: creds.Secret}, nil
}

// key reads the path's key, which must belong to account acc, read by the
// caller with the checks its route needs.
func (s *Service) key(c *call, acc string) (string, keyDoc, error) {
	id := c.r.PathValue("key")
	k, err := getDoc[keyDoc](c.r.Context(), s.deps.Firestore.Collection(keysCollection).Doc(id), "key")
	if err != nil {
		return "", keyDoc{}, err
	}
	if k.Account != acc {
		return "", keyDoc{}, errNotFound("key not found")
	}
	return id, k, nil
}

func (s *Service) getKey(c *call) (any, error) {
	acc, _, err := s.account(c)
	if err != nil {
		return nil, err
	}
	id, k, err := s.key(c, acc)
	if err != nil {
		return nil, err
	}
	return toKey(c.project, k.Account, id, k), nil
}

func (s *Service) deleteKey(c *call) (any, error) {
	acc, _, err := s.manageable(c)
	if err != nil {
		return nil, err
	}
	id, _, err := s.key(c, acc)
	if err != nil {
		return nil, err
	}
	if _, err := s.deps.Firestore.Collection(keysCollection).Doc(id).Delete(c.r.Context()); err != nil {
		return nil, errUnavailable(err)
	}
	// This instance stops honouring the key at once; others within AccessTTL.
	s.principals.forget(id)
	return empty{}, nil
}
