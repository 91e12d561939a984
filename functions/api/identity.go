package api

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sealedsense/sealedsense/shared/apikey"
	"github.com/sealedsense/sealedsense/shared/dataconnector"
	"github.com/sealedsense/sealedsense/shared/store"
	"github.com/sealedsense/sealedsense/shared/token"
)

const jwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// loadPrincipal reads an account, one of its keys and its grants, and
// caches the result for AccessTTL: that is how long a deleted key or
// account, or a revoked role, can still be honoured by a warm instance.
func (s *Service) loadPrincipal(ctx context.Context, keyID string) (*principal, error) {
	if !validDocID(keyID) {
		// From a token's kid or Basic credentials: anyone's input.
		return nil, errUnauthenticated("unknown or revoked credentials")
	}
	if p, ok := s.principals.Get(keyID); ok {
		if p == nil {
			return nil, errUnauthenticated("unknown or revoked credentials")
		}
		return p, nil
	}
	// Trusted for AccessTTL from before the read, as the bound promises.
	exp := s.deps.Now().Add(s.cfg.AccessTTL)
	p, err := s.readPrincipal(ctx, keyID)
	if err != nil {
		if isCode(err, http.StatusUnauthorized) {
			s.principals.PutUntil(keyID, nil, exp)
		}
		return nil, err
	}
	s.principals.PutUntil(keyID, p, exp)
	return p, nil
}

func (s *Service) readPrincipal(ctx context.Context, keyID string) (*principal, error) {
	k, err := s.db.Key(ctx, keyID)
	if err != nil {
		return nil, credentialsErr(err)
	}
	a, err := s.db.Account(ctx, k.Account)
	if err != nil {
		return nil, credentialsErr(err)
	}
	if a.Disabled {
		return nil, errUnauthenticated("unknown or revoked credentials")
	}
	grants, err := s.db.AccountMembers(ctx, k.Account)
	if err != nil {
		return nil, storeErr(err, "grants")
	}
	if !k.AccountBound {
		s.log.Warn("service-account key not bound to its account: re-mint or rewrap it", "keyId", keyID, "account", k.Account)
	}
	return &principal{Account: k.Account, Email: a.Email, Key: keyID, BasicAuth: a.BasicAuth,
		Grants: keyGrants(k, a.ProjectID, grants), wrappedSecret: k.WrappedSecret, accountBound: k.AccountBound}, nil
}

// keyGrants is what a key may act under of its account's grants: those in
// the account's own project, whose admins list (and can delete) the key,
// and elsewhere only those that existed when the key was minted. A grant
// made later in another project does not extend a key minted before it,
// which that project's admins cannot see; a key minted after the grant
// acts under it.
func keyGrants(k store.Key, ownProject string, grants []store.Member) map[string][]string {
	out := map[string][]string{}
	own := store.ProjectScope(ownProject)
	for _, m := range grants {
		if m.Scope != own && m.CreateTime.After(k.CreateTime) {
			continue
		}
		out[m.Scope] = m.Roles
	}
	return out
}

// credentialsErr is a failed read of a key or account: missing means the
// credentials are unknown or revoked.
func credentialsErr(err error) error {
	if notFound(err) {
		return errUnauthenticated("unknown or revoked credentials")
	}
	return storeErr(err, "credentials")
}

// authenticate finds the caller: the person Studio serves the request
// for, or else from a Bearer access token or, where the account allows
// it, Basic key id and secret.
func (s *Service) authenticate(r *http.Request) (*principal, error) {
	if email, ok := r.Context().Value(userKey{}).(string); ok {
		return s.loadUser(r.Context(), email)
	}
	h := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(h, " ")
	switch strings.ToLower(scheme) {
	case "bearer":
		c, err := s.deps.Verifier.Verify(r.Context(), strings.TrimSpace(cred), token.Expect{Issuer: s.cfg.BaseURL, Audience: s.cfg.BaseURL, Now: s.deps.Now})
		if errors.Is(err, token.ErrInvalid) {
			return nil, errUnauthenticated("invalid access token")
		}
		if err != nil {
			return nil, errUnavailable(err)
		}
		p, err := s.loadPrincipal(r.Context(), c.Key)
		if err != nil {
			return nil, err
		}
		if p.Account != c.Account {
			return nil, errUnauthenticated("invalid access token")
		}
		return p, nil
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
		if err != nil {
			return nil, errUnauthenticated("malformed basic credentials")
		}
		keyID, secret, ok := strings.Cut(string(raw), ":")
		if !ok || keyID == "" {
			return nil, errUnauthenticated("malformed basic credentials")
		}
		p, err := s.loadPrincipal(r.Context(), keyID)
		if err != nil {
			return nil, err
		}
		want, err := s.keySecret(r.Context(), p)
		if err != nil {
			return nil, err
		}
		if subtle.ConstantTimeCompare(want, []byte(secret)) != 1 {
			return nil, errUnauthenticated("unknown or revoked credentials")
		}
		if !p.BasicAuth {
			return nil, errUnauthenticated("basic auth is not enabled for this account")
		}
		return p, nil
	default:
		return nil, errUnauthenticated("missing credentials")
	}
}

// keySecret unwraps the secret of p's key, as read with p; the
// SecretReader's cache makes that one KMS call per key and instance.
// A secret that fails KMS authentication belongs to a key document that
// was edited (its account) or copied: refused, and logged.
func (s *Service) keySecret(ctx context.Context, p *principal) ([]byte, error) {
	aad := apikey.StoredSecretAAD(p.Key, p.Account, p.accountBound)
	secret, err := s.deps.SecretReader.Unwrap(ctx, p.wrappedSecret, aad)
	if status.Code(err) == codes.InvalidArgument {
		s.log.Warn("credentials refused: the key's secret does not unwrap for its account", "rejected", "key-tampered",
			"keyId", p.Key, "account", p.Account)
		return nil, errUnauthenticated("unknown or revoked credentials")
	}
	if err != nil {
		return nil, errUnavailable(err)
	}
	return secret, nil
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
}

// oauthError is RFC 6749's error shape, which OAuth clients parse; DT's
// clients read the status code.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// handleToken is the RFC 7523 JWT-bearer grant.
func (s *Service) handleToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, oauthError{"invalid_request", "the body must be a form of at most the size limit"})
		return
	}
	if g := r.PostForm.Get("grant_type"); g != jwtBearerGrant {
		writeJSON(w, http.StatusBadRequest, oauthError{"unsupported_grant_type", "grant_type must be " + jwtBearerGrant})
		return
	}
	assertion := r.PostForm.Get("assertion")
	// The limit is per key id, read unverified from the header: it only
	// slows guessing at one key's secret, it decides nothing.
	if kid := unverifiedKid(assertion); kid != "" {
		if ok, wait := s.tokenLimit.allow("token/" + kid); !ok {
			writeError(w, &apiError{code: http.StatusTooManyRequests, msg: "too many token requests", retryAfter: wait})
			return
		}
	}
	p, keyID, err := s.verifyAssertion(r.Context(), assertion)
	if errors.Is(err, token.ErrInvalid) {
		s.log.Warn("token request refused", "rejected", "bad-assertion", "error", err.Error())
		writeJSON(w, http.StatusUnauthorized, oauthError{"invalid_grant", "the assertion is invalid, expired or names an unknown key"})
		return
	}
	if err != nil {
		s.log.Error("token request failed", "error", err.Error())
		writeError(w, errUnavailable(err))
		return
	}
	tok, err := s.issue(r.Context(), p, keyID)
	if err != nil {
		s.log.Error("token signing failed", "error", err.Error())
		writeError(w, errUnavailable(err))
		return
	}
	s.log.Info("token issued", "account", p.Account, "keyId", keyID)
	writeJSON(w, http.StatusOK, tokenResponse{AccessToken: tok, TokenType: "Bearer", ExpiresIn: int(s.cfg.TokenLifetime / time.Second)})
}

// verifyAssertion checks an assertion against the secret of the key it
// names, and returns that key's principal and id.
func (s *Service) verifyAssertion(ctx context.Context, assertion string) (*principal, string, error) {
	var p *principal
	a, err := token.VerifyAssertion(ctx, assertion, token.AssertionExpect{Audience: s.cfg.TokenURL(), Now: s.deps.Now},
		func(ctx context.Context, kid string) ([]byte, string, error) {
			pr, err := s.loadPrincipal(ctx, kid)
			if isCode(err, http.StatusUnauthorized) {
				return nil, "", token.ErrUnknownKey
			}
			if err != nil {
				return nil, "", err
			}
			secret, err := s.keySecret(ctx, pr)
			if isCode(err, http.StatusUnauthorized) {
				return nil, "", token.ErrUnknownKey
			}
			if err != nil {
				return nil, "", err
			}
			p = pr
			return secret, pr.Email, nil
		})
	if err != nil {
		return nil, "", err
	}
	return p, a.KeyID, nil
}

// issue signs an access token for p's key.
func (s *Service) issue(ctx context.Context, p *principal, keyID string) (string, error) {
	now := s.deps.Now()
	return s.deps.Signer.Sign(ctx, token.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: s.cfg.BaseURL, Subject: p.Email, Audience: jwt.ClaimStrings{s.cfg.BaseURL},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(s.cfg.TokenLifetime)),
		},
		Account: p.Account, Key: keyID,
	})
}

func unverifiedKid(assertion string) string {
	t, _, err := jwt.NewParser().ParseUnverified(assertion, jwt.MapClaims{})
	if err != nil {
		return ""
	}
	kid, _ := t.Header["kid"].(string)
	if len(kid) > 64 {
		return ""
	}
	return kid
}

func (s *Service) handleJWKS(w http.ResponseWriter, r *http.Request) {
	b, err := s.jwks(r.Context())
	if err != nil {
		s.log.Error("jwks failed", "error", err.Error())
		writeError(w, errUnavailable(err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	// Short, because deliver instances add keys as they start; receivers
	// also fetch again when they meet an unknown kid.
	w.Header().Set("Cache-Control", "public, max-age=60")
	_, _ = w.Write(b)
}

// jwksTTL bounds the work an unauthenticated caller can cause (one query
// per second per instance) and how late a new delivery key appears; the
// deliver function waits longer than this before it signs with one.
const jwksTTL = time.Second

// jwks is the access-token keys and the certified keys of the deliver
// instances.
func (s *Service) jwks(ctx context.Context) ([]byte, error) {
	if b, ok := s.jwksCache.Get(""); ok {
		return b, nil
	}
	now := s.deps.Now()
	b, err := s.jwksOf(ctx)
	if err == nil {
		s.jwksCache.PutUntil("", b, now.Add(jwksTTL))
	}
	return b, err
}

func (s *Service) jwksOf(ctx context.Context) ([]byte, error) {
	b, err := s.deps.Verifier.JWKS(ctx)
	if err != nil || s.deps.DeliveryKeys == nil {
		return b, err
	}
	var set token.JWKSet
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, err
	}
	keys, err := dataconnector.PublishedKeys(ctx, s.deps.Firestore, s.deps.DeliveryKeys, s.cfg.BaseURL, s.deps.Now())
	if err != nil {
		return nil, err
	}
	set.Keys = append(set.Keys, keys...)
	return json.Marshal(set)
}

// projectOrg returns the organization of a project, "" when it does not
// exist; cached, as a project never changes organization.
func (s *Service) projectOrg(ctx context.Context, project string) (string, error) {
	if o, ok := s.orgs.Get(project); ok {
		return o, nil
	}
	exp := s.deps.Now().Add(s.cfg.AccessTTL)
	p, err := s.db.Project(ctx, project)
	if notFound(err) {
		return "", nil
	}
	if err != nil {
		return "", storeErr(err, "project")
	}
	s.orgs.PutUntil(project, p.Organization, exp)
	return p.Organization, nil
}
