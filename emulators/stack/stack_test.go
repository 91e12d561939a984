package stack_test

import (
	"context"
	"strings"
	"testing"

	"cloud.google.com/go/kms/apiv1/kmspb"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/emulators/stack"
)

func TestMain(m *testing.M) { platformtest.Main(m) }

// TestEnsureKMSReleaseSigning: the release-signing key is an EC P-256
// signing key with a first version, a second run changes nothing, and
// no function is configured with it.
func TestEnsureKMSReleaseSigning(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kc := platformtest.KMS(t)
	ring := "projects/" + platformtest.ProjectID(t) + "/locations/europe/keyRings/ring"
	keys, err := stack.EnsureKMS(ctx, kc, ring)
	if err != nil {
		t.Fatal(err)
	}
	again, err := stack.EnsureKMS(ctx, kc, ring)
	if err != nil || again != keys {
		t.Fatalf("second EnsureKMS: %+v, %v; want %+v", again, err, keys)
	}
	if want := ring + "/cryptoKeys/release-signing"; keys.ReleaseSigning != want {
		t.Fatalf("ReleaseSigning %q, want %q", keys.ReleaseSigning, want)
	}
	k, err := kc.GetCryptoKey(ctx, &kmspb.GetCryptoKeyRequest{Name: keys.ReleaseSigning})
	if err != nil {
		t.Fatal(err)
	}
	if k.GetPurpose() != kmspb.CryptoKey_ASYMMETRIC_SIGN || k.GetVersionTemplate().GetAlgorithm() != kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256 {
		t.Fatalf("release-signing is %v %v, want ASYMMETRIC_SIGN EC_SIGN_P256_SHA256", k.GetPurpose(), k.GetVersionTemplate().GetAlgorithm())
	}
	if _, err := kc.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: keys.ReleaseSigning + "/cryptoKeyVersions/1"}); err != nil {
		t.Fatalf("release-signing version 1: %v", err)
	}
	for _, kv := range keys.Env() {
		if strings.Contains(kv, "release-signing") {
			t.Errorf("Env gives the functions %s; no function signs or checks releases", kv)
		}
	}
	if got := keys.OperatorEnv(); len(got) != 1 || got[0] != "SEALEDSENSE_RELEASE_SIGNING_KEY="+keys.ReleaseSigning {
		t.Errorf("OperatorEnv %v, want the release-signing key", got)
	}
}

// TestEnsureBucketTwice: a second EnsureBucket finds the bucket and keeps
// what it holds.
func TestEnsureBucketTwice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	gcs := platformtest.Storage(t)
	project := platformtest.ProjectID(t)
	b := stack.ReleasesBucket(project)
	if err := stack.EnsureBucket(ctx, gcs, project, b); err != nil {
		t.Fatal(err)
	}
	w := gcs.Bucket(b).Object("x").NewWriter(ctx)
	if _, err := w.Write([]byte("kept")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := stack.EnsureBucket(ctx, gcs, project, b); err != nil {
		t.Fatalf("second EnsureBucket of %s: %v", b, err)
	}
	if _, err := gcs.Bucket(b).Object("x").Attrs(ctx); err != nil {
		t.Fatalf("object x after the second EnsureBucket: %v", err)
	}
}
