package api

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/sealedsense/sealedsense/shared/store"
)

// Member is DT's member resource: a service account or a person.
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

// toMember is a grant as DT's member resource, named under its scope
// ("projects/p" or "organizations/o").
func toMember(m store.Member) Member {
	kind := actorServiceAccount
	if m.Type == store.MemberUser {
		kind = actorUser
	}
	return Member{Name: m.Scope + "/members/" + m.Account, DisplayName: m.Email, Roles: m.Roles,
		Status: "ACCEPTED", Email: m.Email, AccountType: kind, CreateTime: m.CreateTime}
}

// memberScope is the scope a members route works on: the path's
// organization, or else its project.
func (c *call) memberScope() string {
	if o := c.r.PathValue("organization"); o != "" {
		return store.OrganizationScope(o)
	}
	return store.ProjectScope(c.project)
}

// checkRoles checks the roles of a grant on scope (pure): one project
// role on a project, the organization admin role on an organization.
func checkRoles(scope string, rs []string) error {
	if strings.HasPrefix(scope, "organizations/") {
		if len(rs) != 1 || rs[0] != roleOrgAdmin {
			return errBadRequest("roles must be %s", roleOrgAdmin)
		}
		return nil
	}
	if len(rs) != 1 || !projectRole(rs[0]) {
		return errBadRequest("roles must be one of %s, %s, %s", roleUser, roleDeveloper, roleAdmin)
	}
	return nil
}

func (s *Service) listMembers(c *call) (any, error) {
	docs, next, err := c.page(s.db.ScopeMembers(c.memberScope()), ordering{}, "")
	if err != nil {
		return nil, err
	}
	out := listMembers{Members: []Member{}, NextPageToken: next}
	err = eachSnap(docs, func(_ string, m store.Member) { out.Members = append(out.Members, toMember(m)) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// createMember grants a role, named by email, to a service account of the
// same organization or to a person, who may sign in to Studio later.
func (s *Service) createMember(c *call) (any, error) {
	var req createMember
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	scope := c.memberScope()
	if err := checkRoles(scope, req.Roles); err != nil {
		return nil, err
	}
	acc, email, kind, err := s.memberOf(c, req.Email)
	if err != nil {
		return nil, err
	}
	m := store.Member{Scope: scope, Account: acc, Email: email, Roles: req.Roles, CreateTime: s.deps.Now().UTC(), Type: kind}
	if err := s.store().grant(c.r.Context(), m); err != nil {
		return nil, err
	}
	return toMember(m), nil
}

// orgAccount finds the service account with an email in the caller's
// organization. One of another organization is answered as unknown, so
// that emails cannot be probed across organizations.
func (s *Service) orgAccount(c *call, email string) (string, store.Account, error) {
	id, a, err := s.db.AccountByEmail(c.r.Context(), email)
	if notFound(err) {
		return "", store.Account{}, errNotFound("no service account with that email")
	}
	if err != nil {
		return "", store.Account{}, storeErr(err, "service account")
	}
	if org, err := s.projectOrg(c.r.Context(), a.ProjectID); err != nil {
		return "", store.Account{}, err
	} else if org != c.org {
		return "", store.Account{}, errNotFound("no service account with that email")
	}
	return id, a, nil
}

func (s *Service) getMember(c *call) (any, error) {
	m, err := s.db.Member(c.r.Context(), c.memberScope(), c.r.PathValue("member"))
	if err != nil {
		return nil, storeErr(err, "member")
	}
	return toMember(m), nil
}

func (s *Service) updateMember(c *call) (any, error) {
	var req updateMember
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	if err := checkRoles(c.memberScope(), req.Roles); err != nil {
		return nil, err
	}
	if err := s.db.SetMemberRoles(c.r.Context(), c.memberScope(), c.r.PathValue("member"), req.Roles); err != nil {
		return nil, storeErr(err, "member")
	}
	return s.getMember(c)
}

// deleteMember removes a grant. The last admin of an organization stays:
// without one, no one could manage the organization again.
func (s *Service) deleteMember(c *call) (any, error) {
	scope, acc := c.memberScope(), c.r.PathValue("member")
	del := s.db.DeleteMember
	if strings.HasPrefix(scope, "organizations/") {
		del = s.db.DeleteMemberNotLast
	}
	err := del(c.r.Context(), scope, acc)
	if errors.Is(err, store.ErrLastMember) {
		return nil, errConflict("the organization's last admin cannot be removed")
	}
	if err != nil {
		return nil, storeErr(err, "member")
	}
	return empty{}, nil
}

func toAccount(project, id string, a store.Account) ServiceAccount {
	return ServiceAccount{Name: "projects/" + project + "/serviceaccounts/" + id, Email: a.Email, DisplayName: a.DisplayName,
		EnableBasicAuth: a.BasicAuth, Disabled: a.Disabled, CreateTime: a.CreateTime, UpdateTime: a.UpdateTime}
}

func (s *Service) listAccounts(c *call) (any, error) {
	docs, next, err := c.page(s.db.ProjectAccounts(c.project), ordering{}, "")
	if err != nil {
		return nil, err
	}
	out := listAccounts{ServiceAccounts: []ServiceAccount{}, NextPageToken: next}
	err = eachSnap(docs, func(id string, a store.Account) {
		out.ServiceAccounts = append(out.ServiceAccounts, toAccount(c.project, id, a))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// maxDisplayName bounds the display names of accounts and projects.
const maxDisplayName = 200

func (s *Service) createAccount(c *call) (any, error) {
	var req createAccount
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	if len(req.DisplayName) > maxDisplayName {
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
func (s *Service) account(c *call) (string, store.Account, error) {
	id := c.r.PathValue("account")
	a, err := s.db.Account(c.r.Context(), id)
	if err != nil {
		return "", store.Account{}, storeErr(err, "service account")
	}
	if a.ProjectID != c.project {
		return "", store.Account{}, errNotFound("service account not found")
	}
	return id, a, nil
}

// manageable reads the path's account and checks that the caller holds,
// wherever the account has a grant, the right to manage accounts there: a
// project admin must not mint a key for, disable or delete an account that
// is an organization admin, or an admin of a project the caller is not.
func (s *Service) manageable(c *call) (string, store.Account, error) {
	id, a, err := s.account(c)
	if err != nil {
		return "", store.Account{}, err
	}
	grants, err := s.db.AccountMembers(c.r.Context(), id)
	if err != nil {
		return "", store.Account{}, storeErr(err, "grants")
	}
	for _, g := range grants {
		if err := s.mayManageIn(c, g.Scope); err != nil {
			return "", store.Account{}, err
		}
	}
	return id, a, nil
}

// mayManageIn checks that the caller may manage accounts in a grant's
// scope.
func (s *Service) mayManageIn(c *call, scope string) error {
	if o, ok := strings.CutPrefix(scope, "organizations/"); ok {
		if !slices.Contains(c.p.orgAdminOf(), o) {
			return errForbidden("the account is an organization admin; only an organization admin may manage it")
		}
		return nil
	}
	p := strings.TrimPrefix(scope, "projects/")
	org, err := s.projectOrg(c.r.Context(), p)
	if err != nil {
		return err
	}
	if !c.p.can(permAccountWrite, p, org) {
		return errForbidden("the account has roles in projects/" + p + ", where the caller may not manage accounts")
	}
	return nil
}

func (s *Service) getAccount(c *call) (any, error) {
	id, a, err := s.account(c)
	if err != nil {
		return nil, err
	}
	return toAccount(c.project, id, a), nil
}

// accountUpdate checks a service-account update and says what it changes.
func accountUpdate(req updateAccount, now time.Time) (store.AccountUpdate, error) {
	if req.DisplayName != nil && len(*req.DisplayName) > maxDisplayName {
		return store.AccountUpdate{}, errBadRequest("displayName must be at most 200 characters")
	}
	return store.AccountUpdate{UpdateTime: now, DisplayName: req.DisplayName, BasicAuth: req.EnableBasicAuth, Disabled: req.Disabled}, nil
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
	upd, err := accountUpdate(req, s.deps.Now().UTC())
	if err != nil {
		return nil, err
	}
	if err := s.db.UpdateAccount(c.r.Context(), id, upd); err != nil {
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
	keys, err := s.db.DeleteAccount(c.r.Context(), id)
	if err != nil {
		return nil, errUnavailable(err)
	}
	// As deleteKey does: this instance stops honouring them at once.
	for _, k := range keys {
		s.principals.Remove(k)
	}
	return empty{}, nil
}

func toKey(project, account, id string, k store.Key) Key {
	return Key{Name: "projects/" + project + "/serviceaccounts/" + account + "/keys/" + id, ID: id, CreateTime: k.CreateTime}
}

func (s *Service) listKeys(c *call) (any, error) {
	acc, _, err := s.account(c)
	if err != nil {
		return nil, err
	}
	docs, next, err := c.page(s.db.AccountKeys(acc), ordering{}, "")
	if err != nil {
		return nil, err
	}
	out := listKeys{Keys: []Key{}, NextPageToken: next}
	err = eachSnap(docs, func(id string, k store.Key) { out.Keys = append(out.Keys, toKey(c.project, acc, id, k)) })
	if err != nil {
		return nil, err
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
func (s *Service) key(c *call, acc string) (string, store.Key, error) {
	id := c.r.PathValue("key")
	k, err := s.db.Key(c.r.Context(), id)
	if err != nil {
		return "", store.Key{}, storeErr(err, "key")
	}
	if k.Account != acc {
		return "", store.Key{}, errNotFound("key not found")
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
	if err := s.db.DeleteKey(c.r.Context(), id); err != nil {
		return nil, errUnavailable(err)
	}
	// This instance stops honouring the key at once; others within AccessTTL.
	s.principals.Remove(id)
	return empty{}, nil
}
