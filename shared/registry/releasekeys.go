package registry

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"hash/crc32"
	"sort"
	"strconv"
	"strings"

	kmsapi "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/iterator"

	"github.com/sealedsense/sealedsense/shared/credentials"
)

// ReleaseKMS is what ReleaseKeys needs of Cloud KMS;
// *kms.KeyManagementClient is one.
type ReleaseKMS interface {
	ListCryptoKeyVersions(ctx context.Context, req *kmspb.ListCryptoKeyVersionsRequest, opts ...gax.CallOption) *kmsapi.CryptoKeyVersionIterator
	GetPublicKey(ctx context.Context, req *kmspb.GetPublicKeyRequest, opts ...gax.CallOption) (*kmspb.PublicKey, error)
}

// ReleaseKeys returns the public key of every ENABLED version of the
// release-signing CryptoKey key, oldest first: what a device made now
// trusts, and, last, the version that signs a release now. Versions still
// being generated or disabled are left out; a device made while one is
// re-enabled learns it through a later rotation. Every key is checked as
// credentials files check them.
func ReleaseKeys(ctx context.Context, kms ReleaseKMS, key string) ([]credentials.ReleaseKey, error) {
	var out []credentials.ReleaseKey
	it := kms.ListCryptoKeyVersions(ctx, &kmspb.ListCryptoKeyVersionsRequest{Parent: key})
	for {
		v, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("registry: versions of %s: %w", key, err)
		}
		if v.GetState() != kmspb.CryptoKeyVersion_ENABLED {
			continue
		}
		n, err := releaseKeyVersion(key, v.GetName())
		if err != nil {
			return nil, err
		}
		der, err := releasePublicKey(ctx, kms, v.GetName())
		if err != nil {
			return nil, err
		}
		out = append(out, credentials.ReleaseKey{Version: n, PKIX: der})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	if len(out) == 0 {
		return nil, fmt.Errorf("registry: %s has no enabled version", key)
	}
	if _, err := credentials.TrustedReleaseKeys(out); err != nil {
		return nil, fmt.Errorf("registry: release keys of %s: %w", key, err)
	}
	return out, nil
}

// releaseKeyVersion is the version number of a version name of key:
// key/cryptoKeyVersions/N, N a decimal from 1 that fits a uint32.
func releaseKeyVersion(key, name string) (uint32, error) {
	s, ok := strings.CutPrefix(name, key+"/cryptoKeyVersions/")
	n, err := strconv.ParseUint(s, 10, 32)
	if !ok || err != nil || n == 0 || strconv.FormatUint(n, 10) != s {
		return 0, fmt.Errorf("registry: %q is not a numbered version of %s", name, key)
	}
	return uint32(n), nil
}

// releasePublicKey fetches a version's public key and returns it as PKIX
// DER, checking the PEM's CRC32C, the version that answered and the
// algorithm.
func releasePublicKey(ctx context.Context, kms ReleaseKMS, version string) ([]byte, error) {
	resp, err := kms.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: version})
	if err != nil {
		return nil, fmt.Errorf("registry: public key of %s: %w", version, err)
	}
	switch {
	case resp.GetPemCrc32C() == nil || resp.GetPemCrc32C().GetValue() != int64(crc32.Checksum([]byte(resp.GetPem()), crc32.MakeTable(crc32.Castagnoli))):
		return nil, fmt.Errorf("registry: public key of %s: PEM checksum mismatch", version)
	case resp.GetName() != version:
		return nil, fmt.Errorf("registry: public key of %s answered as %q", version, resp.GetName())
	case resp.GetAlgorithm() != kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256:
		return nil, fmt.Errorf("registry: public key of %s: algorithm %v, want EC_SIGN_P256_SHA256", version, resp.GetAlgorithm())
	}
	der, err := pkixFromPEM(resp.GetPem())
	if err != nil {
		return nil, fmt.Errorf("registry: public key of %s: %w", version, err)
	}
	return der, nil
}

// pkixFromPEM returns the DER of a single PEM "PUBLIC KEY" block that
// parses as a PKIX public key.
func pkixFromPEM(text string) ([]byte, error) {
	block, rest := pem.Decode([]byte(text))
	switch {
	case block == nil:
		return nil, errors.New("no PEM block")
	case block.Type != "PUBLIC KEY":
		return nil, fmt.Errorf("a %q PEM block, want PUBLIC KEY", block.Type)
	case len(strings.TrimSpace(string(rest))) > 0:
		return nil, errors.New("data after the PEM block")
	}
	if _, err := x509.ParsePKIXPublicKey(block.Bytes); err != nil {
		return nil, err
	}
	return block.Bytes, nil
}
