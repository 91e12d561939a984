package api

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/status"

	"github.com/sealedsense/sealedsense/shared/apikey"
	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/registry"
	"github.com/sealedsense/sealedsense/shared/store"
)

// Personnel access settings of a project.
const (
	PersonnelDeny            = "DENY"
	PersonnelAllowWithReason = "ALLOW_WITH_REASON"
)

// notFound says whether err is a missing document.
func notFound(err error) bool { return store.IsNotFound(err) }

// storeErr is what a caller sees of a failed store call: a missing
// document is errNotFound(what + " not found"), an apiError passes, a
// document that does not decode is internal, and Firestore failing is
// unavailable, to retry.
func storeErr(err error, what string) error {
	var ae *apiError
	switch {
	case err == nil:
		return nil
	case store.IsNotFound(err):
		return errNotFound(what + " not found")
	case errors.As(err, &ae):
		return err
	case undecodable(err):
		return err
	}
	return errUnavailable(err)
}

// undecodable says whether err is neither Firestore's nor the context's:
// a stored document that does not fit its struct.
func undecodable(err error) bool {
	_, fromFirestore := status.FromError(err)
	return !fromFirestore && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// newSecret returns a key secret: 32 random bytes, base64url.
func newSecret() (custody.Secret, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return custody.Secret(base64.RawURLEncoding.EncodeToString(b)), nil
}

// Store is the API's operator facade over the data model, shared by the
// function and the operator commands: what needs the API's rules (ids,
// emails, wrapped secrets) on top of shared/store.
type Store struct {
	db      *store.DB
	secrets Wrapper
	domain  string
	now     func() time.Time
}

// NewStore returns a Store; domain makes service-account emails.
func NewStore(fs *firestore.Client, secrets Wrapper, domain string) *Store {
	if domain == "" {
		domain = Config{}.withDefaults().Domain
	}
	return &Store{db: store.New(fs), secrets: secrets, domain: domain, now: func() time.Time { return time.Now().UTC() }}
}

// Tenant is what Bootstrap made.
type Tenant struct {
	Organization, Project, Account string
	Credentials                    credentials.ServiceAccount
}

// Bootstrap creates an organization with one project and an organization
// admin service account with one key: the operator's way to hand a new
// customer its first credentials. projectID may be empty for a random id.
func (st *Store) Bootstrap(ctx context.Context, orgName, projectID, projectName, tokenURL string) (Tenant, error) {
	org, err := registry.NewID()
	if err != nil {
		return Tenant{}, err
	}
	if err := st.db.CreateOrganization(ctx, org, store.Organization{DisplayName: orgName, CreateTime: st.now()}); err != nil {
		return Tenant{}, fmt.Errorf("api: bootstrap: %w", err)
	}
	p, err := st.createProject(ctx, org, projectID, projectName)
	if err != nil {
		return Tenant{}, err
	}
	acc, err := st.createAccount(ctx, p, "Organization admin", false)
	if err != nil {
		return Tenant{}, err
	}
	if err := st.grant(ctx, store.Member{Scope: store.OrganizationScope(org), Account: acc.id, Email: acc.doc.Email, Roles: []string{roleOrgAdmin}}); err != nil {
		return Tenant{}, err
	}
	creds, _, err := st.createKey(ctx, acc.id, acc.doc, tokenURL)
	if err != nil {
		return Tenant{}, err
	}
	return Tenant{Organization: org, Project: p, Account: acc.id, Credentials: creds}, nil
}

// createProject makes a project; id may be given (for sensors made to a
// known project id) or empty for a random one.
func (st *Store) createProject(ctx context.Context, org, id, name string) (string, error) {
	if id == "" {
		var err error
		if id, err = registry.NewID(); err != nil {
			return "", err
		}
	}
	err := st.db.CreateProject(ctx, id, store.Project{DisplayName: name, Organization: org, PersonnelAccess: PersonnelDeny, CreateTime: st.now()})
	if store.IsExists(err) {
		return "", errConflict("project exists")
	}
	if err != nil {
		return "", fmt.Errorf("api: create project: %w", err)
	}
	return id, nil
}

type account struct {
	id  string
	doc store.Account
}

func (st *Store) createAccount(ctx context.Context, project, name string, basic bool) (account, error) {
	id, err := registry.NewID()
	if err != nil {
		return account{}, err
	}
	now := st.now()
	doc := store.Account{ProjectID: project, Email: id + "@" + project + ".serviceaccount." + st.domain, DisplayName: name, BasicAuth: basic, CreateTime: now, UpdateTime: now}
	if err := st.db.CreateAccount(ctx, id, doc); err != nil {
		return account{}, fmt.Errorf("api: create service account: %w", err)
	}
	return account{id: id, doc: doc}, nil
}

func (st *Store) grant(ctx context.Context, m store.Member) error {
	if m.CreateTime.IsZero() {
		m.CreateTime = st.now()
	}
	if m.Type == "" {
		m.Type = store.MemberServiceAccount
	}
	err := st.db.Grant(ctx, m)
	if store.IsExists(err) {
		return errConflict("already a member")
	}
	if err != nil {
		return fmt.Errorf("api: grant: %w", err)
	}
	return nil
}

// GrantPerson makes the person with email an organization admin, as
// operators do for a customer's first person (who then adds the others
// in Studio).
func (st *Store) GrantPerson(ctx context.Context, org, email string) error {
	e, err := normalEmail(email)
	if err != nil {
		return fmt.Errorf("api: grant person: %w", err)
	}
	return st.grant(ctx, store.Member{Scope: store.OrganizationScope(org), Account: userAccount(e), Email: e, Roles: []string{roleOrgAdmin}, Type: store.MemberUser})
}

// createKey makes a key whose secret is returned here, once, and stored
// only wrapped.
func (st *Store) createKey(ctx context.Context, acc string, a store.Account, tokenURL string) (credentials.ServiceAccount, store.Key, error) {
	id, err := registry.NewID()
	if err != nil {
		return credentials.ServiceAccount{}, store.Key{}, err
	}
	secret, err := newSecret()
	if err != nil {
		return credentials.ServiceAccount{}, store.Key{}, err
	}
	wrapped, err := st.secrets.Wrap(ctx, secret, apikey.SecretAAD(id, acc))
	if err != nil {
		return credentials.ServiceAccount{}, store.Key{}, errUnavailable(err)
	}
	k := store.Key{Account: acc, ProjectID: a.ProjectID, WrappedSecret: wrapped, CreateTime: st.now(), AccountBound: true}
	if err := st.db.CreateKey(ctx, id, k); err != nil {
		return credentials.ServiceAccount{}, store.Key{}, fmt.Errorf("api: create key: %w", err)
	}
	return credentials.ServiceAccount{KeyID: id, Secret: string(secret), Email: a.Email, Algorithm: "HS256", TokenEndpoint: tokenURL}, k, nil
}
