package token_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	kmsapi "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sealedsense/sealedsense/emulators/kms"
	"github.com/sealedsense/sealedsense/shared/token"
)

const issuer = "https://api.test"

// fixture is a KMS emulator with one signing key of two versions.
type fixture struct {
	emu      *kms.Emulator
	client   *kmsapi.KeyManagementClient
	v1, v2   string
	signer   *token.Signer
	keys     *token.KeySet
	baseTime time.Time
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	emu, err := kms.Start(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	c, err := kmsapi.NewKeyManagementClient(ctx, option.WithEndpoint(emu.Addr()), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ring, err := c.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{Parent: "projects/p/locations/europe", KeyRingId: "r"})
	if err != nil {
		t.Fatal(err)
	}
	key, err := c.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{Parent: ring.Name, CryptoKeyId: "signing", CryptoKey: &kmspb.CryptoKey{
		Purpose: kmspb.CryptoKey_ASYMMETRIC_SIGN, VersionTemplate: &kmspb.CryptoKeyVersionTemplate{Algorithm: kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256}}})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := c.CreateCryptoKeyVersion(ctx, &kmspb.CreateCryptoKeyVersionRequest{Parent: key.Name})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{emu: emu, client: c, v1: key.Name + "/cryptoKeyVersions/1", v2: v2.Name, baseTime: time.Now().Truncate(time.Second)}
	f.signer = token.NewSigner(c, f.v1)
	f.keys = token.NewKeySet(c, f.v1, f.v2)
	return f
}

func (f *fixture) claims(iat time.Time, life time.Duration) token.Claims {
	return token.Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: issuer, Audience: jwt.ClaimStrings{issuer}, Subject: "sa@p.serviceaccount.test",
		IssuedAt: jwt.NewNumericDate(iat), ExpiresAt: jwt.NewNumericDate(iat.Add(life))}, Account: "sa", Key: "k1"}
}

func (f *fixture) expect(now time.Time) token.Expect {
	return token.Expect{Issuer: issuer, Audience: issuer, Now: func() time.Time { return now }}
}

func TestSignVerifyAndJWKS(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	before := f.emu.CryptoCalls()
	tok, err := f.signer.Sign(ctx, f.claims(f.baseTime, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n := f.emu.CryptoCalls() - before; n != 1 {
		t.Fatalf("Sign made %d KMS calls, want 1", n)
	}
	c, err := f.keys.Verify(ctx, tok, f.expect(f.baseTime.Add(time.Minute)))
	if err != nil || c.Account != "sa" || c.Key != "k1" {
		t.Fatalf("Verify = %+v, %v", c, err)
	}
	// The token verifies with the stock ES256 method and the JWKS key,
	// which proves the R||S signature form and the JWK encoding.
	raw, err := f.keys.JWKS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []struct{ Kty, Crv, X, Y, Kid, Alg, Use string }
	}
	if err := json.Unmarshal(raw, &set); err != nil || len(set.Keys) != 2 {
		t.Fatalf("jwks %s: %v", raw, err)
	}
	if set.Keys[0].Kid != token.KeyID(f.v1) || set.Keys[1].Kid != token.KeyID(f.v2) || strings.Contains(string(raw), "cryptoKeys") {
		t.Fatalf("jwks kids %s", raw)
	}
	pub := func(kid string) *ecdsa.PublicKey {
		for _, k := range set.Keys {
			if k.Kid == kid {
				x, _ := base64.RawURLEncoding.DecodeString(k.X)
				y, _ := base64.RawURLEncoding.DecodeString(k.Y)
				k, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
				if err != nil {
					t.Fatalf("jwks key: %v", err)
				}
				return k
			}
		}
		return nil
	}
	parsed, err := jwt.Parse(tok, func(t *jwt.Token) (any, error) { return pub(t.Header["kid"].(string)), nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithTimeFunc(func() time.Time { return f.baseTime }))
	if err != nil || !parsed.Valid {
		t.Fatalf("stock ES256 verification: %v", err)
	}
	// Steady state: no KMS calls at all.
	before = f.emu.CryptoCalls()
	for i := range 1000 {
		if _, err := f.keys.Verify(ctx, tok, f.expect(f.baseTime.Add(time.Duration(i)*time.Millisecond))); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.emu.CryptoCalls() - before; n != 0 {
		t.Fatalf("1000 verifications made %d KMS calls", n)
	}
	// Also with every signature checked, not answered from the cache.
	cold := token.NewKeySet(f.client, f.v1, f.v2)
	token.NoCache(cold)
	if _, err := cold.Verify(ctx, tok, f.expect(f.baseTime)); err != nil { // warm-up: one GetPublicKey
		t.Fatal(err)
	}
	before = f.emu.CryptoCalls()
	for range 200 {
		if _, err := cold.Verify(ctx, tok, f.expect(f.baseTime)); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.emu.CryptoCalls() - before; n != 0 {
		t.Fatalf("200 uncached verifications made %d KMS calls", n)
	}
	// A token of the second version verifies too: rotation.
	tok2, err := token.NewSigner(f.client, f.v2).Sign(ctx, f.claims(f.baseTime, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.keys.Verify(ctx, tok2, f.expect(f.baseTime)); err != nil {
		t.Fatalf("second version: %v", err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	good, err := f.signer.Sign(ctx, f.claims(f.baseTime, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	sign := func(c token.Claims) string {
		tok, err := f.signer.Sign(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	parts := strings.Split(good, ".")
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	foreign := jwt.NewWithClaims(jwt.SigningMethodES256, f.claims(f.baseTime, time.Hour))
	foreign.Header["kid"] = token.KeyID(f.v1)
	foreignTok, _ := foreign.SignedString(otherKey)
	none := jwt.NewWithClaims(jwt.SigningMethodNone, f.claims(f.baseTime, time.Hour))
	none.Header["kid"] = token.KeyID(f.v1)
	noneTok, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, f.claims(f.baseTime, time.Hour))
	hs.Header["kid"] = token.KeyID(f.v1)
	jwks, _ := f.keys.JWKS(ctx)
	hsTok, _ := hs.SignedString(jwks)
	noKid := jwt.NewWithClaims(jwt.SigningMethodES256, f.claims(f.baseTime, time.Hour))
	noKidTok, _ := noKid.SignedString(otherKey)
	wrongAud := f.claims(f.baseTime, time.Hour)
	wrongAud.Audience = jwt.ClaimStrings{"https://elsewhere"}
	wrongIss := f.claims(f.baseTime, time.Hour)
	wrongIss.Issuer = "https://elsewhere"
	at := f.baseTime.Add(time.Minute)
	// Signed by a real version of the key that this KeySet does not list.
	v1Only := token.NewKeySet(f.client, f.v1)
	otherVersion, err := token.NewSigner(f.client, f.v2).Sign(ctx, f.claims(f.baseTime, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	unknownKid := jwt.NewWithClaims(jwt.SigningMethodES256, f.claims(f.baseTime, time.Hour))
	unknownKid.Header["kid"] = "nope"
	unknownKidTok, _ := unknownKid.SignedString(otherKey)
	notBefore := f.claims(f.baseTime, time.Hour)
	notBefore.NotBefore = jwt.NewNumericDate(f.baseTime.Add(10 * time.Minute))
	noIat := f.claims(f.baseTime, time.Hour)
	noIat.IssuedAt = nil
	noExp := f.claims(f.baseTime, time.Hour)
	noExp.ExpiresAt = nil
	for _, tc := range []struct {
		name string
		tok  string
		now  time.Time
	}{
		{"expired", good, f.baseTime.Add(time.Hour + time.Minute)},
		{"not yet valid (nbf)", sign(notBefore), at},
		{"no iat", sign(noIat), at},
		{"no exp", sign(noExp), at},
		{"unknown kid", unknownKidTok, at},
		{"two parts", parts[0] + "." + parts[1], at},
		{"non-canonical base64 signature", nonCanonical(good), at},
		{"extra part", good + ".x", at},
		{"not yet issued", good, f.baseTime.Add(-5 * time.Minute)},
		{"wrong audience", sign(wrongAud), at},
		{"wrong issuer", sign(wrongIss), at},
		{"lifetime over an hour", sign(f.claims(f.baseTime, time.Hour+time.Second)), at},
		{"tampered claims", parts[0] + "." + flip(parts[1], 5) + "." + parts[2], at},
		{"tampered signature", parts[0] + "." + parts[1] + "." + flip(parts[2], 10), at},
		{"signed by another key under our kid", foreignTok, at},
		{"alg none", noneTok, at},
		{"HS256 keyed with the public keys", hsTok, at},
		{"no kid", noKidTok, at},
		{"garbage", "not.a.token", at},
		{"empty", "", at},
		{"oversized", strings.Repeat("a", 5000), at},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := f.keys.Verify(ctx, tc.tok, f.expect(tc.now))
			if !errors.Is(err, token.ErrInvalid) || c.Subject != "" {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if tc.tok != "" && len(tc.tok) > 20 && strings.Contains(err.Error(), tc.tok) {
				t.Fatal("the error quotes the token")
			}
		})
	}
	if _, err := v1Only.Verify(ctx, otherVersion, f.expect(at)); !errors.Is(err, token.ErrInvalid) {
		t.Fatalf("a version outside the key set: %v", err)
	}
	// Verified while valid, the token is still refused once it expires
	// (beyond the leeway) or when the clock is before its iat.
	if _, err := f.keys.Verify(ctx, good, f.expect(at)); err != nil {
		t.Fatal(err)
	}
	if token.CachedTokens(f.keys) == 0 {
		t.Fatal("a verified token was not cached")
	}
	for _, now := range []time.Time{f.baseTime.Add(time.Hour + 31*time.Second), f.baseTime.Add(2 * time.Hour), f.baseTime.Add(-time.Minute)} {
		if _, err := f.keys.Verify(ctx, good, f.expect(now)); !errors.Is(err, token.ErrInvalid) {
			t.Fatalf("cached token at %v: %v", now.Sub(f.baseTime), err)
		}
	}
	// Within the leeway it still passes, from the cache as from the parser.
	if _, err := f.keys.Verify(ctx, good, f.expect(f.baseTime.Add(time.Hour+29*time.Second))); err != nil {
		t.Fatalf("cached token within the leeway: %v", err)
	}
	// The cache is keyed by the expected issuer and audience too.
	if _, err := f.keys.Verify(ctx, good, token.Expect{Issuer: issuer, Audience: "https://elsewhere", Now: func() time.Time { return at }}); !errors.Is(err, token.ErrInvalid) {
		t.Fatalf("cached token, other audience: %v", err)
	}
	// An Expect without an issuer is a caller bug, not a bad token.
	if _, err := f.keys.Verify(ctx, good, token.Expect{Audience: issuer}); err == nil || errors.Is(err, token.ErrInvalid) {
		t.Fatalf("Expect without Issuer: %v", err)
	}
}

func TestTokenHeader(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok, err := f.signer.Sign(context.Background(), f.claims(f.baseTime, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := jwt.NewParser().ParseUnverified(tok, &token.Claims{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Header["alg"] != "ES256" || p.Header["typ"] != "JWT" || p.Header["kid"] != token.KeyID(f.v1) || len(p.Header) != 3 {
		t.Fatalf("header %v", p.Header)
	}
	kid := token.KeyID(f.v1)
	if len(kid) != 16 || strings.ContainsAny(kid, "+/=") || kid == token.KeyID(f.v2) || kid != token.KeyID(f.v1) {
		t.Fatalf("KeyID %q", kid)
	}
	c := p.Claims.(*token.Claims)
	if c.Account != "sa" || c.Key != "k1" || c.Subject != "sa@p.serviceaccount.test" {
		t.Fatalf("claims %+v", c)
	}
}

func TestConcurrentFirstVerifyFetchesOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	tok, err := f.signer.Sign(ctx, f.claims(f.baseTime, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ks := token.NewKeySet(f.client, f.v1, f.v2)
	token.NoCache(ks)
	before := f.emu.CryptoCalls()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Go(func() {
			if _, err := ks.Verify(ctx, tok, f.expect(f.baseTime)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := f.emu.CryptoCalls() - before; n != 1 {
		t.Fatalf("64 concurrent first verifications made %d KMS calls, want 1", n)
	}
}

func TestVerifiedCacheIsBounded(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	ks := token.NewKeySet(f.client, f.v1)
	token.SetCacheSize(ks, 4)
	for i := range 10 {
		c := f.claims(f.baseTime, time.Hour)
		c.ID = string(rune('a' + i))
		tok, err := f.signer.Sign(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ks.Verify(ctx, tok, f.expect(f.baseTime)); err != nil {
			t.Fatal(err)
		}
		// The same token again: a cache hit (or a fresh check) still passes.
		if _, err := ks.Verify(ctx, tok, f.expect(f.baseTime)); err != nil {
			t.Fatal(err)
		}
		if n := token.CachedTokens(ks); n > 4 {
			t.Fatalf("cache holds %d tokens, bound 4", n)
		}
	}
}

func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	ctx := context.Background()
	good, err := fx.signer.Sign(ctx, fx.claims(fx.baseTime, time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("")
	f.Add("a.b.c")
	f.Add(good[:len(good)-2])
	f.Add(nonCanonical(good))
	f.Add(good + ".")
	f.Add(strings.Replace(good, ".", "..", 1))
	f.Fuzz(func(t *testing.T, tok string) {
		if _, err := fx.keys.Verify(ctx, tok, fx.expect(fx.baseTime)); err == nil && tok != good {
			t.Fatalf("accepted a token the signer did not make: %q", tok)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	f := newFixture(b)
	ctx := context.Background()
	toks := make([]string, 256)
	for i := range toks {
		c := f.claims(f.baseTime, time.Hour)
		c.ID = string(rune('a' + i%26))
		c.Subject += string(rune(i))
		var err error
		if toks[i], err = f.signer.Sign(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	want := f.expect(f.baseTime.Add(time.Minute))
	if _, err := f.keys.Verify(ctx, toks[0], want); err != nil {
		b.Fatal(err)
	}
	b.Run("cached", func(b *testing.B) {
		calls := f.emu.CryptoCalls()
		for b.Loop() {
			if _, err := f.keys.Verify(ctx, toks[0], want); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(f.emu.CryptoCalls()-calls), "kms-calls")
	})
	b.Run("cold", func(b *testing.B) {
		// Without the verified-token cache every iteration parses the
		// token and checks its signature.
		ks := token.NewKeySet(f.client, f.v1)
		token.NoCache(ks)
		if _, err := ks.JWKS(ctx); err != nil { // warm the public key
			b.Fatal(err)
		}
		calls := f.emu.CryptoCalls()
		i := 0
		for b.Loop() {
			if _, err := ks.Verify(ctx, toks[i%len(toks)], want); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(f.emu.CryptoCalls()-calls), "kms-calls")
	})
}

func BenchmarkSign(b *testing.B) {
	f := newFixture(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := f.signer.Sign(ctx, f.claims(f.baseTime, time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
}
