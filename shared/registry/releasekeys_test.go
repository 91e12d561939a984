package registry_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
	"testing"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/shared/registry"
)

// TestReleaseKeys: a device is given every enabled version of the release
// key, oldest first, each with the public key KMS serves for it; a
// rotation adds the new version and disabling one removes it.
func TestReleaseKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kc := platformtest.KMS(t)
	ring, err := kc.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{Parent: "projects/" + platformtest.ProjectID(t) + "/locations/europe", KeyRingId: "r"})
	if err != nil {
		t.Fatal(err)
	}
	k, err := kc.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{Parent: ring.GetName(), CryptoKeyId: "release-signing", CryptoKey: &kmspb.CryptoKey{
		Purpose:         kmspb.CryptoKey_ASYMMETRIC_SIGN,
		VersionTemplate: &kmspb.CryptoKeyVersionTemplate{Algorithm: kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256},
	}})
	if err != nil {
		t.Fatal(err)
	}
	key := k.GetName()
	check := func(want ...uint32) {
		t.Helper()
		keys, err := registry.ReleaseKeys(ctx, kc, key)
		if err != nil {
			t.Fatalf("ReleaseKeys: %v; want versions %v", err, want)
		}
		var got []uint32
		for _, rk := range keys {
			got = append(got, rk.Version)
			pk, err := kc.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: fmt.Sprintf("%s/cryptoKeyVersions/%d", key, rk.Version)})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := pem.Decode([]byte(pk.GetPem()))
			if _, err := x509.ParsePKIXPublicKey(rk.PKIX); err != nil || !bytes.Equal(rk.PKIX, b.Bytes) {
				t.Errorf("version %d: PKIX %x is not the public key KMS serves (%v)", rk.Version, rk.PKIX, err)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("ReleaseKeys gave versions %v, want %v", got, want)
		}
	}
	check(1)
	for range 2 {
		if _, err := kc.CreateCryptoKeyVersion(ctx, &kmspb.CreateCryptoKeyVersionRequest{Parent: key}); err != nil {
			t.Fatal(err)
		}
	}
	check(1, 2, 3)
	setState := func(n string, s kmspb.CryptoKeyVersion_CryptoKeyVersionState) {
		t.Helper()
		_, err := kc.UpdateCryptoKeyVersion(ctx, &kmspb.UpdateCryptoKeyVersionRequest{
			CryptoKeyVersion: &kmspb.CryptoKeyVersion{Name: key + "/cryptoKeyVersions/" + n, State: s},
			UpdateMask:       &fieldmaskpb.FieldMask{Paths: []string{"state"}},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	setState("2", kmspb.CryptoKeyVersion_DISABLED)
	check(1, 3)
	setState("1", kmspb.CryptoKeyVersion_DISABLED)
	setState("3", kmspb.CryptoKeyVersion_DISABLED)
	if keys, err := registry.ReleaseKeys(ctx, kc, key); err == nil || !strings.Contains(err.Error(), "no enabled version") {
		t.Fatalf("ReleaseKeys with every version disabled = %v, %v; want a refusal saying so", keys, err)
	}
}
