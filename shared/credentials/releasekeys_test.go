package credentials_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"testing"

	"github.com/sealedsense/sealedsense/shared/credentials"
)

func TestTrustedReleaseKeys(t *testing.T) {
	p256 := func() []byte {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384der, _ := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	edDer, _ := x509.MarshalPKIXPublicKey(edPub)
	a, b := p256(), p256()
	tests := []struct {
		name string
		keys []credentials.ReleaseKey
		want int // keys trusted; -1: refused
	}{
		{"none", nil, 0},
		{"two versions", []credentials.ReleaseKey{{Version: 1, PKIX: a}, {Version: 2, PKIX: b}}, 2},
		{"version zero", []credentials.ReleaseKey{{Version: 0, PKIX: a}}, -1},
		{"version repeated", []credentials.ReleaseKey{{Version: 1, PKIX: a}, {Version: 1, PKIX: b}}, -1},
		{"P-384", []credentials.ReleaseKey{{Version: 1, PKIX: p384der}}, -1},
		{"Ed25519", []credentials.ReleaseKey{{Version: 1, PKIX: edDer}}, -1},
		{"garbage", []credentials.ReleaseKey{{Version: 1, PKIX: []byte("not a key")}}, -1},
		{"too many", make([]credentials.ReleaseKey, 9), -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := credentials.TrustedReleaseKeys(tc.keys)
			if tc.want < 0 {
				if err == nil {
					t.Fatalf("trusted %d keys; want a refusal", len(got))
				}
				return
			}
			if err != nil || len(got) != tc.want {
				t.Fatalf("got %d keys, %v; want %d", len(got), err, tc.want)
			}
		})
	}
}
