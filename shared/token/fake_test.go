package token_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"hash/crc32"
	"math/big"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/golang-jwt/jwt/v5"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sealedsense/sealedsense/shared/token"
)

const fakeVersion = "projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1"

func crc(b []byte) *wrapperspb.Int64Value {
	return wrapperspb.Int64(int64(crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))))
}

// fakeKMS signs with a local key; its hooks corrupt the answers.
type fakeKMS struct {
	priv     *ecdsa.PrivateKey
	pub      any // the public key GetPublicKey serves; nil: priv's
	calls    atomic.Int64
	sign     func(n int64, resp *kmspb.AsymmetricSignResponse) // n: 1-based call number
	pubHook  func(n int64, resp *kmspb.PublicKey)
	pubError error
}

func newFakeKMS(t testing.TB) *fakeKMS {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeKMS{priv: priv}
}

func (f *fakeKMS) AsymmetricSign(_ context.Context, req *kmspb.AsymmetricSignRequest, _ ...gax.CallOption) (*kmspb.AsymmetricSignResponse, error) {
	n := f.calls.Add(1)
	d := req.GetDigest().GetSha256()
	if req.GetDigestCrc32C().GetValue() != crc(d).GetValue() {
		return nil, status.Error(codes.InvalidArgument, "digest crc")
	}
	sig, err := ecdsa.SignASN1(rand.Reader, f.priv, d)
	if err != nil {
		return nil, err
	}
	resp := &kmspb.AsymmetricSignResponse{Signature: sig, SignatureCrc32C: crc(sig), VerifiedDigestCrc32C: true, Name: req.GetName()}
	if f.sign != nil {
		f.sign(n, resp)
	}
	return resp, nil
}

func (f *fakeKMS) GetPublicKey(_ context.Context, req *kmspb.GetPublicKeyRequest, _ ...gax.CallOption) (*kmspb.PublicKey, error) {
	n := f.calls.Add(1)
	if f.pubError != nil {
		return nil, f.pubError
	}
	pub := f.pub
	if pub == nil {
		pub = &f.priv.PublicKey
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	p := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	resp := &kmspb.PublicKey{Pem: p, PemCrc32C: crc([]byte(p)), Name: req.GetName(), Algorithm: kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256}
	if f.pubHook != nil {
		f.pubHook(n, resp)
	}
	return resp, nil
}

func fakeClaims(now time.Time) token.Claims {
	return token.Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: issuer, Audience: jwt.ClaimStrings{issuer},
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}, Account: "sa", Key: "k1"}
}

// setSig replaces the response's signature, with a matching checksum.
func setSig(resp *kmspb.AsymmetricSignResponse, sig []byte) {
	resp.Signature, resp.SignatureCrc32C = sig, crc(sig)
}

// TestSignaturePadding signs until R or S is shorter than 32 bytes, which
// JOSE needs left-padded, and checks every token with the stock verifier.
func TestSignaturePadding(t *testing.T) {
	t.Parallel()
	k := newFakeKMS(t)
	s := token.NewSigner(k, fakeVersion)
	now := time.Now()
	padded := 0
	for i := 0; i < 3000 && padded < 3; i++ {
		tok, err := s.Sign(context.Background(), fakeClaims(now))
		if err != nil {
			t.Fatal(err)
		}
		sig, err := base64.RawURLEncoding.DecodeString(tok[strings.LastIndex(tok, ".")+1:])
		if err != nil || len(sig) != 64 {
			t.Fatalf("signature of %d bytes: %v", len(sig), err)
		}
		if sig[0] == 0 || sig[32] == 0 {
			padded++
		}
		if _, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return &k.priv.PublicKey, nil },
			jwt.WithValidMethods([]string{"ES256"}), jwt.WithTimeFunc(func() time.Time { return now })); err != nil {
			t.Fatalf("token %d does not verify with stock ES256: %v", i, err)
		}
	}
	if padded == 0 {
		t.Fatal("no signature needed padding in 3000 tries")
	}
}

func TestSignIntegrity(t *testing.T) {
	t.Parallel()
	derOf := func(r, s *big.Int) []byte {
		b, err := asn1.Marshal(struct{ R, S *big.Int }{r, s})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	big33 := new(big.Int).Lsh(big.NewInt(1), 260)
	for _, tc := range []struct {
		name      string
		hook      func(n int64, resp *kmspb.AsymmetricSignResponse)
		ok        bool
		calls     int64
		integrity bool
	}{
		{"clean", nil, true, 1, false},
		{"one corrupt answer is retried", func(n int64, r *kmspb.AsymmetricSignResponse) {
			if n == 1 {
				r.Signature = append([]byte{}, r.Signature...)
				r.Signature[5] ^= 1
			}
		}, true, 2, false},
		{"signature checksum always wrong", func(_ int64, r *kmspb.AsymmetricSignResponse) { r.SignatureCrc32C = wrapperspb.Int64(1) }, false, 3, true},
		{"no signature checksum", func(_ int64, r *kmspb.AsymmetricSignResponse) { r.SignatureCrc32C = nil }, false, 3, true},
		{"digest checksum not verified", func(_ int64, r *kmspb.AsymmetricSignResponse) { r.VerifiedDigestCrc32C = false }, false, 3, true},
		{"another version answered", func(_ int64, r *kmspb.AsymmetricSignResponse) { r.Name = fakeVersion + "0" }, false, 3, true},
		{"not DER", func(_ int64, r *kmspb.AsymmetricSignResponse) { setSig(r, []byte("not der")) }, false, 1, false},
		{"trailing bytes", func(_ int64, r *kmspb.AsymmetricSignResponse) { setSig(r, append(append([]byte{}, r.Signature...), 0)) }, false, 1, false},
		{"R over 32 bytes", func(_ int64, r *kmspb.AsymmetricSignResponse) { setSig(r, derOf(big33, big.NewInt(1))) }, false, 1, false},
		{"S over 32 bytes", func(_ int64, r *kmspb.AsymmetricSignResponse) { setSig(r, derOf(big.NewInt(1), big33)) }, false, 1, false},
		{"negative R", func(_ int64, r *kmspb.AsymmetricSignResponse) { setSig(r, derOf(big.NewInt(-1), big.NewInt(1))) }, false, 1, false},
		{"zero S", func(_ int64, r *kmspb.AsymmetricSignResponse) { setSig(r, derOf(big.NewInt(1), big.NewInt(0))) }, false, 1, false},
		{"empty", func(_ int64, r *kmspb.AsymmetricSignResponse) { setSig(r, nil) }, false, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k := newFakeKMS(t)
			k.sign = tc.hook
			tok, err := token.NewSigner(k, fakeVersion).Sign(context.Background(), fakeClaims(time.Now()))
			if (err == nil) != tc.ok {
				t.Fatalf("Sign: %v", err)
			}
			if n := k.calls.Load(); n != tc.calls {
				t.Fatalf("%d KMS calls, want %d", n, tc.calls)
			}
			if errors.Is(err, token.ErrIntegrity) != tc.integrity {
				t.Fatalf("ErrIntegrity = %v: %v", !tc.integrity, err)
			}
			if tc.ok {
				if _, err := token.NewKeySet(k, fakeVersion).Verify(context.Background(), tok, token.Expect{Issuer: issuer, Audience: issuer}); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestPublicKeyIntegrity(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		setup     func(k *fakeKMS)
		ok        bool
		calls     int64 // GetPublicKey calls
		integrity bool
	}{
		{"clean", func(*fakeKMS) {}, true, 1, false},
		{"one corrupt answer is retried", func(k *fakeKMS) {
			k.pubHook = func(n int64, r *kmspb.PublicKey) {
				if n == 2 { // call 1 is the Sign
					r.Pem = strings.Replace(r.Pem, "A", "B", 1)
				}
			}
		}, true, 2, false},
		{"pem checksum always wrong", func(k *fakeKMS) { k.pubHook = func(_ int64, r *kmspb.PublicKey) { r.PemCrc32C = wrapperspb.Int64(1) } }, false, 3, true},
		{"no pem checksum", func(k *fakeKMS) { k.pubHook = func(_ int64, r *kmspb.PublicKey) { r.PemCrc32C = nil } }, false, 3, true},
		{"another version answered", func(k *fakeKMS) { k.pubHook = func(_ int64, r *kmspb.PublicKey) { r.Name = "x" } }, false, 3, true},
		{"another algorithm", func(k *fakeKMS) {
			k.pubHook = func(_ int64, r *kmspb.PublicKey) { r.Algorithm = kmspb.CryptoKeyVersion_EC_SIGN_P384_SHA384 }
		}, false, 1, false},
		{"not PEM", func(k *fakeKMS) {
			k.pubHook = func(_ int64, r *kmspb.PublicKey) { r.Pem = "junk"; r.PemCrc32C = crc([]byte(r.Pem)) }
		}, false, 1, false},
		{"RSA key", func(k *fakeKMS) { k.pub = &rsaKey.PublicKey }, false, 1, false},
		{"P-384 key", func(k *fakeKMS) { k.pub = &p384.PublicKey }, false, 1, false},
		{"KMS down", func(k *fakeKMS) { k.pubError = status.Error(codes.Unavailable, "down") }, false, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k := newFakeKMS(t)
			tc.setup(k)
			ctx := context.Background()
			tok, err := token.NewSigner(k, fakeVersion).Sign(ctx, fakeClaims(time.Now()))
			if err != nil {
				t.Fatal(err)
			}
			_, err = token.NewKeySet(k, fakeVersion).Verify(ctx, tok, token.Expect{Issuer: issuer, Audience: issuer})
			if (err == nil) != tc.ok {
				t.Fatalf("Verify: %v", err)
			}
			if n := k.calls.Load() - 1; n != tc.calls {
				t.Fatalf("%d GetPublicKey calls, want %d", n, tc.calls)
			}
			// A KMS fault is not the token's: the caller answers 503, not 401.
			if err != nil && errors.Is(err, token.ErrInvalid) {
				t.Fatalf("a KMS fault reported as ErrInvalid: %v", err)
			}
			if errors.Is(err, token.ErrIntegrity) != tc.integrity {
				t.Fatalf("ErrIntegrity = %v: %v", !tc.integrity, err)
			}
			if err != nil && strings.Contains(err.Error(), tok) {
				t.Fatal("the error quotes the token")
			}
		})
	}
}
