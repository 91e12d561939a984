package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/keybackup"
	"github.com/sealedsense/sealedsense/shared/store"
)

// runErr runs the command and returns its output and error.
func (p *provisioner) runErr(args ...string) (string, error) {
	var out bytes.Buffer
	err := run(context.Background(), args, p.getenv, &out, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	return out.String(), err
}

// registryDocs reads every document a key backup holds, by path.
func registryDocs(t *testing.T, fs *firestore.Client) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, kind := range store.BackupKinds() {
		snaps, err := fs.Collection(kind).Documents(context.Background()).GetAll()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range snaps {
			out[kind+"/"+s.Ref.ID] = s.Data()
		}
	}
	return out
}

// TestBackupAndRestoreDrill: back up to two buckets, lose the first
// bucket's copy and the registry's device, lookup, cloud and connector
// records, restore from the second bucket, and every sensor's PSK
// unwraps again; a dry run writes nothing and a newer record is kept.
func TestBackupAndRestoreDrill(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newProvisioner(t)
	p.run("bootstrap")
	dir := t.TempDir()
	files := strings.Fields(p.run("sensors", "-n", "3", "-type", "temperature", "-kit", "kit-a", "-kit-name", "Starter", "-out", dir))
	p.run("connector", "-id", "ccon-1", "-out", dir)
	p.run("connector", "-id", "ccon-2", "-out", dir)
	p.run("revoke-connector", "-id", "ccon-2")
	fs := platformtest.Firestore(t, p.vars["GOOGLE_CLOUD_PROJECT"])
	before := registryDocs(t, fs)

	gcs := platformtest.Storage(t)
	b1, b2 := p.vars["GOOGLE_CLOUD_PROJECT"]+"-eu1", p.vars["GOOGLE_CLOUD_PROJECT"]+"-eu2"
	for _, b := range []string{b1, b2} {
		if err := gcs.Bucket(b).Create(ctx, "test", nil); err != nil {
			t.Fatal(err)
		}
	}
	written := strings.Fields(p.run("backup", "-buckets", b1+","+b2))
	if len(written) != 2 || strings.TrimPrefix(written[0], "gs://"+b1) != strings.TrimPrefix(written[1], "gs://"+b2) {
		t.Fatalf("backup wrote %v, want one object in both buckets", written)
	}
	_, object, _ := keybackup.ParseLocation(written[0])
	if err := gcs.Bucket(b1).Object(object).Delete(ctx); err != nil {
		t.Fatal(err)
	}
	wiped := 0
	for path := range before {
		if !strings.HasPrefix(path, "kits/") {
			if _, err := fs.Doc(path).Delete(ctx); err != nil {
				t.Fatal(err)
			}
			wiped++
		}
	}

	if _, err := p.runErr("restore", "-from", "gs://"+b1); err == nil || !strings.Contains(err.Error(), "no backup") {
		t.Fatalf("restore from the emptied bucket = %v, want no backup", err)
	}
	out := p.run("restore", "-from", "gs://"+b2, "-dry-run")
	if !strings.Contains(out, "dry run") || !strings.Contains(out, "devices     created 3") {
		t.Fatalf("dry run printed:\n%s", out)
	}
	if n := len(registryDocs(t, fs)); n != len(before)-wiped {
		t.Fatalf("after a dry run the registry has %d documents, want %d", n, len(before)-wiped)
	}

	// A device re-made after the backup is newer than the backup's copy.
	sample := strings.TrimPrefix(firstWithPrefix(before, "devices/"), "devices/")
	newer := map[string]any{"type": "re-provisioned"}
	if _, err := fs.Doc("devices/"+sample).Set(ctx, newer); err != nil {
		t.Fatal(err)
	}

	out = p.run("restore", "-from", "gs://"+b2)
	for _, want := range []string{"project " + p.vars["GOOGLE_CLOUD_PROJECT"], "devices     created 2  replaced 0  kept-newer 1",
		"deviceKeys  created 3", "cloud       created 1", "connectors  created 2", "kits        created 0  replaced 0  kept-newer 0  unchanged 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("restore report lacks %q:\n%s", want, out)
		}
	}
	after := registryDocs(t, fs)
	for path, want := range before {
		if path == "devices/"+sample {
			want = newer
		}
		if !reflect.DeepEqual(after[path], want) {
			t.Errorf("%s after restore = %v, want %v", path, after[path], want)
		}
	}
	if len(after) != len(before) {
		t.Errorf("%d documents after restore, %d before", len(after), len(before))
	}

	reg := p.registry()
	for _, f := range files {
		s, err := credentials.LoadSensor(f)
		if err != nil {
			t.Fatal(err)
		}
		if s.DeviceID == sample {
			continue
		}
		d, err := reg.DeviceByPublicKey(ctx, [32]byte(s.StaticPublic))
		if err != nil {
			t.Fatalf("restored lookup of %s: %v", s.DeviceID, err)
		}
		psk, err := reg.PSK(ctx, d)
		if err != nil || !bytes.Equal(psk[:], s.PSK) {
			t.Fatalf("restored PSK of %s does not unwrap to the sensor's: %v", s.DeviceID, err)
		}
	}
	ck, err := reg.CloudKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CloudStatics(ctx, ck); err != nil {
		t.Fatalf("restored cloud static key does not unwrap: %v", err)
	}

	// A damaged copy is refused by name and writes nothing.
	r, err := gcs.Bucket(b2).Object(object).NewReader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := io.ReadAll(r)
	r.Close()
	w := gcs.Bucket(b2).Object(object).NewWriter(ctx)
	_, _ = w.Write(good[:len(good)/2])
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Doc("connectors/ccon-1").Delete(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = p.runErr("restore", "-from", written[1])
	if err == nil || !strings.Contains(err.Error(), "truncated") || !strings.Contains(err.Error(), "nothing written") {
		t.Fatalf("restore of a truncated backup = %v, want a refusal naming truncation", err)
	}
	if _, err := fs.Doc("connectors/ccon-1").Get(ctx); !store.IsNotFound(err) {
		t.Fatalf("a refused restore wrote: %v", err)
	}
}

func firstWithPrefix(docs map[string]map[string]any, prefix string) string {
	for path := range docs {
		if strings.HasPrefix(path, prefix) {
			return path
		}
	}
	return ""
}

func TestRestoreSource(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name, from, at string
		bucket, object string
		when           time.Time
		wantErr        string
	}{
		{"an object", "gs://b/keybackups/x.ssbk", "", "b", "keybackups/x.ssbk", now, ""},
		{"a bucket: newest now", "gs://b", "", "b", "", now, ""},
		{"a bucket at a time", "gs://b", "2026-05-01T00:00:00Z", "b", "", time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), ""},
		{"a time with an object", "gs://b/o", "2026-05-01T00:00:00Z", "", "", time.Time{}, "-at picks"},
		{"a bad time", "gs://b", "yesterday", "", "", time.Time{}, "RFC 3339"},
		{"no -from", "", "", "", "", time.Time{}, "-from"},
		{"not gs://", "/tmp/backup", "", "", "", time.Time{}, "-from"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, o, when, err := restoreSource(c.from, c.at, now)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, c.wantErr)
				}
				return
			}
			if err != nil || b != c.bucket || o != c.object || !when.Equal(c.when) {
				t.Fatalf("restoreSource = %q, %q, %v, %v; want %q, %q, %v", b, o, when, err, c.bucket, c.object, c.when)
			}
		})
	}
}
