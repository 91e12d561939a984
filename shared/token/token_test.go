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
	for _, tc := range []struct {
		name string
		tok  string
		now  time.Time
	}{
		{"expired", good, f.baseTime.Add(time.Hour + time.Minute)},
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
			_, err := f.keys.Verify(ctx, tc.tok, f.expect(tc.now))
			if !errors.Is(err, token.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if tc.tok != "" && len(tc.tok) > 20 && strings.Contains(err.Error(), tc.tok) {
				t.Fatal("the error quotes the token")
			}
		})
	}
	// Verified while valid, the token is still refused once it expires.
	if _, err := f.keys.Verify(ctx, good, f.expect(at)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.keys.Verify(ctx, good, f.expect(f.baseTime.Add(2*time.Hour))); !errors.Is(err, token.ErrInvalid) {
		t.Fatalf("cached token after expiry: %v", err)
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
	b.Run("signature", func(b *testing.B) {
		// A fresh key set per batch of tokens defeats the verified-token
		// cache, so each iteration checks a signature.
		ks := token.NewKeySet(f.client, f.v1)
		if _, err := ks.JWKS(ctx); err != nil {
			b.Fatal(err)
		}
		calls := f.emu.CryptoCalls()
		i := 0
		for b.Loop() {
			if i%len(toks) == 0 {
				b.StopTimer()
				ks = token.NewKeySet(f.client, f.v1)
				_, _ = ks.JWKS(ctx)
				calls = f.emu.CryptoCalls()
				b.StartTimer()
			}
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
