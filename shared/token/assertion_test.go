package token_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sealedsense/sealedsense/shared/token"
)

const (
	tokenURL = "https://api.test/oauth2/token"
	email    = "sa1@proj.serviceaccount.test"
	secret   = "s3cret-s3cret-s3cret-s3cret-0123"
)

// dtAssertion builds an assertion as DT's Python client does.
func dtAssertion(t testing.TB, kid, key string, claims jwt.MapClaims, method jwt.SigningMethod) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	var signKey any = []byte(key)
	switch method {
	case jwt.SigningMethodNone:
		signKey = jwt.UnsafeAllowNoneSignatureType
	case jwt.SigningMethodES256:
		signKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	s, err := tok.SignedString(signKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func lookup(_ context.Context, kid string) ([]byte, string, error) {
	switch kid {
	case "key1":
		return []byte(secret), email, nil
	case "broken":
		return nil, "", errors.New("firestore unavailable")
	}
	return nil, "", token.ErrUnknownKey
}

func TestVerifyAssertion(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "aud": tokenURL, "iss": email}
		if mod != nil {
			mod(c)
		}
		return c
	}
	want := token.AssertionExpect{Audience: tokenURL, Now: func() time.Time { return now.Add(time.Second) }}
	valid := dtAssertion(t, "key1", secret, claims(nil), jwt.SigningMethodHS256)
	for i := range 2 { // DT's clients may send one assertion twice
		a, err := token.VerifyAssertion(context.Background(), valid, want, lookup)
		if err != nil || a.KeyID != "key1" || a.Issuer != email {
			t.Fatalf("attempt %d: %+v, %v", i, a, err)
		}
	}
	for _, tc := range []struct {
		name      string
		assertion string
		unknown   bool // must also be ErrUnknownKey
		internal  bool // a lookup failure: not ErrInvalid
	}{
		{"expired", dtAssertion(t, "key1", secret, claims(func(c jwt.MapClaims) {
			c["iat"], c["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
		}), jwt.SigningMethodHS256), false, false},
		{"exp more than an hour after iat", dtAssertion(t, "key1", secret, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(time.Hour + time.Second).Unix() }), jwt.SigningMethodHS256), false, false},
		{"wrong aud", dtAssertion(t, "key1", secret, claims(func(c jwt.MapClaims) { c["aud"] = "https://evil/oauth2/token" }), jwt.SigningMethodHS256), false, false},
		{"wrong iss", dtAssertion(t, "key1", secret, claims(func(c jwt.MapClaims) { c["iss"] = "other@proj.serviceaccount.test" }), jwt.SigningMethodHS256), false, false},
		{"unknown kid", dtAssertion(t, "nokey", secret, claims(nil), jwt.SigningMethodHS256), true, false},
		{"no kid", dtAssertion(t, "", secret, claims(nil), jwt.SigningMethodHS256), false, false},
		{"wrong secret", dtAssertion(t, "key1", "guess-guess-guess-guess-guess-12", claims(nil), jwt.SigningMethodHS256), false, false},
		{"alg none", dtAssertion(t, "key1", "", claims(nil), jwt.SigningMethodNone), false, false},
		{"ES256", dtAssertion(t, "key1", "", claims(nil), jwt.SigningMethodES256), false, false},
		{"missing iat", dtAssertion(t, "key1", secret, claims(func(c jwt.MapClaims) { delete(c, "iat") }), jwt.SigningMethodHS256), false, false},
		{"missing exp", dtAssertion(t, "key1", secret, claims(func(c jwt.MapClaims) { delete(c, "exp") }), jwt.SigningMethodHS256), false, false},
		{"iat in the future", dtAssertion(t, "key1", secret, claims(func(c jwt.MapClaims) {
			c["iat"], c["exp"] = now.Add(10*time.Minute).Unix(), now.Add(20*time.Minute).Unix()
		}), jwt.SigningMethodHS256), false, false},
		{"garbage", "eyJhbGciOiJIUzI1NiJ9.e30", false, false},
		{"lookup failure", dtAssertion(t, "broken", secret, claims(nil), jwt.SigningMethodHS256), false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := token.VerifyAssertion(context.Background(), tc.assertion, want, lookup)
			if err == nil {
				t.Fatal("accepted")
			}
			if errors.Is(err, token.ErrInvalid) == tc.internal {
				t.Fatalf("ErrInvalid = %v for %v", !tc.internal, err)
			}
			if tc.unknown && !errors.Is(err, token.ErrUnknownKey) {
				t.Fatalf("want ErrUnknownKey: %v", err)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), tc.assertion) {
				t.Fatalf("the error quotes the secret or assertion: %v", err)
			}
		})
	}
}

func FuzzVerifyAssertion(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	good := dtAssertion(f, "key1", secret, jwt.MapClaims{"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "aud": tokenURL, "iss": email}, jwt.SigningMethodHS256)
	f.Add(good)
	f.Add("")
	f.Add("a.b.c")
	f.Add(strings.Replace(good, ".", "..", 1))
	want := token.AssertionExpect{Audience: tokenURL, Now: func() time.Time { return now }}
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := token.VerifyAssertion(context.Background(), s, want, lookup); err == nil && s != good {
			t.Fatalf("accepted an assertion not signed with the secret: %q", s)
		}
	})
}
