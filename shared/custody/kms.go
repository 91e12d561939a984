package custody

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"strings"

	kms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// EmulatorHostEnv names the variable that points the KMS client at our
// emulator, in the same way FIRESTORE_EMULATOR_HOST does for Firestore.
const EmulatorHostEnv = "KMS_EMULATOR_HOST"

// NewKMSClient returns the real Cloud KMS client. When KMS_EMULATOR_HOST is
// set it talks plaintext gRPC to that address without credentials; otherwise
// it uses Application Default Credentials like every Google client.
func NewKMSClient(ctx context.Context, opts ...option.ClientOption) (*kms.KeyManagementClient, error) {
	if host := os.Getenv(EmulatorHostEnv); host != "" {
		opts = append([]option.ClientOption{
			option.WithEndpoint(host),
			option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		}, opts...)
	}
	c, err := kms.NewKeyManagementClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("custody: kms client: %w", err)
	}
	return c, nil
}

// KMS is the part of the Cloud KMS client that wrapping needs.
type KMS interface {
	Encrypt(ctx context.Context, req *kmspb.EncryptRequest, opts ...gax.CallOption) (*kmspb.EncryptResponse, error)
	Decrypt(ctx context.Context, req *kmspb.DecryptRequest, opts ...gax.CallOption) (*kmspb.DecryptResponse, error)
}

// ErrIntegrity means a KMS request or response failed its CRC32C check, or
// KMS did not confirm that it verified ours. Google's guidance is to discard
// the response and retry a bounded number of times; Wrap and Unwrap do.
var ErrIntegrity = errors.New("custody: kms integrity check failed")

// integrityAttempts bounds the retries on a corrupted exchange: corruption in
// transit is rare and transient, a persistent mismatch is a fault to surface.
const integrityAttempts = 3

func crc32c(b []byte) int64 { return int64(crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))) }

// Wrapper wraps and unwraps keys with one KMS CryptoKey.
type Wrapper struct {
	kms KMS
	key string
}

// NewWrapper returns a Wrapper for the CryptoKey name
// projects/P/locations/L/keyRings/R/cryptoKeys/K. Encryption uses the key's
// primary version; decryption works for every enabled version, so rotating
// the key does not strand what was wrapped before.
func NewWrapper(client KMS, keyName string) *Wrapper {
	return &Wrapper{kms: client, key: keyName}
}

// KeyName is the CryptoKey this Wrapper uses.
func (w *Wrapper) KeyName() string { return w.key }

// Wrap encrypts plaintext under the CryptoKey. aad binds the ciphertext to
// its purpose (for example the device it belongs to), so a wrapped key copied
// onto another record does not unwrap there.
func (w *Wrapper) Wrap(ctx context.Context, plaintext Secret, aad []byte) ([]byte, error) {
	ct, _, err := w.WrapVersion(ctx, plaintext, aad)
	return ct, err
}

// WrapVersion is Wrap that also names the CryptoKeyVersion that wrapped
// (KMS's answer, checked to belong to the CryptoKey), for records such as
// a backup's manifest that must say which version they depend on.
func (w *Wrapper) WrapVersion(ctx context.Context, plaintext Secret, aad []byte) (ciphertext []byte, version string, err error) {
	req := &kmspb.EncryptRequest{
		Name:                              w.key,
		Plaintext:                         plaintext,
		PlaintextCrc32C:                   wrapperspb.Int64(crc32c(plaintext)),
		AdditionalAuthenticatedData:       aad,
		AdditionalAuthenticatedDataCrc32C: wrapperspb.Int64(crc32c(aad)),
	}
	var lastErr error
	for range integrityAttempts {
		resp, err := w.kms.Encrypt(ctx, req)
		if err != nil {
			// The KMS error describes the request, never the plaintext.
			return nil, "", fmt.Errorf("custody: wrap with %s: %w", w.key, err)
		}
		lastErr = checkEncrypt(w.key, resp)
		if lastErr == nil {
			return resp.GetCiphertext(), resp.GetName(), nil
		}
	}
	return nil, "", fmt.Errorf("custody: wrap with %s: %w", w.key, lastErr)
}

func checkEncrypt(key string, resp *kmspb.EncryptResponse) error {
	switch {
	case !resp.GetVerifiedPlaintextCrc32C():
		return fmt.Errorf("%w: plaintext checksum not verified", ErrIntegrity)
	case !resp.GetVerifiedAdditionalAuthenticatedDataCrc32C():
		return fmt.Errorf("%w: aad checksum not verified", ErrIntegrity)
	case resp.GetCiphertextCrc32C() == nil || resp.GetCiphertextCrc32C().GetValue() != crc32c(resp.GetCiphertext()):
		return fmt.Errorf("%w: ciphertext checksum mismatch", ErrIntegrity)
	case !strings.HasPrefix(resp.GetName(), key+"/"):
		return fmt.Errorf("%w: answered by another key", ErrIntegrity)
	}
	return nil
}

// Unwrap decrypts a ciphertext made by Wrap with the same aad.
func (w *Wrapper) Unwrap(ctx context.Context, ciphertext, aad []byte) (Secret, error) {
	s, _, err := w.UnwrapPrimary(ctx, ciphertext, aad)
	return s, err
}

// UnwrapPrimary is Unwrap that also says whether KMS decrypted with the
// CryptoKey's primary version. A ciphertext that did not is due for
// re-wrapping before its version is disabled; one that did needs none,
// which is what makes a re-wrap run idempotent.
func (w *Wrapper) UnwrapPrimary(ctx context.Context, ciphertext, aad []byte) (Secret, bool, error) {
	req := &kmspb.DecryptRequest{
		Name:                              w.key,
		Ciphertext:                        ciphertext,
		CiphertextCrc32C:                  wrapperspb.Int64(crc32c(ciphertext)),
		AdditionalAuthenticatedData:       aad,
		AdditionalAuthenticatedDataCrc32C: wrapperspb.Int64(crc32c(aad)),
	}
	var lastErr error
	for range integrityAttempts {
		resp, err := w.kms.Decrypt(ctx, req)
		if err != nil {
			return nil, false, fmt.Errorf("custody: unwrap with %s: %w", w.key, err)
		}
		pt := resp.GetPlaintext()
		if resp.GetPlaintextCrc32C() == nil || resp.GetPlaintextCrc32C().GetValue() != crc32c(pt) {
			clear(pt)
			lastErr = fmt.Errorf("%w: plaintext checksum mismatch", ErrIntegrity)
			continue
		}
		return Secret(pt), resp.GetUsedPrimary(), nil
	}
	return nil, false, fmt.Errorf("custody: unwrap with %s: %w", w.key, lastErr)
}
