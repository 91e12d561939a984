package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// CertAudience is the audience of a key certificate. It is not the API's
// base URL, so a certificate is never accepted as an access token, and an
// access token never as a certificate.
const CertAudience = "urn:sealedsense:delivery-key"

// MaxCertLifetime bounds how long a certified key may sign.
const MaxCertLifetime = 25 * time.Hour

// CertClaims certify that a short-lived public key was made by a process
// holding sign access to a KMS key: the deliver function certifies its
// in-memory webhook key this way once, instead of calling KMS per delivery.
type CertClaims struct {
	jwt.RegisteredClaims
	Key JWK `json:"jwk"`
}

// Certify signs a certificate of key, valid from now for life, with one
// KMS call.
func (s *Signer) Certify(ctx context.Context, issuer string, key JWK, now time.Time, life time.Duration) (string, error) {
	if life <= 0 || life > MaxCertLifetime {
		return "", fmt.Errorf("token: certify: lifetime %v outside (0, %v]", life, MaxCertLifetime)
	}
	c := CertClaims{
		RegisteredClaims: jwt.RegisteredClaims{Issuer: issuer, Audience: jwt.ClaimStrings{CertAudience}, Subject: key.Kid,
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(life))},
		Key: key,
	}
	return s.sign(ctx, c)
}

// VerifyCert checks a certificate's signature against the key set, its
// issuer, audience and lifetime, and that the key it carries is a valid
// P-256 key named by the certificate's subject. It does not judge expiry:
// a caller publishing keys keeps one past its certificate's end for as
// long as signatures made before then stay valid. Refusals wrap
// ErrInvalid.
func (ks *KeySet) VerifyCert(ctx context.Context, cert, issuer string) (CertClaims, error) {
	if issuer == "" {
		return CertClaims{}, errors.New("token: verify cert: no issuer")
	}
	if len(cert) > maxTokenLen {
		return CertClaims{}, fmt.Errorf("%w: too long", ErrInvalid)
	}
	var c CertClaims
	var kmsErr error
	_, err := jwt.ParseWithClaims(cert, &c, ks.keyfunc(ctx, &kmsErr), jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation(), jwt.WithStrictDecoding())
	switch {
	case kmsErr != nil:
		return CertClaims{}, kmsErr
	case err != nil:
		return CertClaims{}, fmt.Errorf("%w: %s", ErrInvalid, reason(err))
	case c.Issuer != issuer:
		return CertClaims{}, fmt.Errorf("%w: %s", ErrInvalid, jwt.ErrTokenInvalidIssuer)
	case len(c.Audience) != 1 || c.Audience[0] != CertAudience:
		return CertClaims{}, fmt.Errorf("%w: %s", ErrInvalid, jwt.ErrTokenInvalidAudience)
	case c.IssuedAt == nil || c.ExpiresAt == nil || c.ExpiresAt.Sub(c.IssuedAt.Time) > MaxCertLifetime || !c.ExpiresAt.After(c.IssuedAt.Time):
		return CertClaims{}, fmt.Errorf("%w: certificate lifetime", ErrInvalid)
	case c.Subject == "" || c.Key.Kid != c.Subject:
		return CertClaims{}, fmt.Errorf("%w: certificate subject", ErrInvalid)
	}
	if _, err := c.Key.PublicKey(); err != nil {
		return CertClaims{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return c, nil
}

// PublicKey decodes a P-256 JWK, refusing anything else.
func (j JWK) PublicKey() (*ecdsa.PublicKey, error) {
	if j.Kty != "EC" || j.Crv != "P-256" || j.Alg != "ES256" {
		return nil, errors.New("token: jwk: not an ES256 P-256 key")
	}
	enc := base64.RawURLEncoding.Strict()
	x, err1 := enc.DecodeString(j.X)
	y, err2 := enc.DecodeString(j.Y)
	if err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
		return nil, errors.New("token: jwk: bad coordinates")
	}
	k, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		return nil, fmt.Errorf("token: jwk: %w", err)
	}
	return k, nil
}
