package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/mail"
	"strings"

	"github.com/sealedsense/sealedsense/shared/store"
)

// People are members as service accounts are: the same roles, grants and
// audit trail, but named by the email their identity provider verified.
// They never hold a key or a token: Studio, which signed them in, calls
// the API in-process on their behalf (ServeUser).

// Actor types, as DT's audit log and member resources name them.
const (
	actorServiceAccount = "SERVICE_ACCOUNT"
	actorUser           = "USER"
)

// userKey holds, on a request's context, the person Studio serves it for.
// Only ServeUser sets it: no header or token a client sends can.
type userKey struct{}

// ServeUser answers r as the person with the verified email: Studio's way
// into the API. Credentials the request carries are ignored.
func (s *Service) ServeUser(w http.ResponseWriter, r *http.Request, email string) {
	r = r.Clone(context.WithValue(r.Context(), userKey{}, email))
	r.Header.Del("Authorization")
	s.ServeHTTP(w, r)
}

// normalEmail checks an email a member is added by and gives its one
// spelling (pure): a bare address, lower case.
func normalEmail(raw string) (string, error) {
	a, err := mail.ParseAddress(strings.TrimSpace(raw))
	if err != nil || a.Name != "" || len(a.Address) > 254 || a.Address != strings.TrimSpace(raw) {
		return "", errBadRequest("email must be a bare address such as name@example.com")
	}
	return strings.ToLower(a.Address), nil
}

// userAccount is the account id of the person with email: derived, so
// that a grant can be made before the person ever signs in, and opaque,
// so that a member's name does not spell an address.
func userAccount(email string) string {
	h := sha256.Sum256([]byte("sealedsense user\x00" + strings.ToLower(email)))
	return "user-" + hex.EncodeToString(h[:12])
}

// loadUser reads a person's grants, cached for AccessTTL as a key's are:
// that is how long a removed role can still be honoured by a warm
// instance.
func (s *Service) loadUser(ctx context.Context, email string) (*principal, error) {
	acc := userAccount(email)
	// "/" keeps these entries apart from key ids, which cannot hold one.
	if p, ok := s.principals.Get("user/" + acc); ok {
		return p, nil
	}
	exp := s.deps.Now().Add(s.cfg.AccessTTL)
	grants, err := s.db.AccountMembers(ctx, acc)
	if err != nil {
		return nil, storeErr(err, "grants")
	}
	p := &principal{Account: acc, Email: strings.ToLower(email), User: true, Grants: map[string][]string{}}
	for _, m := range grants {
		p.Grants[m.Scope] = m.Roles
	}
	s.principals.PutUntil("user/"+acc, p, exp)
	return p, nil
}

// reload reads p again, as a stream re-checks its caller.
func (s *Service) reload(ctx context.Context, p *principal) (*principal, error) {
	if p.User {
		return s.loadUser(ctx, p.Email)
	}
	return s.loadPrincipal(ctx, p.Key)
}

// actorType names p's kind in audit entries.
func (p *principal) actorType() string {
	if p.User {
		return actorUser
	}
	return actorServiceAccount
}

// memberOf is who a new grant is for: a service account of the caller's
// organization when the email is one of ours, a person otherwise.
func (s *Service) memberOf(c *call, raw string) (acc, email, kind string, err error) {
	email, err = normalEmail(raw)
	if err != nil {
		return "", "", "", err
	}
	if strings.HasSuffix(email, ".serviceaccount."+s.cfg.Domain) {
		id, a, err := s.orgAccount(c, email)
		return id, a.Email, store.MemberServiceAccount, err
	}
	if len(email) > 200 {
		return "", "", "", errBadRequest("email is too long")
	}
	return userAccount(email), email, store.MemberUser, nil
}
