// Package oidc runs the local OpenID Connect provider people sign in to
// Studio with: zitadel's OpenID-certified provider library, with its
// in-memory storage, one web client and the users given. Local runs and
// tests only; in GCP the issuer is Identity Platform.
package oidc

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"golang.org/x/text/language"
)

// User is a person the provider knows, who signs in with email and
// password.
type User struct {
	Email, Password, Name string
}

// Config is a provider's client and users.
type Config struct {
	// Addr is where it listens, host:port; its issuer is http://Addr.
	Addr string
	// ClientID and ClientSecret are the web client's (Studio's), which may
	// only redirect to RedirectURIs.
	ClientID, ClientSecret string
	RedirectURIs           []string
	Users                  []User
}

// Provider is a running provider.
type Provider struct {
	Issuer string
	srv    *http.Server
	done   chan struct{}
}

// LoginPath is where the provider's sign-in form is, for a browser test
// to recognise it.
const LoginPath = "/login/username"

// Start starts a provider on cfg.Addr.
func Start(cfg Config) (*Provider, error) {
	if cfg.ClientID == "" || cfg.ClientSecret == "" || len(cfg.RedirectURIs) == 0 || len(cfg.Users) == 0 {
		return nil, errors.New("oidc: a client id, secret, redirect URIs and at least one user are required")
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("oidc: %w", err)
	}
	issuer := "http://" + ln.Addr().String()
	clients := map[string]*storage.Client{cfg.ClientID: storage.WebClient(cfg.ClientID, cfg.ClientSecret, cfg.RedirectURIs...)}
	st := storage.NewStorageWithClients(newUsers(cfg.Users), clients)
	p := &Provider{Issuer: issuer, done: make(chan struct{}),
		srv: &http.Server{Handler: exampleop.SetupServer(issuer, st, nil, false), ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		defer close(p.done)
		_ = p.srv.Serve(ln)
	}()
	return p, nil
}

// Close stops the provider.
func (p *Provider) Close() error {
	err := p.srv.Close()
	<-p.done
	return err
}

// users is the provider's user store: the storage package's interface
// over our users, each known by its email as username.
type users struct {
	mu     sync.Mutex
	byName map[string]*storage.User
}

func newUsers(us []User) *users {
	out := &users{byName: map[string]*storage.User{}}
	for _, u := range us {
		out.byName[u.Email] = &storage.User{ID: u.Email, Username: u.Email, Password: u.Password, FirstName: u.Name,
			Email: u.Email, EmailVerified: true, PreferredLanguage: language.English}
	}
	return out
}

func (u *users) GetUserByID(id string) *storage.User { return u.GetUserByUsername(id) }

func (u *users) GetUserByUsername(name string) *storage.User {
	u.mu.Lock()
	defer u.mu.Unlock()
	if x, ok := u.byName[name]; ok {
		c := *x
		return &c
	}
	return nil
}

// ExampleClientID names the storage's built-in service client, which
// Studio never uses.
func (u *users) ExampleClientID() string { return "service" }
