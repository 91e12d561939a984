package registry

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"testing"
)

func TestReleaseKeyVersion(t *testing.T) {
	const key = "projects/p/locations/europe/keyRings/r/cryptoKeys/release-signing"
	tests := []struct {
		name string
		want uint32 // 0: refused
	}{
		{key + "/cryptoKeyVersions/1", 1},
		{key + "/cryptoKeyVersions/42", 42},
		{key + "/cryptoKeyVersions/4294967295", 4294967295},
		{key + "/cryptoKeyVersions/4294967296", 0},
		{key + "/cryptoKeyVersions/0", 0},
		{key + "/cryptoKeyVersions/01", 0},
		{key + "/cryptoKeyVersions/+1", 0},
		{key + "/cryptoKeyVersions/", 0},
		{key + "/cryptoKeyVersions/1/x", 0},
		{key + "-old/cryptoKeyVersions/1", 0},
		{"projects/p/locations/europe/keyRings/r/cryptoKeys/signing/cryptoKeyVersions/1", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := releaseKeyVersion(key, tc.name)
			if got != tc.want || (err == nil) != (tc.want != 0) {
				t.Fatalf("releaseKeyVersion(%q) = %d, %v; want %d", tc.name, got, err, tc.want)
			}
		})
	}
}

func TestPKIXFromPEM(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKIXPublicKey(pub)
	block := func(typ string, b []byte) string { return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b})) }
	tests := []struct {
		name, pem string
		want      []byte // nil: refused
	}{
		{"P-256 public key", block("PUBLIC KEY", der), der},
		{"trailing newlines", block("PUBLIC KEY", der) + "\n\n", der},
		// Which curve a device accepts is credentials.TrustedReleaseKeys' call.
		{"Ed25519 public key", block("PUBLIC KEY", edDER), edDER},
		{"empty", "", nil},
		{"not PEM", "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE", nil},
		{"private key block", block("PRIVATE KEY", der), nil},
		{"two blocks", block("PUBLIC KEY", der) + block("PUBLIC KEY", der), nil},
		{"garbage DER", block("PUBLIC KEY", []byte("not a key")), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pkixFromPEM(tc.pem)
			if !bytes.Equal(got, tc.want) || (err == nil) != (tc.want != nil) {
				t.Fatalf("pkixFromPEM = %x, %v; want %x", got, err, tc.want)
			}
		})
	}
}
