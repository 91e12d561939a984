package custody_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	kmsapi "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/googleapis/gax-go/v2"

	"github.com/sealedsense/sealedsense/emulators/kms"
	"github.com/sealedsense/sealedsense/shared/custody"
)

// client is the real KMS client pointed at the in-process emulator that
// TestMain starts once for this test binary.
var client *kmsapi.KeyManagementClient

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx := context.Background()
	emu, err := kms.Start(ctx, "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "custody tests need the KMS emulator:", err)
		return 1
	}
	defer emu.Close()
	os.Setenv(custody.EmulatorHostEnv, emu.Addr())
	client, err = custody.NewKMSClient(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kms client:", err)
		return 1
	}
	defer client.Close()
	return m.Run()
}

var keySeq atomic.Int64

// newKey creates a fresh symmetric CryptoKey, so parallel tests never share
// key state.
func newKey(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	n := keySeq.Add(1)
	ring, err := client.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{
		Parent:    "projects/custody-test/locations/europe",
		KeyRingId: fmt.Sprintf("ring-%d", n),
	})
	if err != nil {
		t.Fatalf("create key ring: %v", err)
	}
	key, err := client.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{
		Parent:      ring.GetName(),
		CryptoKeyId: "wrap",
		CryptoKey: &kmspb.CryptoKey{
			Purpose:         kmspb.CryptoKey_ENCRYPT_DECRYPT,
			VersionTemplate: &kmspb.CryptoKeyVersionTemplate{Algorithm: kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION},
		},
	})
	if err != nil {
		t.Fatalf("create crypto key: %v", err)
	}
	return key.GetName()
}

// rotate makes a new primary version, as the scheduled rotation does.
func rotate(t *testing.T, keyName string) {
	t.Helper()
	ctx := context.Background()
	v, err := client.CreateCryptoKeyVersion(ctx, &kmspb.CreateCryptoKeyVersionRequest{Parent: keyName})
	if err != nil {
		t.Fatalf("create version: %v", err)
	}
	if _, err := client.UpdateCryptoKeyPrimaryVersion(ctx, &kmspb.UpdateCryptoKeyPrimaryVersionRequest{
		Name: keyName, CryptoKeyVersionId: lastSegment(v.GetName()),
	}); err != nil {
		t.Fatalf("set primary: %v", err)
	}
}

func lastSegment(name string) string {
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '/' {
			return name[i+1:]
		}
	}
	return name
}

// countingKMS counts the calls that reach the real client, and can corrupt
// responses the way a faulty network path would.
type countingKMS struct {
	next     custody.KMS
	encrypts atomic.Int64
	decrypts atomic.Int64
	// corrupt, while positive, flips a bit of that many responses.
	corrupt atomic.Int64
}

func (c *countingKMS) Encrypt(ctx context.Context, req *kmspb.EncryptRequest, opts ...gax.CallOption) (*kmspb.EncryptResponse, error) {
	c.encrypts.Add(1)
	resp, err := c.next.Encrypt(ctx, req, opts...)
	if err == nil && c.corrupt.Add(-1) >= 0 {
		resp.Ciphertext[len(resp.Ciphertext)-1] ^= 1
	}
	return resp, err
}

func (c *countingKMS) Decrypt(ctx context.Context, req *kmspb.DecryptRequest, opts ...gax.CallOption) (*kmspb.DecryptResponse, error) {
	c.decrypts.Add(1)
	resp, err := c.next.Decrypt(ctx, req, opts...)
	if err == nil && c.corrupt.Add(-1) >= 0 && len(resp.Plaintext) > 0 {
		resp.Plaintext[0] ^= 1
	}
	return resp, err
}
