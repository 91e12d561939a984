package api

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/registry"
)

// Collections the API owns. Devices, kits and events belong to the
// registry and ingest; the API reads them and changes only labels and
// project assignment.
const (
	organizationsCollection = "organizations"
	projectsCollection      = "projects"
	membersCollection       = "members"
	accountsCollection      = "serviceAccounts"
	keysCollection          = "serviceAccountKeys"
	auditCollection         = "auditLog"
	eventsCollection        = "events"
)

// Personnel access settings of a project.
const (
	PersonnelDeny            = "DENY"
	PersonnelAllowWithReason = "ALLOW_WITH_REASON"
)

type orgDoc struct {
	DisplayName string    `firestore:"displayName"`
	CreateTime  time.Time `firestore:"createTime"`
}

type projectDoc struct {
	DisplayName     string    `firestore:"displayName"`
	Organization    string    `firestore:"organization"`
	PersonnelAccess string    `firestore:"personnelAccess"`
	CreateTime      time.Time `firestore:"createTime"`
}

type accountDoc struct {
	ProjectID   string    `firestore:"projectId"`
	Email       string    `firestore:"email"`
	DisplayName string    `firestore:"displayName"`
	BasicAuth   bool      `firestore:"enableBasicAuth"`
	Disabled    bool      `firestore:"disabled"`
	CreateTime  time.Time `firestore:"createTime"`
	UpdateTime  time.Time `firestore:"updateTime"`
}

// keyDoc holds a key's secret only KMS-wrapped, with the key id as
// additional data, so a wrapped secret copied to another key does not
// unwrap.
type keyDoc struct {
	Account       string    `firestore:"account"`
	ProjectID     string    `firestore:"projectId"`
	WrappedSecret []byte    `firestore:"wrappedSecret"`
	CreateTime    time.Time `firestore:"createTime"`
}

// memberDoc grants roles on a scope; its id is memberID(scope, account).
type memberDoc struct {
	Scope      string    `firestore:"scope"` // "projects/p" or "organizations/o"
	Account    string    `firestore:"account"`
	Email      string    `firestore:"email"`
	Roles      []string  `firestore:"roles"`
	CreateTime time.Time `firestore:"createTime"`
}

func memberID(scope, account string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(scope)) + "." + account
}

func secretAAD(keyID string) []byte { return []byte("sealedsense/serviceaccount-key/" + keyID) }

func notFound(err error) bool { return status.Code(err) == codes.NotFound }

// newSecret returns a key secret: 32 random bytes, base64url.
func newSecret() (custody.Secret, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return custody.Secret(base64.RawURLEncoding.EncodeToString(b)), nil
}

// Store is the API's Firestore data, shared by the function and the
// operator commands.
type Store struct {
	fs      *firestore.Client
	secrets Wrapper
	domain  string
	now     func() time.Time
}

// NewStore returns a Store; domain makes service-account emails.
func NewStore(fs *firestore.Client, secrets Wrapper, domain string) *Store {
	if domain == "" {
		domain = Config{}.withDefaults().Domain
	}
	return &Store{fs: fs, secrets: secrets, domain: domain, now: func() time.Time { return time.Now().UTC() }}
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
	if _, err := st.fs.Collection(organizationsCollection).Doc(org).Create(ctx, orgDoc{DisplayName: orgName, CreateTime: st.now()}); err != nil {
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
	if err := st.grant(ctx, "organizations/"+org, acc.id, acc.doc.Email, []string{roleOrgAdmin}); err != nil {
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
	_, err := st.fs.Collection(projectsCollection).Doc(id).Create(ctx, projectDoc{
		DisplayName: name, Organization: org, PersonnelAccess: PersonnelDeny, CreateTime: st.now(),
	})
	if status.Code(err) == codes.AlreadyExists {
		return "", errConflict("project exists")
	}
	if err != nil {
		return "", fmt.Errorf("api: create project: %w", err)
	}
	return id, nil
}

type account struct {
	id  string
	doc accountDoc
}

func (st *Store) createAccount(ctx context.Context, project, name string, basic bool) (account, error) {
	id, err := registry.NewID()
	if err != nil {
		return account{}, err
	}
	now := st.now()
	doc := accountDoc{ProjectID: project, Email: id + "@" + project + ".serviceaccount." + st.domain, DisplayName: name, BasicAuth: basic, CreateTime: now, UpdateTime: now}
	if _, err := st.fs.Collection(accountsCollection).Doc(id).Create(ctx, doc); err != nil {
		return account{}, fmt.Errorf("api: create service account: %w", err)
	}
	return account{id: id, doc: doc}, nil
}

func (st *Store) grant(ctx context.Context, scope, acc, email string, rs []string) error {
	_, err := st.fs.Collection(membersCollection).Doc(memberID(scope, acc)).Create(ctx, memberDoc{Scope: scope, Account: acc, Email: email, Roles: rs, CreateTime: st.now()})
	if status.Code(err) == codes.AlreadyExists {
		return errConflict("already a member")
	}
	if err != nil {
		return fmt.Errorf("api: grant: %w", err)
	}
	return nil
}

// createKey makes a key whose secret is returned here, once, and stored
// only wrapped.
func (st *Store) createKey(ctx context.Context, acc string, a accountDoc, tokenURL string) (credentials.ServiceAccount, keyDoc, error) {
	id, err := registry.NewID()
	if err != nil {
		return credentials.ServiceAccount{}, keyDoc{}, err
	}
	secret, err := newSecret()
	if err != nil {
		return credentials.ServiceAccount{}, keyDoc{}, err
	}
	wrapped, err := st.secrets.Wrap(ctx, secret, secretAAD(id))
	if err != nil {
		return credentials.ServiceAccount{}, keyDoc{}, errUnavailable(err)
	}
	doc := keyDoc{Account: acc, ProjectID: a.ProjectID, WrappedSecret: wrapped, CreateTime: st.now()}
	if _, err := st.fs.Collection(keysCollection).Doc(id).Create(ctx, doc); err != nil {
		return credentials.ServiceAccount{}, keyDoc{}, fmt.Errorf("api: create key: %w", err)
	}
	return credentials.ServiceAccount{KeyID: id, Secret: string(secret), Email: a.Email, Algorithm: "HS256", TokenEndpoint: tokenURL}, doc, nil
}

// getDoc reads one document into a T; a missing one is errNotFound(what),
// and any other failure is the caller's to retry.
func getDoc[T any](ctx context.Context, ref *firestore.DocumentRef, what string) (T, error) {
	var v T
	snap, err := ref.Get(ctx)
	if notFound(err) {
		return v, errNotFound(what + " not found")
	}
	if err != nil {
		return v, errUnavailable(err)
	}
	if err := snap.DataTo(&v); err != nil {
		return v, fmt.Errorf("api: %s %s: %w", what, ref.ID, err)
	}
	return v, nil
}

// eachDoc reads documents of a collection by id in one round trip and calls
// f for each that exists, in the order given.
func eachDoc[T any](ctx context.Context, fs *firestore.Client, collection string, ids []string, f func(id string, v T)) error {
	refs := make([]*firestore.DocumentRef, len(ids))
	for i, id := range ids {
		refs[i] = fs.Collection(collection).Doc(id)
	}
	snaps, err := fs.GetAll(ctx, refs)
	if err != nil {
		return errUnavailable(err)
	}
	for _, snap := range snaps {
		if !snap.Exists() {
			continue
		}
		var v T
		if err := snap.DataTo(&v); err != nil {
			return fmt.Errorf("api: %s/%s: %w", collection, snap.Ref.ID, err)
		}
		f(snap.Ref.ID, v)
	}
	return nil
}
