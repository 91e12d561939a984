package token_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/token"
)

func TestCertificates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k := newFakeKMS(t)
	s := token.NewSigner(k, fakeVersion)
	ks := token.NewKeySet(k, fakeVersion)
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := token.PublicJWK("dk-1", &priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	before := k.calls.Load()
	cert, err := s.Certify(ctx, issuer, jwk, now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if n := k.calls.Load() - before; n != 1 {
		t.Fatalf("certifying made %d KMS calls, want 1", n)
	}
	c, err := ks.VerifyCert(ctx, cert, issuer)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := c.Key.PublicKey()
	if err != nil || !pub.Equal(&priv.PublicKey) {
		t.Fatalf("certified key differs: %v", err)
	}
	access, err := s.Sign(ctx, fakeClaims(now))
	if err != nil {
		t.Fatal(err)
	}
	other := newFakeKMS(t)
	forged, err := token.NewSigner(other, fakeVersion).Certify(ctx, issuer, jwk, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bad := jwk
	bad.X = bad.Y
	badKey, err := s.Certify(ctx, issuer, bad, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, cert, issuer string
	}{
		{"another issuer", cert, "https://elsewhere.example"},
		{"an access token", access, issuer},
		{"signed by another key", forged, issuer},
		{"a point off the curve", badKey, issuer},
		{"garbage", "a.b.c", issuer},
	} {
		if _, err := ks.VerifyCert(ctx, tc.cert, tc.issuer); !errors.Is(err, token.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", tc.name, err)
		}
	}
	// And a certificate is no access token.
	if _, err := ks.Verify(ctx, cert, token.Expect{Issuer: issuer, Audience: issuer}); !errors.Is(err, token.ErrInvalid) {
		t.Fatalf("a certificate passed as an access token: %v", err)
	}
	if _, err := s.Certify(ctx, issuer, jwk, now, 48*time.Hour); err == nil {
		t.Fatal("a 48 h certificate was signed")
	}
}
