// Package studio serves Studio, the web console: its pages, the sign-in
// of people through OpenID Connect, their server-side sessions, and the
// API on their behalf. The browser holds only an HttpOnly session cookie
// and a CSRF token; it never sees an access token or a key.
package studio

import (
	"embed"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"cloud.google.com/go/firestore"
	"golang.org/x/time/rate"

	"github.com/sealedsense/sealedsense/shared/store"
)

// Prefix is the path Studio answers under, locally beside the API and in
// GCP on its own service.
const Prefix = "/studio"

// contentSecurityPolicy allows the page nothing from elsewhere and no
// inline script or style: an injected tag can neither run nor load.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

//go:embed web
var web embed.FS

// API is the API, served in-process for a signed-in person.
type API interface {
	ServeUser(w http.ResponseWriter, r *http.Request, email string)
}

// Config is Studio's.
type Config struct {
	// BaseURL is Studio's public address, ending in Prefix; the identity
	// provider sends people back to BaseURL + "/callback".
	BaseURL string
	// Issuer, ClientID and ClientSecret are Studio's OpenID Connect
	// client at the identity provider.
	Issuer, ClientID, ClientSecret string
	// Sessions end after Idle without use, and Absolute after sign-in.
	Idle, Absolute time.Duration
}

// signInConfigured says whether people can sign in (pure).
func (c Config) signInConfigured() bool {
	return c.Issuer != "" && c.ClientID != "" && c.ClientSecret != ""
}

func (c Config) withDefaults() Config {
	if c.Idle == 0 {
		c.Idle = 30 * time.Minute
	}
	if c.Absolute == 0 {
		c.Absolute = 12 * time.Hour
	}
	c.BaseURL = strings.TrimSuffix(c.BaseURL, "/")
	return c
}

// Deps are what Studio uses.
type Deps struct {
	Firestore *firestore.Client
	API       API
	// HTTPClient reaches the identity provider; nil is the default.
	HTTPClient *http.Client
	Logger     *slog.Logger
	Now        func() time.Time
}

// Server serves Studio.
type Server struct {
	cfg    Config
	deps   Deps
	db     *store.DB
	log    *slog.Logger
	limits store.SessionLimits
	oidc   *provider
	mux    *http.ServeMux
	// logins bounds the sign-ins an instance starts: each is a Firestore
	// write anyone on the internet can cause.
	logins *rate.Limiter
}

// New returns a Server.
func New(cfg Config, deps Deps) *Server {
	cfg = cfg.withDefaults()
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.HTTPClient == nil {
		deps.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	s := &Server{cfg: cfg, deps: deps, db: store.New(deps.Firestore), log: deps.Logger,
		limits: store.SessionLimits{Idle: cfg.Idle, Absolute: cfg.Absolute}, logins: rate.NewLimiter(20, 200)}
	s.oidc = newProvider(cfg, deps.HTTPClient)
	assets, _ := fs.Sub(web, "web")
	s.mux = http.NewServeMux()
	s.mux.Handle("GET "+Prefix+"/{$}", s.page(assets))
	s.mux.Handle("GET "+Prefix+"/assets/", http.StripPrefix(Prefix+"/assets/", http.FileServerFS(assets)))
	s.mux.HandleFunc("GET "+Prefix+"/login", s.login)
	s.mux.HandleFunc("GET "+Prefix+"/callback", s.callback)
	s.mux.HandleFunc("GET "+Prefix+"/session", s.withSession(s.whoami))
	s.mux.HandleFunc("POST "+Prefix+"/logout", s.withSession(s.logout))
	s.mux.Handle(Prefix+"/api/", s.withSession(s.api))
	s.mux.HandleFunc("GET "+Prefix, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix+"/", http.StatusFound)
	})
	return s
}

// ServeHTTP answers one request, with the headers every answer carries.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if !strings.HasPrefix(r.URL.Path, Prefix+"/assets/") {
		h.Set("Cache-Control", "no-store")
	}
	s.mux.ServeHTTP(w, r)
}

// page serves the one HTML page; the script shows what the URL's
// fragment names, and asks the server for everything else.
func (s *Server) page(assets fs.FS) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := fs.ReadFile(assets, "index.html")
		if err != nil {
			http.Error(w, "missing page", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(b)
	}
}

// api answers /studio/api/... as the API answers the rest of the path,
// for the session's person.
func (s *Server) api(w http.ResponseWriter, r *http.Request, sess store.StudioSession) {
	r2 := r.Clone(r.Context())
	r2.URL.Path = strings.TrimPrefix(r.URL.Path, Prefix+"/api")
	r2.URL.RawPath = ""
	// The API's own cookie-less answers; Studio's cookies stay here.
	r2.Header.Del("Cookie")
	s.deps.API.ServeUser(w, r2, sess.Email)
}
