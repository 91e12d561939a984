package studio

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/sealedsense/sealedsense/shared/lazy"
	"github.com/sealedsense/sealedsense/shared/store"
)

// loginTTL bounds how long a person may take at the identity provider.
const loginTTL = 10 * time.Minute

// provider is the identity provider as Studio's relying party, found by
// discovery on first use so that a provider briefly down at cold start
// is retried by the next sign-in.
type provider struct {
	party *lazy.Value[rp.RelyingParty]
}

// nonceKey carries the nonce a sign-in expects to the ID token's check.
type nonceKey struct{}

func newProvider(cfg Config, hc *http.Client) *provider {
	return &provider{party: lazy.New(func(ctx context.Context) (rp.RelyingParty, error) {
		return rp.NewRelyingPartyOIDC(ctx, cfg.Issuer, cfg.ClientID, cfg.ClientSecret, cfg.BaseURL+"/callback",
			[]string{oidc.ScopeOpenID, oidc.ScopeEmail, oidc.ScopeProfile}, rp.WithHTTPClient(hc),
			rp.WithVerifierOpts(rp.WithNonce(func(ctx context.Context) string {
				n, _ := ctx.Value(nonceKey{}).(string)
				return n
			})))
	})}
}

// random is 256 random bits, base64url: states, nonces and PKCE
// verifiers (43 characters, as RFC 7636 asks at least).
func random() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// login starts a sign-in: authorization code with PKCE and a nonce,
// kept server-side under a state that only this browser holds.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if !s.cfg.signInConfigured() {
		s.log.Error("studio sign-in is not configured: set its issuer, client id and client secret")
		s.message(w, http.StatusServiceUnavailable, "Sign-in is not set up yet", "The operator of this SealedSense installation has not configured Studio's sign-in.")
		return
	}
	if !s.logins.Allow() {
		s.log.Warn("studio sign-in refused", "rejected", "rate", "reason", "too many sign-ins started on this instance")
		w.Header().Set("Retry-After", "5")
		s.message(w, http.StatusTooManyRequests, "Too many sign-ins right now", "Try again in a few seconds.")
		return
	}
	party, err := s.oidc.party.Get(r.Context())
	if err != nil {
		s.log.Error("studio sign-in: identity provider", "error", err.Error())
		s.message(w, http.StatusServiceUnavailable, "The sign-in service cannot be reached", "Try again in a minute.")
		return
	}
	var l store.StudioLogin
	state, err1 := random()
	verifier, err2 := random()
	nonce, err3 := random()
	if err := errors.Join(err1, err2, err3); err != nil {
		s.message(w, http.StatusInternalServerError, "Sign-in failed", "Try again.")
		return
	}
	l.Verifier, l.Nonce, l.ExpireAt = verifier, nonce, s.deps.Now().Add(loginTTL)
	if err := s.db.BeginStudioLogin(r.Context(), state, l); err != nil {
		s.log.Error("studio sign-in", "error", err.Error())
		s.message(w, http.StatusServiceUnavailable, "Sign-in is unavailable", "Try again in a minute.")
		return
	}
	// Lax, not Strict: the provider's redirect back is a navigation from
	// another site, which must still carry it.
	setCookie(w, loginCookie, state, int(loginTTL.Seconds()), true, http.SameSiteLaxMode)
	http.Redirect(w, r, rp.AuthURL(state, party, rp.WithCodeChallenge(oidc.NewSHACodeChallenge(l.Verifier)),
		rp.AuthURLOpt(rp.WithURLParam("nonce", l.Nonce))), http.StatusFound)
}

// callback finishes a sign-in: the state must be this browser's and
// unused, the code is exchanged with the PKCE verifier, the ID token's
// signature, audience and nonce are checked, and the email must be one
// the provider verified.
func (s *Server) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		s.log.Info("studio sign-in refused by the identity provider", "error", e)
		s.message(w, http.StatusUnauthorized, "You were not signed in", "The sign-in service said: "+e+".")
		return
	}
	state := q.Get("state")
	c, err := r.Cookie(loginCookie)
	if err != nil || state == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(state)) != 1 {
		s.log.Warn("studio sign-in refused", "rejected", "state", "reason", "the state is not this browser's")
		s.message(w, http.StatusBadRequest, "This sign-in did not start in this browser", "Start again from the sign-in page.")
		return
	}
	clearCookie(w, loginCookie, true)
	email, subject, err := s.finish(r.Context(), state, q.Get("code"))
	if err != nil {
		s.log.Warn("studio sign-in refused", "rejected", "callback", "reason", err.Error())
		s.message(w, http.StatusUnauthorized, "You were not signed in", "Start again from the sign-in page.")
		return
	}
	token, csrf, err := s.db.CreateStudioSession(r.Context(), email, subject, s.cfg.Issuer, s.deps.Now(), s.limits)
	if err != nil {
		s.log.Error("studio session", "error", err.Error())
		s.message(w, http.StatusServiceUnavailable, "Sign-in is unavailable", "Try again in a minute.")
		return
	}
	maxAge := int(s.cfg.Absolute.Seconds())
	setCookie(w, sessionCookie, token, maxAge, true, http.SameSiteStrictMode)
	setCookie(w, csrfCookie, csrf, maxAge, false, http.SameSiteStrictMode)
	s.log.Info("studio sign-in", "actor", email)
	// A page, not a redirect: a navigation that began at the provider's
	// site would not carry the Strict cookies just set; one from this
	// page does.
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = signedIn.Execute(w, nil)
}

// finish exchanges a sign-in's code and returns who signed in.
func (s *Server) finish(ctx context.Context, state, code string) (email, subject string, err error) {
	l, err := s.db.EndStudioLogin(ctx, state, s.deps.Now())
	if err != nil {
		return "", "", err
	}
	party, err := s.oidc.party.Get(ctx)
	if err != nil {
		return "", "", err
	}
	ctx = context.WithValue(ctx, nonceKey{}, l.Nonce)
	tokens, err := rp.CodeExchange[*oidc.IDTokenClaims](ctx, code, party, rp.WithCodeVerifier(l.Verifier))
	if err != nil {
		return "", "", fmt.Errorf("code exchange: %w", err)
	}
	sub := tokens.IDTokenClaims.GetSubject()
	info, err := rp.Userinfo[*oidc.UserInfo](ctx, tokens.AccessToken, tokens.TokenType, sub, party)
	if err != nil {
		return "", "", fmt.Errorf("userinfo: %w", err)
	}
	if info.Email == "" || !bool(info.EmailVerified) {
		return "", "", errors.New("the provider did not verify the person's email")
	}
	return strings.ToLower(info.Email), sub, nil
}

var signedIn = template.Must(template.New("in").Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="0;url=./"><title>Signed in — SealedSense Studio</title>
<link rel="stylesheet" href="assets/studio.css"></head>
<body><main><p>Signed in. <a href="./">Continue to Studio</a></p></main></body></html>`))

var messagePage = template.Must(template.New("msg").Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{{.Title}} — SealedSense Studio</title>
<link rel="stylesheet" href="assets/studio.css"></head>
<body><main><h1>{{.Title}}</h1><p>{{.Text}}</p><p><a href="login">Sign in</a></p></main></body></html>`))

// message answers a page saying what went wrong, escaped.
func (s *Server) message(w http.ResponseWriter, code int, title, text string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_ = messagePage.Execute(w, struct{ Title, Text string }{title, text})
}
