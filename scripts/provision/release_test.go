package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/api/iterator"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/release"
	"github.com/sealedsense/sealedsense/shared/store"
)

func TestReleaseRequestCheck(t *testing.T) {
	ok := releaseRequest{Target: "temperature", Version: 3, MinFrom: 1, Image: "img", Bucket: "b"}
	with := func(f func(*releaseRequest)) releaseRequest { r := ok; f(&r); return r }
	tests := []struct {
		name  string
		req   releaseRequest
		chunk uint16 // the manifest's chunk size; 0: refused
		says  string // in the refusal
	}{
		{"sensor", ok, sensorChunk, ""},
		{"connector", with(func(r *releaseRequest) { r.Target = "ccon" }), connectorChunk, ""},
		{"every sensor type", with(func(r *releaseRequest) { r.Target = "waterDetector" }), sensorChunk, ""},
		{"chunk size given", with(func(r *releaseRequest) { r.ChunkSize = 200 }), 200, ""},
		{"smallest chunk", with(func(r *releaseRequest) { r.ChunkSize = release.MinChunk }), release.MinChunk, ""},
		{"min-from 0", with(func(r *releaseRequest) { r.MinFrom = 0 }), sensorChunk, ""},
		{"largest version", with(func(r *releaseRequest) { r.Version = 1<<32 - 1 }), sensorChunk, ""},
		{"no target", with(func(r *releaseRequest) { r.Target = "" }), 0, "-target is required"},
		{"unknown target", with(func(r *releaseRequest) { r.Target = "toaster" }), 0, `unknown target "toaster"`},
		{"target case", with(func(r *releaseRequest) { r.Target = "Temperature" }), 0, "unknown target"},
		{"version 0", with(func(r *releaseRequest) { r.Version, r.MinFrom = 0, 0 }), 0, "-version 0"},
		{"version past uint32", with(func(r *releaseRequest) { r.Version = 1 << 32 }), 0, "-version 4294967296"},
		{"min-from above version", with(func(r *releaseRequest) { r.MinFrom = 4 }), 0, "-min-from 4 is above -version 3"},
		{"min-from equals version", with(func(r *releaseRequest) { r.MinFrom = 3 }), 0, "has this release already"},
		{"chunk too small", with(func(r *releaseRequest) { r.ChunkSize = release.MinChunk - 1 }), 0, "-chunk-size 63"},
		{"chunk too large", with(func(r *releaseRequest) { r.ChunkSize = release.MaxChunk + 1 }), 0, "-chunk-size 1025"},
		{"negative chunk", with(func(r *releaseRequest) { r.ChunkSize = -1 }), 0, "-chunk-size -1"},
		{"no image", with(func(r *releaseRequest) { r.Image = "" }), 0, "-image is required"},
		{"no bucket", with(func(r *releaseRequest) { r.Bucket = "" }), 0, "names no bucket"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := tc.req.check()
			if tc.chunk == 0 {
				if err == nil || !strings.Contains(err.Error(), tc.says) {
					t.Fatalf("check(%+v) = %v; want a refusal saying %q", tc.req, err, tc.says)
				}
				return
			}
			want := release.Manifest{Target: tc.req.Target, Version: uint32(tc.req.Version), MinFrom: uint32(tc.req.MinFrom), ChunkSize: tc.chunk}
			if err != nil || m != want {
				t.Fatalf("check(%+v) = %+v, %v; want %+v", tc.req, m, err, want)
			}
		})
	}
}

func TestNewerThanReleased(t *testing.T) {
	existing := []store.Release{{ID: "b", Target: "co2", Version: 7}, {ID: "a", Target: "co2", Version: 2}}
	tests := []struct {
		name     string
		version  uint32
		existing []store.Release
		says     string // "": allowed
	}{
		{"first release", 1, nil, ""},
		{"newer", 8, existing, ""},
		{"same as newest", 7, existing, "-version 7 is not newer than co2's newest release, version 7 (release b)"},
		{"between", 5, existing, "not newer"},
		{"older than all", 1, existing, "not newer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := newerThanReleased(tc.version, tc.existing)
			if (tc.says == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.says)) {
				t.Fatalf("newerThanReleased(%d) = %v; want %q", tc.version, err, tc.says)
			}
		})
	}
}

func TestReadImage(t *testing.T) {
	dir := t.TempDir()
	file := func(name string, n int) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, bytes.Repeat([]byte{0xa5}, n), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, path string
		size       int    // when read
		says       string // in the refusal
	}{
		{"one byte", file("one", 1), 1, ""},
		{"largest", file("max", release.MaxImage), release.MaxImage, ""},
		{"too large", file("big", release.MaxImage+1), 0, "larger than 1048576 bytes"},
		{"empty", file("empty", 0), 0, "is empty"},
		{"missing", filepath.Join(dir, "none"), 0, "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := readImage(tc.path)
			if tc.says != "" {
				if err == nil || !strings.Contains(err.Error(), tc.says) {
					t.Fatalf("readImage(%s) = %d bytes, %v; want a refusal saying %q", tc.name, len(b), err, tc.says)
				}
				return
			}
			if err != nil || len(b) != tc.size {
				t.Fatalf("readImage(%s) = %d bytes, %v; want %d", tc.name, len(b), err, tc.size)
			}
		})
	}
}

// releaseWorld is a provisioned project with a releases bucket.
type releaseWorld struct {
	*provisioner
	bucket, dir string
}

func newReleaseWorld(t *testing.T) releaseWorld {
	p := newProvisioner(t)
	p.run("bootstrap")
	b := p.vars["GOOGLE_CLOUD_PROJECT"] + "-releases"
	if err := platformtest.Storage(t).Bucket(b).Create(context.Background(), "test", nil); err != nil {
		t.Fatal(err)
	}
	return releaseWorld{provisioner: p, bucket: b, dir: t.TempDir()}
}

// image writes an image file of n pseudo-random bytes.
func (w releaseWorld) image(name string, n int) string {
	w.t.Helper()
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	path := filepath.Join(w.dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		w.t.Fatal(err)
	}
	return path
}

// release runs provision release and decodes what it prints.
func (w releaseWorld) release(args ...string) releaseOutput {
	w.t.Helper()
	var out releaseOutput
	if err := json.Unmarshal([]byte(w.run(append([]string{"release", "-bucket", w.bucket}, args...)...)), &out); err != nil {
		w.t.Fatalf("release printed no JSON: %v", err)
	}
	return out
}

// objects lists the bucket's object names.
func (w releaseWorld) objects() []string {
	w.t.Helper()
	var names []string
	it := platformtest.Storage(w.t).Bucket(w.bucket).Objects(context.Background(), nil)
	for {
		a, err := it.Next()
		if err == iterator.Done {
			return names
		}
		if err != nil {
			w.t.Fatal(err)
		}
		names = append(names, a.Name)
	}
}

func (w releaseWorld) sensor() credentials.Sensor {
	w.t.Helper()
	s, err := credentials.LoadSensor(strings.TrimSpace(w.run("sensors", "-n", "1", "-type", "temperature", "-out", w.dir)))
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}

// opens reports whether a device holding keys accepts the release: the
// reason it refuses, or 0.
func opens(t *testing.T, signed []byte, keys []credentials.ReleaseKey) release.Reason {
	t.Helper()
	_, err := release.Open(signed, mustTrusted(t, keys))
	return release.ReasonOf(err)
}

// TestReleaseEndToEnd: a release for sensors and one for connectors are
// stored, their images uploaded byte for byte, and what devices
// provisioned now hold opens their signed manifests.
func TestReleaseEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newReleaseWorld(t)
	s := w.sensor()
	c, err := credentials.LoadConnector(strings.TrimSpace(w.run("connector", "-id", "ccon-1", "-out", w.dir)))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.ReleaseKeys) != 1 || s.ReleaseKeys[0].Version != 1 || len(c.ReleaseKeys) != 1 || !bytes.Equal(c.ReleaseKeys[0].PKIX, s.ReleaseKeys[0].PKIX) {
		t.Fatalf("sensor release keys %+v, connector %+v; want version 1 of release-signing in both", s.ReleaseKeys, c.ReleaseKeys)
	}

	for _, tc := range []struct {
		target string
		size   int
		chunk  uint16
		keys   []credentials.ReleaseKey
	}{
		{"temperature", 3000, sensorChunk, s.ReleaseKeys},
		{"ccon", 5000, connectorChunk, c.ReleaseKeys},
	} {
		path := w.image(tc.target+".img", tc.size)
		out := w.release("-target", tc.target, "-version", "4", "-min-from", "2", "-image", path)
		image, _ := os.ReadFile(path)
		sum := sha256.Sum256(image)
		want := releaseOutput{ReleaseID: out.ReleaseID, Target: tc.target, Version: 4, MinFrom: 2, Size: uint32(tc.size), ChunkSize: tc.chunk,
			Chunks: uint32((tc.size + int(tc.chunk) - 1) / int(tc.chunk)), ImageSHA256: hex.EncodeToString(sum[:]), KeyVersion: 1, Image: out.Image}
		if out != want || len(out.ReleaseID) != 32 || !strings.HasPrefix(out.Image, "gs://"+w.bucket+"/releases/"+tc.target+"/") {
			t.Fatalf("release printed %+v, want %+v with a 32-hex id and an image under releases/%s/", out, want, tc.target)
		}

		rel, err := w.db().Release(ctx, out.ReleaseID)
		if err != nil {
			t.Fatalf("release %s is not stored: %v", out.ReleaseID, err)
		}
		m, err := release.Open(rel.Signed, mustTrusted(t, tc.keys))
		if err != nil {
			t.Fatalf("the stored manifest does not open under the keys a %s was made with: %v", tc.target, err)
		}
		if hex.EncodeToString(m.ReleaseID[:]) != rel.ID || m.Target != rel.Target || m.Version != rel.Version || m.MinFrom != rel.MinFrom ||
			m.Size != rel.Size || m.ChunkSize != rel.ChunkSize || !bytes.Equal(m.ImageSHA256[:], rel.ImageSHA256) || m.KeyVersion != rel.KeyVersion {
			t.Fatalf("stored release %+v disagrees with its signed manifest %+v", rel, m)
		}
		r, err := platformtest.Storage(t).Bucket(rel.Bucket).Object(rel.Object).NewReader(ctx)
		if err != nil {
			t.Fatalf("image gs://%s/%s: %v", rel.Bucket, rel.Object, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || sha256.Sum256(got) != m.ImageSHA256 {
			t.Fatalf("the uploaded image (%d bytes, %v) does not have the manifest's SHA-256", len(got), err)
		}
	}
}

func mustTrusted(t *testing.T, keys []credentials.ReleaseKey) map[uint32]*ecdsa.PublicKey {
	t.Helper()
	m, err := credentials.TrustedReleaseKeys(keys)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestReleaseRefusals: each refused request fails saying why, and
// nothing is signed into the store or uploaded.
func TestReleaseRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newReleaseWorld(t)
	img := w.image("ok.img", 700)
	first := w.release("-target", "humidity", "-version", "5", "-image", img)
	big := w.image("big.img", release.MaxImage+1)
	empty := w.image("empty.img", 0)
	tests := []struct {
		name string
		args []string
		says string
	}{
		{"min-from above version", []string{"-target", "humidity", "-version", "6", "-min-from", "7", "-image", img}, "-min-from 7 is above -version 6"},
		{"empty image", []string{"-target", "humidity", "-version", "6", "-image", empty}, "is empty"},
		{"image too large", []string{"-target", "humidity", "-version", "6", "-image", big}, "larger than 1048576 bytes"},
		{"unknown target", []string{"-target", "toaster", "-version", "6", "-image", img}, `unknown target "toaster"`},
		{"same version", []string{"-target", "humidity", "-version", "5", "-image", img}, "-version 5 is not newer than humidity's newest release, version 5 (release " + first.ReleaseID + ")"},
		{"older version", []string{"-target", "humidity", "-version", "4", "-image", img}, "not newer"},
		{"chunk too large", []string{"-target", "ccon", "-version", "1", "-chunk-size", "2048", "-image", img}, "-chunk-size 2048"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := w.runErr(append([]string{"release", "-bucket", w.bucket}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("release %v = %v; want a refusal saying %q", tc.args, err, tc.says)
			}
		})
	}
	for _, target := range []string{"humidity", "ccon", "toaster"} {
		rels, err := w.db().ReleasesOf(ctx, target)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]int{"humidity": 1}[target]; len(rels) != want {
			t.Errorf("%d %s releases stored, want %d: a refused request stored one", len(rels), target, want)
		}
	}
	if objs := w.objects(); len(objs) != 1 {
		t.Errorf("bucket holds %v; want only the first release's image", objs)
	}
}

// TestReleaseAfterRotation: once release-signing has a new version and
// the old one is disabled, releases are signed by the new one. A sensor
// made after the rotation accepts them; one made before refuses them as
// signed by a key it does not know, until it learns the new key.
func TestReleaseAfterRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newReleaseWorld(t)
	before := w.sensor()
	kc, key := platformtest.KMS(t), w.vars["SEALEDSENSE_RELEASE_SIGNING_KEY"]
	if _, err := kc.CreateCryptoKeyVersion(ctx, &kmspb.CreateCryptoKeyVersionRequest{Parent: key}); err != nil {
		t.Fatal(err)
	}
	during := w.sensor()
	if got := versions(during.ReleaseKeys); got != "1,2" {
		t.Fatalf("a sensor made with versions 1 and 2 enabled trusts %s, want 1,2", got)
	}
	w.disable(key + "/cryptoKeyVersions/1")
	after := w.sensor()
	if got := versions(after.ReleaseKeys); got != "2" {
		t.Fatalf("a sensor made with version 1 disabled trusts %s, want 2", got)
	}

	out := w.release("-target", "temperature", "-version", "2", "-image", w.image("t.img", 100))
	if out.KeyVersion != 2 {
		t.Fatalf("release signed by key version %d, want 2, the newest enabled", out.KeyVersion)
	}
	rel, err := w.db().Release(ctx, out.ReleaseID)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		s    credentials.Sensor
		want release.Reason
	}{"before": {before, release.UnknownKey}, "during": {during, 0}, "after": {after, 0}} {
		if got := opens(t, rel.Signed, tc.s.ReleaseKeys); got != tc.want {
			t.Errorf("the sensor made %s the rotation (keys %s) opens the release with reason %v, want %v", name, versions(tc.s.ReleaseKeys), got, tc.want)
		}
	}
}

func versions(keys []credentials.ReleaseKey) string {
	var s []string
	for _, k := range keys {
		s = append(s, strconv.FormatUint(uint64(k.Version), 10))
	}
	return strings.Join(s, ",")
}

// TestDevicesNeedTheReleaseKey: without the release-signing key no sensor
// or connector is made, since it could never install an update.
func TestDevicesNeedTheReleaseKey(t *testing.T) {
	t.Parallel()
	p := newProvisioner(t)
	p.run("bootstrap")
	p.vars["SEALEDSENSE_RELEASE_SIGNING_KEY"] = ""
	dir := t.TempDir()
	for _, args := range [][]string{{"sensors", "-n", "1", "-out", dir}, {"connector", "-id", "ccon-1", "-out", dir}} {
		if _, err := p.runErr(args...); err == nil || !strings.Contains(err.Error(), "SEALEDSENSE_RELEASE_SIGNING_KEY") {
			t.Errorf("provision %v without the release key = %v; want a refusal naming SEALEDSENSE_RELEASE_SIGNING_KEY", args, err)
		}
	}
	if files, _ := os.ReadDir(dir); len(files) != 0 {
		t.Errorf("credentials written without release keys: %v", files)
	}
	if _, err := p.db().Connector(context.Background(), "ccon-1"); !store.IsNotFound(err) {
		t.Errorf("ccon-1 was registered without release keys: %v", err)
	}
}
