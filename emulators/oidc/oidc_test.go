package oidc_test

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/zitadel/oidc/v3/pkg/client/rp"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/sealedsense/sealedsense/emulators/oidc"
)

const redirect = "http://127.0.0.1:1/studio/callback"

// signIn runs the authorization-code flow with PKCE as a browser and a
// relying party do, and returns the code the provider redirects with.
func signIn(t *testing.T, relying rp.RelyingParty, challenge, email, password string) (code, state string, status int) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(r.URL.String(), redirect) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := browser.Get(rp.AuthURL("state-1", relying, rp.WithCodeChallenge(challenge)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.HasSuffix(resp.Request.URL.Path, oidc.LoginPath) {
		t.Fatalf("the authorization request did not reach the sign-in form: %s", resp.Request.URL)
	}
	id := resp.Request.URL.Query().Get("authRequestID")
	resp, err = browser.PostForm(resp.Request.URL.String(), url.Values{"username": {email}, "password": {password}, "id": {id}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		return "", "", resp.StatusCode
	}
	to, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return to.Query().Get("code"), to.Query().Get("state"), resp.StatusCode
}

// TestSignInWithPKCE: the demo user signs in with the authorization code
// flow and PKCE; the ID token, verified against the provider's keys,
// names the user, and userinfo gives the verified email; a wrong password, or an exchange without the
// verifier, gets nothing.
func TestSignInWithPKCE(t *testing.T) {
	p, err := oidc.Start(oidc.Config{Addr: "127.0.0.1:0", ClientID: "studio", ClientSecret: "studio-secret",
		RedirectURIs: []string{redirect}, Users: []oidc.User{{Email: "facility@demo.example", Password: "demo-password", Name: "Facility"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	relying, err := rp.NewRelyingPartyOIDC(ctx, p.Issuer, "studio", "studio-secret", redirect, []string{"openid", "email", "profile"})
	if err != nil {
		t.Fatal(err)
	}
	verifier := "a-code-verifier-of-at-least-forty-three-characters-0123456789"
	challenge := zoidc.NewSHACodeChallenge(verifier)

	if code, _, status := signIn(t, relying, challenge, "facility@demo.example", "wrong"); code != "" {
		t.Fatalf("a wrong password got a code (status %d)", status)
	}
	code, state, _ := signIn(t, relying, challenge, "facility@demo.example", "demo-password")
	if code == "" || state != "state-1" {
		t.Fatalf("no code, or another state (%q) after signing in", state)
	}
	if _, err := rp.CodeExchange[*zoidc.IDTokenClaims](ctx, code, relying); err == nil {
		t.Fatal("a code was exchanged without its PKCE verifier")
	}
	code, _, _ = signIn(t, relying, challenge, "facility@demo.example", "demo-password")
	tokens, err := rp.CodeExchange[*zoidc.IDTokenClaims](ctx, code, relying, rp.WithCodeVerifier(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if tokens.IDTokenClaims.Subject != "facility@demo.example" || tokens.IDTokenClaims.Issuer != p.Issuer {
		t.Fatalf("ID token claims %+v", tokens.IDTokenClaims)
	}
	// The email, verified, comes from the userinfo endpoint.
	info, err := rp.Userinfo[*zoidc.UserInfo](ctx, tokens.AccessToken, tokens.TokenType, tokens.IDTokenClaims.Subject, relying)
	if err != nil {
		t.Fatal(err)
	}
	if info.Email != "facility@demo.example" || !bool(info.EmailVerified) {
		t.Fatalf("userinfo %+v", info)
	}
}
