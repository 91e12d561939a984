package token

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrUnknownKey is what a SecretLookup returns for a key that does not
// exist or may no longer be used. VerifyAssertion then returns an error
// that wraps both ErrInvalid and ErrUnknownKey.
var ErrUnknownKey = errors.New("token: unknown key")

// SecretLookup returns the secret of a service-account key and the email of
// the account that owns it. It returns an error wrapping ErrUnknownKey when
// there is no such key or it is disabled; any other error is taken for an
// outage, not a refusal.
type SecretLookup func(ctx context.Context, keyID string) (secret []byte, email string, err error)

// Assertion is a verified service-account assertion.
type Assertion struct {
	KeyID, Issuer       string
	IssuedAt, ExpiresAt time.Time
}

// AssertionExpect is what VerifyAssertion checks against.
type AssertionExpect struct {
	Audience    string           // the token endpoint's URL; required
	Now         func() time.Time // nil: time.Now
	Leeway      time.Duration    // clock skew allowed, default 60s
	MaxLifetime time.Duration    // default 1h
}

// VerifyAssertion checks an RFC 7523 assertion as DT's clients make them:
// HS256 with the key id as kid, the account email as iss, the token URL as
// aud, and iat and exp at most an hour apart. Without a jti there is
// nothing to detect a replay by, and DT's clients may send one assertion
// twice, so a valid assertion may be used until it expires.
//
// Every refusal wraps ErrInvalid, and also ErrUnknownKey when the kid names
// no usable key. A lookup failure other than ErrUnknownKey is returned
// wrapped but not as ErrInvalid, so the caller can answer 503 rather than
// 401. Errors never quote the assertion or the secret.
func VerifyAssertion(ctx context.Context, assertion string, want AssertionExpect, lookup SecretLookup) (Assertion, error) {
	if want.Audience == "" {
		return Assertion{}, errors.New("token: verify assertion: AssertionExpect needs an Audience")
	}
	now := time.Now
	if want.Now != nil {
		now = want.Now
	}
	if want.Leeway <= 0 {
		want.Leeway = time.Minute
	}
	if want.MaxLifetime <= 0 {
		want.MaxLifetime = MaxLifetime
	}
	if len(assertion) > maxTokenLen {
		return Assertion{}, fmt.Errorf("%w: too long", ErrInvalid)
	}
	var c jwt.RegisteredClaims
	var kid, email string
	var lookupErr error
	_, err := jwt.ParseWithClaims(assertion, &c, func(t *jwt.Token) (any, error) {
		kid, _ = t.Header["kid"].(string)
		if kid == "" {
			return nil, fmt.Errorf("%w: no kid", ErrInvalid)
		}
		secret, e, err := lookup(ctx, kid)
		if err != nil {
			lookupErr = err
			return nil, err
		}
		if len(secret) == 0 || e == "" {
			// An empty HMAC key would let anyone sign; an empty email
			// would match an assertion without iss.
			return nil, fmt.Errorf("%w: key has no secret or account", ErrInvalid)
		}
		email = e
		return secret, nil
	}, jwt.WithValidMethods([]string{"HS256"}), jwt.WithAudience(want.Audience), jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(), jwt.WithLeeway(want.Leeway), jwt.WithTimeFunc(now), jwt.WithStrictDecoding())
	switch {
	case errors.Is(lookupErr, ErrUnknownKey):
		return Assertion{}, fmt.Errorf("%w: %w", ErrInvalid, ErrUnknownKey)
	case lookupErr != nil:
		return Assertion{}, fmt.Errorf("token: key lookup: %w", lookupErr)
	case err != nil:
		return Assertion{}, fmt.Errorf("%w: %s", ErrInvalid, reason(err))
	case c.IssuedAt == nil:
		return Assertion{}, fmt.Errorf("%w: iat required", ErrInvalid)
	case c.Issuer == "" || c.Issuer != email:
		return Assertion{}, fmt.Errorf("%w: iss is not the key's account", ErrInvalid)
	case c.ExpiresAt.Sub(c.IssuedAt.Time) > want.MaxLifetime:
		return Assertion{}, fmt.Errorf("%w: exp more than %v after iat", ErrInvalid, want.MaxLifetime)
	}
	return Assertion{KeyID: kid, Issuer: c.Issuer, IssuedAt: c.IssuedAt.Time, ExpiresAt: c.ExpiresAt.Time}, nil
}
