package kms_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	kmsapi "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sealedsense/sealedsense/emulators/kms"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) *wrapperspb.Int64Value {
	return wrapperspb.Int64(int64(crc32.Checksum(b, castagnoli)))
}

// client starts an emulator and returns the real KMS client pointed at it,
// built exactly as production builds it with KMS_EMULATOR_HOST.
func client(t *testing.T, opts ...kms.Option) *kmsapi.KeyManagementClient {
	t.Helper()
	emu, err := kms.Start(context.Background(), "127.0.0.1:0", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	return dial(t, emu.Addr())
}

func dial(t *testing.T, addr string) *kmsapi.KeyManagementClient {
	t.Helper()
	c, err := kmsapi.NewKeyManagementClient(context.Background(),
		option.WithEndpoint(addr), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

const loc = "projects/p/locations/europe"

func setup(t *testing.T, c *kmsapi.KeyManagementClient) (sym, sign string) {
	t.Helper()
	ctx := context.Background()
	ring, err := c.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{Parent: loc, KeyRingId: "ring"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{Parent: ring.GetName(), CryptoKeyId: "sym",
		CryptoKey: &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ENCRYPT_DECRYPT}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{Parent: ring.GetName(), CryptoKeyId: "sign",
		CryptoKey: &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ASYMMETRIC_SIGN,
			VersionTemplate: &kmspb.CryptoKeyVersionTemplate{Algorithm: kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256}}})
	if err != nil {
		t.Fatal(err)
	}
	return s.GetName(), a.GetName()
}

func encrypt(t *testing.T, c *kmsapi.KeyManagementClient, key string, pt, aad []byte) *kmspb.EncryptResponse {
	t.Helper()
	resp, err := c.Encrypt(context.Background(), &kmspb.EncryptRequest{Name: key, Plaintext: pt, PlaintextCrc32C: crc(pt),
		AdditionalAuthenticatedData: aad, AdditionalAuthenticatedDataCrc32C: crc(aad)})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestConformance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := client(t)
	sym, sign := setup(t, c)
	pt, aad := []byte("a device psk, 32 bytes or so...."), []byte("psk/dev-1")

	enc := encrypt(t, c, sym, pt, aad)
	if !enc.GetVerifiedPlaintextCrc32C() || !enc.GetVerifiedAdditionalAuthenticatedDataCrc32C() {
		t.Fatal("encrypt did not confirm the request checksums")
	}
	if enc.GetCiphertextCrc32C().GetValue() != crc(enc.GetCiphertext()).GetValue() {
		t.Fatal("ciphertext_crc32c is wrong")
	}
	if enc.GetName() != sym+"/cryptoKeyVersions/1" {
		t.Fatalf("encrypt used %s", enc.GetName())
	}
	dec, err := c.Decrypt(ctx, &kmspb.DecryptRequest{Name: sym, Ciphertext: enc.GetCiphertext(), CiphertextCrc32C: crc(enc.GetCiphertext()),
		AdditionalAuthenticatedData: aad})
	if err != nil || string(dec.GetPlaintext()) != string(pt) {
		t.Fatalf("decrypt: %v", err)
	}
	if dec.GetPlaintextCrc32C().GetValue() != crc(pt).GetValue() || !dec.GetUsedPrimary() {
		t.Fatal("decrypt response checksum or used_primary is wrong")
	}

	errCases := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"plaintext crc mismatch", func() error {
			_, err := c.Encrypt(ctx, &kmspb.EncryptRequest{Name: sym, Plaintext: pt, PlaintextCrc32C: wrapperspb.Int64(1)})
			return err
		}, codes.InvalidArgument},
		{"aad crc mismatch", func() error {
			_, err := c.Encrypt(ctx, &kmspb.EncryptRequest{Name: sym, Plaintext: pt, AdditionalAuthenticatedData: aad, AdditionalAuthenticatedDataCrc32C: wrapperspb.Int64(1)})
			return err
		}, codes.InvalidArgument},
		{"ciphertext crc mismatch", func() error {
			_, err := c.Decrypt(ctx, &kmspb.DecryptRequest{Name: sym, Ciphertext: enc.GetCiphertext(), CiphertextCrc32C: wrapperspb.Int64(7), AdditionalAuthenticatedData: aad})
			return err
		}, codes.InvalidArgument},
		{"wrong aad", func() error {
			_, err := c.Decrypt(ctx, &kmspb.DecryptRequest{Name: sym, Ciphertext: enc.GetCiphertext(), AdditionalAuthenticatedData: []byte("psk/dev-2")})
			return err
		}, codes.InvalidArgument},
		{"tampered ciphertext", func() error {
			ct := append([]byte{}, enc.GetCiphertext()...)
			ct[len(ct)-1] ^= 1
			_, err := c.Decrypt(ctx, &kmspb.DecryptRequest{Name: sym, Ciphertext: ct, AdditionalAuthenticatedData: aad})
			return err
		}, codes.InvalidArgument},
		{"missing key", func() error {
			_, err := c.Encrypt(ctx, &kmspb.EncryptRequest{Name: loc + "/keyRings/ring/cryptoKeys/none", Plaintext: pt})
			return err
		}, codes.NotFound},
		{"missing key ring", func() error {
			_, err := c.GetKeyRing(ctx, &kmspb.GetKeyRingRequest{Name: loc + "/keyRings/none"})
			return err
		}, codes.NotFound},
		{"missing version", func() error {
			_, err := c.GetCryptoKeyVersion(ctx, &kmspb.GetCryptoKeyVersionRequest{Name: sym + "/cryptoKeyVersions/9"})
			return err
		}, codes.NotFound},
		{"existing key ring", func() error {
			_, err := c.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{Parent: loc, KeyRingId: "ring"})
			return err
		}, codes.AlreadyExists},
		{"bad id", func() error {
			_, err := c.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{Parent: loc, KeyRingId: "no spaces"})
			return err
		}, codes.InvalidArgument},
		{"encrypt with a signing key", func() error {
			_, err := c.Encrypt(ctx, &kmspb.EncryptRequest{Name: sign, Plaintext: pt})
			return err
		}, codes.FailedPrecondition},
		{"digest crc mismatch", func() error {
			d := sha256.Sum256(pt)
			_, err := c.AsymmetricSign(ctx, &kmspb.AsymmetricSignRequest{Name: sign + "/cryptoKeyVersions/1",
				Digest: &kmspb.Digest{Digest: &kmspb.Digest_Sha256{Sha256: d[:]}}, DigestCrc32C: wrapperspb.Int64(3)})
			return err
		}, codes.InvalidArgument},
		{"short digest", func() error {
			_, err := c.AsymmetricSign(ctx, &kmspb.AsymmetricSignRequest{Name: sign + "/cryptoKeyVersions/1",
				Digest: &kmspb.Digest{Digest: &kmspb.Digest_Sha256{Sha256: []byte{1}}}})
			return err
		}, codes.InvalidArgument},
	}
	for _, tc := range errCases {
		if err := tc.call(); status.Code(err) != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		} else if strings.Contains(err.Error(), string(pt)) {
			t.Errorf("%s: the error quotes the plaintext", tc.name)
		}
	}
}

func TestRotationAndDisable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := client(t)
	sym, _ := setup(t, c)
	old := encrypt(t, c, sym, []byte("v1 secret"), nil)

	v2, err := c.CreateCryptoKeyVersion(ctx, &kmspb.CreateCryptoKeyVersionRequest{Parent: sym})
	if err != nil {
		t.Fatal(err)
	}
	key, err := c.UpdateCryptoKeyPrimaryVersion(ctx, &kmspb.UpdateCryptoKeyPrimaryVersionRequest{Name: sym, CryptoKeyVersionId: "2"})
	if err != nil || key.GetPrimary().GetName() != v2.GetName() {
		t.Fatalf("rotate: %v", err)
	}
	fresh := encrypt(t, c, sym, []byte("v2 secret"), nil)
	if fresh.GetName() != v2.GetName() {
		t.Fatalf("new ciphertext used %s, want the new primary", fresh.GetName())
	}
	dec, err := c.Decrypt(ctx, &kmspb.DecryptRequest{Name: sym, Ciphertext: old.GetCiphertext()})
	if err != nil || string(dec.GetPlaintext()) != "v1 secret" || dec.GetUsedPrimary() {
		t.Fatalf("old ciphertext after rotation: %v", err)
	}

	disable := func(n string, state kmspb.CryptoKeyVersion_CryptoKeyVersionState) {
		t.Helper()
		if _, err := c.UpdateCryptoKeyVersion(ctx, &kmspb.UpdateCryptoKeyVersionRequest{
			CryptoKeyVersion: &kmspb.CryptoKeyVersion{Name: sym + "/cryptoKeyVersions/" + n, State: state},
			UpdateMask:       &fieldmaskpb.FieldMask{Paths: []string{"state"}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	disable("1", kmspb.CryptoKeyVersion_DISABLED)
	if _, err := c.Decrypt(ctx, &kmspb.DecryptRequest{Name: sym, Ciphertext: old.GetCiphertext()}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("decrypt with a disabled version: %v, want FailedPrecondition", err)
	}
	disable("2", kmspb.CryptoKeyVersion_DISABLED)
	if _, err := c.Encrypt(ctx, &kmspb.EncryptRequest{Name: sym, Plaintext: []byte("x")}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("encrypt with a disabled primary: %v, want FailedPrecondition", err)
	}
	disable("1", kmspb.CryptoKeyVersion_ENABLED)
	if _, err := c.Decrypt(ctx, &kmspb.DecryptRequest{Name: sym, Ciphertext: old.GetCiphertext()}); err != nil {
		t.Fatalf("re-enabled version: %v", err)
	}
}

func TestSignatureVerifiesWithPublicKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := client(t)
	_, sign := setup(t, c)
	v := sign + "/cryptoKeyVersions/1"
	pub, err := c.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: v})
	if err != nil {
		t.Fatal(err)
	}
	if pub.GetPemCrc32C().GetValue() != crc([]byte(pub.GetPem())).GetValue() || pub.GetAlgorithm() != kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256 {
		t.Fatal("public key checksum or algorithm is wrong")
	}
	block, _ := pem.Decode([]byte(pub.GetPem()))
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("not a PUBLIC KEY PEM: %q", pub.GetPem())
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("a token to sign"))
	sig, err := c.AsymmetricSign(ctx, &kmspb.AsymmetricSignRequest{Name: v, Digest: &kmspb.Digest{Digest: &kmspb.Digest_Sha256{Sha256: d[:]}}, DigestCrc32C: crc(d[:])})
	if err != nil {
		t.Fatal(err)
	}
	if !sig.GetVerifiedDigestCrc32C() || sig.GetSignatureCrc32C().GetValue() != crc(sig.GetSignature()).GetValue() {
		t.Fatal("signature checksums are wrong")
	}
	if !ecdsa.VerifyASN1(key.(*ecdsa.PublicKey), d[:], sig.GetSignature()) {
		t.Fatal("the signature does not verify with the key from GetPublicKey")
	}
	other := sha256.Sum256([]byte("something else"))
	if ecdsa.VerifyASN1(key.(*ecdsa.PublicKey), other[:], sig.GetSignature()) {
		t.Fatal("the signature verifies for another digest")
	}
}

func TestStateFileSurvivesRestart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "kms.json")
	emu, err := kms.Start(context.Background(), "127.0.0.1:0", kms.WithStateFile(path))
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, emu.Addr())
	sym, _ := setup(t, c)
	ct := encrypt(t, c, sym, []byte("kept"), nil).GetCiphertext()
	emu.Close()
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v mode %v", err, st.Mode().Perm())
	}
	c2 := client(t, kms.WithStateFile(path))
	dec, err := c2.Decrypt(context.Background(), &kmspb.DecryptRequest{Name: sym, Ciphertext: ct})
	if err != nil || string(dec.GetPlaintext()) != "kept" {
		t.Fatalf("after restart: %v", err)
	}
}

func TestBinary(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "kms-emulator")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/kms-emulator").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	n, err := stdout.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(buf[:n]))
	addr, ok := strings.CutPrefix(line, "export KMS_EMULATOR_HOST=")
	if !ok {
		t.Fatalf("readiness line %q", line)
	}
	c := dial(t, addr)
	sym, _ := setup(t, c)
	encrypt(t, c, sym, []byte("x"), nil)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGINT: %v", err)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("no exit after SIGINT")
	}
}

func FuzzDecrypt(f *testing.F) {
	emu, err := kms.Start(context.Background(), "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer emu.Close()
	c, err := kmsapi.NewKeyManagementClient(context.Background(), option.WithEndpoint(emu.Addr()), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		f.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	ring, _ := c.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{Parent: loc, KeyRingId: "f"})
	key, _ := c.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{Parent: ring.GetName(), CryptoKeyId: "k", CryptoKey: &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ENCRYPT_DECRYPT}})
	good, _ := c.Encrypt(ctx, &kmspb.EncryptRequest{Name: key.GetName(), Plaintext: []byte("seed")})
	f.Add(good.GetCiphertext())
	f.Add([]byte{0xE7, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, ct []byte) {
		resp, err := c.Decrypt(ctx, &kmspb.DecryptRequest{Name: key.GetName(), Ciphertext: ct})
		if err == nil && string(resp.GetPlaintext()) != "seed" {
			t.Fatal("decrypted bytes it never encrypted")
		}
		if err != nil && status.Code(err) != codes.InvalidArgument {
			t.Fatalf("arbitrary ciphertext gave %v, want InvalidArgument", err)
		}
	})
}
