package local_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealedsense/sealedsense/emulators/local"
	"github.com/sealedsense/sealedsense/emulators/local/localtest"
	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/release"
	"github.com/sealedsense/sealedsense/shared/store"
)

// TestReleaseLocally: the local deployment makes its connectors trusting
// the release key, has a releases bucket, and gives the operators'
// command what it needs to publish a release that the connectors and a
// sensor made through it accept.
func TestReleaseLocally(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := localtest.Start(t, local.Config{Sensors: 1, Connectors: 1})
	credDir := filepath.Dir(d.APICredentials())
	c, err := credentials.LoadConnector(filepath.Join(credDir, "ccon-1.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.ReleaseKeys) != 1 || c.ReleaseKeys[0].Version != 1 {
		t.Fatalf("ccon-1 trusts release keys %+v, want version 1 of release-signing", c.ReleaseKeys)
	}
	out, err := d.Provision(ctx, "sensors", "-n", "1", "-out", credDir)
	if err != nil {
		t.Fatalf("provision sensors: %v", err)
	}
	s, err := credentials.LoadSensor(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}

	image := filepath.Join(t.TempDir(), "ccon.img")
	if err := os.WriteFile(image, []byte(strings.Repeat("firmware ", 300)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"ccon", "temperature"} {
		out, err := d.Provision(ctx, "release", "-target", target, "-version", "1", "-image", image)
		if err != nil {
			t.Fatalf("provision release: %v", err)
		}
		var printed struct {
			ReleaseID, Image string
		}
		if err := json.Unmarshal([]byte(out), &printed); err != nil || !strings.HasPrefix(printed.Image, "gs://"+d.ReleasesBucket+"/") {
			t.Fatalf("release printed %q (%v); want its image in gs://%s", out, err, d.ReleasesBucket)
		}
		rel, err := store.New(d.FS).Release(ctx, printed.ReleaseID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := platformtest.Storage(t).Bucket(rel.Bucket).Object(rel.Object).Attrs(ctx); err != nil {
			t.Fatalf("image gs://%s/%s: %v", rel.Bucket, rel.Object, err)
		}
		for who, keys := range map[string][]credentials.ReleaseKey{"ccon-1": c.ReleaseKeys, s.DeviceID: s.ReleaseKeys} {
			trusted, err := credentials.TrustedReleaseKeys(keys)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := release.Open(rel.Signed, trusted); err != nil {
				t.Errorf("%s refuses the %s release: %v", who, target, err)
			}
		}
	}
}
