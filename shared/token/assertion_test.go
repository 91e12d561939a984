package token_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
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
func dtAssertion(t testing.TB, kid, key string, claims jwt.MapClaims, method jwt.SigningMethod, header ...func(map[string]any)) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	for _, h := range header {
		h(tok.Header)
	}
	var signKey any = []byte(key)
	switch method {
	case jwt.SigningMethodNone:
		signKey = jwt.UnsafeAllowNoneSignatureType
	case jwt.SigningMethodES256:
		signKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jwt.SigningMethodRS256:
		signKey, _ = rsa.GenerateKey(rand.Reader, 2048)
	}
	s, err := tok.SignedString(signKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// pyJWT builds an assertion byte for byte as DT's Python client does with
// PyJWT: jwt.encode({"iat","exp","aud","iss"}, secret, algorithm="HS256",
// headers={"alg": "HS256", "kid": key_id}); PyJWT sorts the header keys and
// uses compact separators.
func pyJWT(t testing.TB, kid, key string, iat time.Time, aud, iss string) string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	h := fmt.Sprintf(`{"alg":"HS256","kid":%q,"typ":"JWT"}`, kid)
	p := fmt.Sprintf(`{"iat":%d,"exp":%d,"aud":%q,"iss":%q}`, iat.Unix(), iat.Unix()+3600, aud, iss)
	in := enc([]byte(h)) + "." + enc([]byte(p))
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(in))
	return in + "." + enc(m.Sum(nil))
}

// nonCanonical changes the unused low bits of the last base64url character
// of s, which a lenient decoder ignores.
func nonCanonical(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, s[len(s)-1])
	return s[:len(s)-1] + string(alphabet[i^1])
}

func lookup(_ context.Context, kid string) ([]byte, string, error) {
	switch kid {
	case "key1":
		return []byte(secret), email, nil
	case "broken":
		return nil, "", errors.New("firestore unavailable")
	case "nosecret":
		return nil, email, nil
	case "noemail":
		return []byte(secret), "", nil
	case "disabled":
		return nil, "", fmt.Errorf("key disabled: %w", token.ErrUnknownKey)
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
	for _, v := range []string{valid, pyJWT(t, "key1", secret, now, tokenURL, email)} {
		for i := range 2 { // DT's clients may send one assertion twice
			a, err := token.VerifyAssertion(context.Background(), v, want, lookup)
			if err != nil || a.KeyID != "key1" || a.Issuer != email || !a.IssuedAt.Equal(now) || !a.ExpiresAt.Equal(now.Add(time.Hour)) {
				t.Fatalf("attempt %d: %+v, %v", i, a, err)
			}
		}
	}
	// Within the leeway either side.
	for _, at := range []time.Time{now.Add(-59 * time.Second), now.Add(time.Hour + 59*time.Second)} {
		w := want
		w.Now = func() time.Time { return at }
		if _, err := token.VerifyAssertion(context.Background(), valid, w, lookup); err != nil {
			t.Fatalf("at %v: %v", at.Sub(now), err)
		}
	}
	// An audience among several is enough.
	multi := dtAssertion(t, "key1", secret, claims(func(c jwt.MapClaims) { c["aud"] = []string{"https://other", tokenURL} }), jwt.SigningMethodHS256)
	if _, err := token.VerifyAssertion(context.Background(), multi, want, lookup); err != nil {
		t.Fatalf("aud list: %v", err)
	}
	// Without an expected audience it refuses, and not as the client's fault.
	if _, err := token.VerifyAssertion(context.Background(), valid, token.AssertionExpect{}, lookup); err == nil || errors.Is(err, token.ErrInvalid) {
		t.Fatalf("no audience expected: %v", err)
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
		{"RS256", dtAssertion(t, "key1", "", claims(nil), jwt.SigningMethodRS256), false, false},
		{"HS512", dtAssertion(t, "key1", secret, claims(nil), jwt.SigningMethodHS512), false, false},
		{"disabled key", dtAssertion(t, "disabled", secret, claims(nil), jwt.SigningMethodHS256), true, false},
		{"key without secret, signed with an empty key", pyJWT(t, "nosecret", "", now, tokenURL, email), false, false},
		{"key without account, no iss", dtAssertion(t, "noemail", secret, claims(func(c jwt.MapClaims) { delete(c, "iss") }), jwt.SigningMethodHS256), false, false},
		{"no iss", dtAssertion(t, "key1", secret, claims(func(c jwt.MapClaims) { delete(c, "iss") }), jwt.SigningMethodHS256), false, false},
		{"no aud", dtAssertion(t, "key1", secret, claims(func(c jwt.MapClaims) { delete(c, "aud") }), jwt.SigningMethodHS256), false, false},
		{"kid not a string", dtAssertion(t, "", secret, claims(nil), jwt.SigningMethodHS256, func(h map[string]any) { h["kid"] = 7 }), false, false},
		{"nbf in the future", dtAssertion(t, "key1", secret, claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(30 * time.Minute).Unix() }), jwt.SigningMethodHS256), false, false},
		{"non-canonical base64 signature", nonCanonical(valid), false, false},
		{"empty", "", false, false},
		{"oversized", strings.Repeat("a", 5000), false, false},
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
			if strings.Contains(err.Error(), secret) || (tc.assertion != "" && strings.Contains(err.Error(), tc.assertion)) {
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
	f.Add(nonCanonical(good))
	f.Add(dtAssertion(f, "key1", "", jwt.MapClaims{"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "aud": tokenURL, "iss": email}, jwt.SigningMethodNone))
	want := token.AssertionExpect{Audience: tokenURL, Now: func() time.Time { return now }}
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := token.VerifyAssertion(context.Background(), s, want, lookup); err == nil && s != good {
			t.Fatalf("accepted an assertion not signed with the secret: %q", s)
		}
	})
}
