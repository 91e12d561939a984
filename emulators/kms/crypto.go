package kms

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"hash/crc32"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const (
	maxPlaintext = 64 << 10
	maxAAD       = 64 << 10
	// The ciphertext names the key version it was made with, which is how
	// the real service decrypts across rotations, and is bound to the
	// CryptoKey's name through the GCM associated data.
	ctMagic   = 0xE7
	ctHeader  = 1 + 4 // magic, version number
	nonceSize = 12
	tagSize   = 16
)

func crc(b []byte) *wrapperspb.Int64Value {
	return wrapperspb.Int64(int64(crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))))
}

// checkCRC enforces an optional client checksum as the real service does.
func checkCRC(field string, b []byte, sum *wrapperspb.Int64Value) error {
	if sum != nil && sum.GetValue() != int64(crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))) {
		return status.Errorf(codes.InvalidArgument, "The checksum in field %s did not match the data in field %s.", field+"_crc32c", field)
	}
	return nil
}

func gcmAAD(keyName string, aad []byte) []byte {
	out := make([]byte, 0, len(keyName)+1+len(aad))
	return append(append(append(out, keyName...), 0), aad...)
}

// usable refuses a version that cannot serve a crypto operation.
func usable(v *keyVersion, name string) error {
	if v.State != kmspb.CryptoKeyVersion_ENABLED {
		return status.Errorf(codes.FailedPrecondition, "%s is not enabled, current state is: %v.", name, v.State)
	}
	return nil
}

// Encrypt seals with the named version, or the key's primary.
func (s *Server) Encrypt(_ context.Context, req *kmspb.EncryptRequest) (*kmspb.EncryptResponse, error) {
	s.calls.Add(1)
	if len(req.GetPlaintext()) > maxPlaintext || len(req.GetAdditionalAuthenticatedData()) > maxAAD {
		return nil, status.Errorf(codes.InvalidArgument, "plaintext and additional_authenticated_data are limited to 64 KiB")
	}
	if err := checkCRC("plaintext", req.GetPlaintext(), req.GetPlaintextCrc32C()); err != nil {
		return nil, err
	}
	if err := checkCRC("additional_authenticated_data", req.GetAdditionalAuthenticatedData(), req.GetAdditionalAuthenticatedDataCrc32C()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	keyName, n := req.GetName(), 0
	var k *cryptoKey
	var err error
	if splitOK(req.GetName()) {
		keyName, k, n, err = s.version(req.GetName())
	} else {
		k, err = s.key(req.GetName())
		if err == nil {
			n = k.Primary
		}
	}
	if err != nil {
		return nil, err
	}
	if k.Purpose != kmspb.CryptoKey_ENCRYPT_DECRYPT {
		return nil, status.Errorf(codes.FailedPrecondition, "%s is not an ENCRYPT_DECRYPT key", keyName)
	}
	if n == 0 {
		return nil, status.Errorf(codes.FailedPrecondition, "%s has no primary version", keyName)
	}
	if err := usable(k.Versions[n-1], versionName(keyName, n)); err != nil {
		return nil, err
	}
	gcm, err := newGCM(k.Versions[n-1].Material)
	if err != nil {
		return nil, err
	}
	ct := make([]byte, ctHeader+nonceSize, ctHeader+nonceSize+len(req.GetPlaintext())+tagSize)
	ct[0] = ctMagic
	binary.BigEndian.PutUint32(ct[1:], uint32(n))
	if _, err := rand.Read(ct[ctHeader:]); err != nil {
		return nil, status.Errorf(codes.Internal, "nonce")
	}
	ct = gcm.Seal(ct, ct[ctHeader:], req.GetPlaintext(), gcmAAD(keyName, req.GetAdditionalAuthenticatedData()))
	return &kmspb.EncryptResponse{
		Name:                    versionName(keyName, n),
		Ciphertext:              ct,
		CiphertextCrc32C:        crc(ct),
		VerifiedPlaintextCrc32C: req.GetPlaintextCrc32C() != nil,
		VerifiedAdditionalAuthenticatedDataCrc32C: req.GetAdditionalAuthenticatedDataCrc32C() != nil,
		ProtectionLevel: kmspb.ProtectionLevel_SOFTWARE,
	}, nil
}

func splitOK(name string) bool { _, _, ok := splitVersion(name); return ok }

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "key material")
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "key material")
	}
	return g, nil
}

// Decrypt opens a ciphertext made by Encrypt under the same CryptoKey.
func (s *Server) Decrypt(_ context.Context, req *kmspb.DecryptRequest) (*kmspb.DecryptResponse, error) {
	s.calls.Add(1)
	ct := req.GetCiphertext()
	if err := checkCRC("ciphertext", ct, req.GetCiphertextCrc32C()); err != nil {
		return nil, err
	}
	if err := checkCRC("additional_authenticated_data", req.GetAdditionalAuthenticatedData(), req.GetAdditionalAuthenticatedDataCrc32C()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.key(req.GetName())
	if err != nil {
		return nil, err
	}
	if k.Purpose != kmspb.CryptoKey_ENCRYPT_DECRYPT {
		return nil, status.Errorf(codes.FailedPrecondition, "%s is not an ENCRYPT_DECRYPT key", req.GetName())
	}
	// Every malformed or foreign ciphertext gets the same answer as the
	// real service's, which never says what was wrong with the bytes.
	bad := status.Error(codes.InvalidArgument, "Decryption failed: the ciphertext is invalid.")
	if len(ct) < ctHeader+nonceSize+tagSize || ct[0] != ctMagic {
		return nil, bad
	}
	n := int(binary.BigEndian.Uint32(ct[1:]))
	if n < 1 || n > len(k.Versions) {
		return nil, bad
	}
	if err := usable(k.Versions[n-1], versionName(req.GetName(), n)); err != nil {
		return nil, err
	}
	gcm, err := newGCM(k.Versions[n-1].Material)
	if err != nil {
		return nil, err
	}
	pt, err := gcm.Open(nil, ct[ctHeader:ctHeader+nonceSize], ct[ctHeader+nonceSize:], gcmAAD(req.GetName(), req.GetAdditionalAuthenticatedData()))
	if err != nil {
		return nil, bad
	}
	return &kmspb.DecryptResponse{
		Plaintext:       pt,
		PlaintextCrc32C: crc(pt),
		UsedPrimary:     n == k.Primary,
		ProtectionLevel: kmspb.ProtectionLevel_SOFTWARE,
	}, nil
}

// signer returns the private key of an enabled EC signing version.
func (s *Server) signer(name string) (*ecdsa.PrivateKey, *cryptoKey, error) {
	_, k, n, err := s.version(name)
	if err != nil {
		return nil, nil, err
	}
	if k.Purpose != kmspb.CryptoKey_ASYMMETRIC_SIGN {
		return nil, nil, status.Errorf(codes.FailedPrecondition, "%s is not an ASYMMETRIC_SIGN key version", name)
	}
	if err := usable(k.Versions[n-1], name); err != nil {
		return nil, nil, err
	}
	priv, err := x509.ParsePKCS8PrivateKey(k.Versions[n-1].Material)
	if err != nil {
		return nil, nil, status.Errorf(codes.Internal, "key material")
	}
	return priv.(*ecdsa.PrivateKey), k, nil
}

// AsymmetricSign signs a SHA-256 digest with ECDSA P-256 (ASN.1 DER), as
// EC_SIGN_P256_SHA256 does.
func (s *Server) AsymmetricSign(_ context.Context, req *kmspb.AsymmetricSignRequest) (*kmspb.AsymmetricSignResponse, error) {
	s.calls.Add(1)
	d := req.GetDigest().GetSha256()
	if len(d) != 32 {
		return nil, status.Errorf(codes.InvalidArgument, "EC_SIGN_P256_SHA256 needs a 32-byte digest.sha256")
	}
	if err := checkCRC("digest", d, req.GetDigestCrc32C()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	priv, _, err := s.signer(req.GetName())
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	sig, err := ecdsa.SignASN1(rand.Reader, priv, d)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "sign")
	}
	return &kmspb.AsymmetricSignResponse{
		Signature: sig, SignatureCrc32C: crc(sig), VerifiedDigestCrc32C: req.GetDigestCrc32C() != nil,
		Name: req.GetName(), ProtectionLevel: kmspb.ProtectionLevel_SOFTWARE,
	}, nil
}

// GetPublicKey returns a signing version's public key as PEM.
func (s *Server) GetPublicKey(_ context.Context, req *kmspb.GetPublicKeyRequest) (*kmspb.PublicKey, error) {
	s.calls.Add(1)
	s.mu.Lock()
	priv, k, err := s.signer(req.GetName())
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "public key")
	}
	p := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	return &kmspb.PublicKey{
		Pem: p, PemCrc32C: crc([]byte(p)), Algorithm: k.Algorithm, Name: req.GetName(),
		ProtectionLevel: kmspb.ProtectionLevel_SOFTWARE,
	}, nil
}
