package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/iterator"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/functions/api"
	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/registry"
)

func TestMain(m *testing.M) { platformtest.Main(m) }

// provisioner runs the command in-process against one test's Firestore
// project and KMS key ring, exactly as an operator would from a shell.
type provisioner struct {
	t    *testing.T
	vars map[string]string
}

func newProvisioner(t *testing.T) *provisioner {
	project := platformtest.ProjectID(t)
	p := &provisioner{t: t, vars: map[string]string{"GOOGLE_CLOUD_PROJECT": project}}
	out := p.run("ensure-kms", "-keyring", "projects/"+project+"/locations/europe/keyRings/ring")
	for line := range strings.Lines(out) {
		k, v, ok := strings.Cut(strings.TrimSpace(strings.TrimPrefix(line, "export ")), "=")
		if !ok {
			t.Fatalf("ensure-kms printed %q", line)
		}
		p.vars[k] = v
	}
	return p
}

func (p *provisioner) getenv(k string) string {
	if v, ok := p.vars[k]; ok {
		return v
	}
	return os.Getenv(k)
}

func (p *provisioner) run(args ...string) string {
	p.t.Helper()
	var out bytes.Buffer
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	if err := run(context.Background(), args, p.getenv, &out, log); err != nil {
		p.t.Fatalf("provision %v: %v", args, err)
	}
	return out.String()
}

func (p *provisioner) registry() *registry.Registry {
	p.t.Helper()
	fs := platformtest.Firestore(p.t, p.vars["GOOGLE_CLOUD_PROJECT"])
	return registry.New(fs, custody.NewWrapper(platformtest.KMS(p.t), p.vars["SEALEDSENSE_DEVICE_KEY"]), nil)
}

func TestProvisioningStoresNoPlaintextSecrets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newProvisioner(t)
	p.run("bootstrap")
	dir := t.TempDir()
	files := strings.Fields(p.run("sensors", "-n", "4", "-type", "temperature", "-kit", "kit-a", "-kit-name", "Starter kit", "-out", dir))
	files = append(files, strings.Fields(p.run("sensors", "-n", "2", "-type", "co2", "-out", dir))...)
	connFile := strings.TrimSpace(p.run("connector", "-id", "ccon-1", "-name", "Lab", "-out", dir))
	if len(files) != 6 {
		t.Fatalf("got %d sensor files, want 6", len(files))
	}

	reg := p.registry()
	ck, err := reg.CloudKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	statics, err := reg.CloudStatics(ctx, ck)
	if err != nil {
		t.Fatal(err)
	}
	cloudStatic := statics[0]
	channels, err := reg.ChannelKeys(ctx, ck)
	if err != nil {
		t.Fatal(err)
	}
	channel := channels[0].Private
	secrets := map[string][]byte{
		"cloud static private": cloudStatic.Private[:],
		"cloud channel seed":   channel.Seed(),
	}
	for _, f := range files {
		assertPrivateFile(t, f)
		s, err := credentials.LoadSensor(f)
		if err != nil {
			t.Fatal(err)
		}
		secrets["psk of "+s.DeviceID] = s.PSK
		secrets["static private of "+s.DeviceID] = s.StaticPrivate

		// The cloud finds the device by its public key and unwraps the same PSK.
		d, err := reg.DeviceByPublicKey(ctx, [32]byte(s.StaticPublic))
		if err != nil {
			t.Fatalf("lookup of %s by public key: %v", s.DeviceID, err)
		}
		psk, err := reg.PSK(ctx, d)
		if err != nil || !bytes.Equal(psk[:], s.PSK) {
			t.Fatalf("PSK of %s does not unwrap to the sensor's PSK: %v", s.DeviceID, err)
		}
		if !bytes.Equal(s.CloudPublic, ck.StaticPublic()) {
			t.Fatalf("sensor %s was given the wrong cloud key", s.DeviceID)
		}
	}
	assertPrivateFile(t, connFile)
	c, err := credentials.LoadConnector(connFile)
	if err != nil {
		t.Fatal(err)
	}
	secrets["connector private"] = ed25519.PrivateKey(c.PrivateKey).Seed()

	values := allValues(t, platformtest.Firestore(t, p.vars["GOOGLE_CLOUD_PROJECT"]))
	if len(values) < 6*4 {
		t.Fatalf("found only %d stored values; the scan is not reading the registry", len(values))
	}
	for name, secret := range secrets {
		forms := [][]byte{secret, []byte(hex.EncodeToString(secret)), []byte(base64.StdEncoding.EncodeToString(secret)), []byte(base64.RawURLEncoding.EncodeToString(secret))}
		for _, v := range values {
			for _, form := range forms {
				if bytes.Contains(v, form) {
					t.Errorf("Firestore holds the %s in plaintext", name)
				}
			}
		}
	}
}

func assertPrivateFile(t *testing.T, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v, want 0600", filepath.Base(path), st.Mode().Perm())
	}
}

// allValues returns every string and bytes value in every document of every
// collection, subcollections included.
func allValues(t *testing.T, fs *firestore.Client) [][]byte {
	t.Helper()
	ctx := context.Background()
	var out [][]byte
	var walkColl func(*firestore.CollectionRef)
	walkColl = func(c *firestore.CollectionRef) {
		docs := c.Documents(ctx)
		defer docs.Stop()
		for {
			snap, err := docs.Next()
			if err == iterator.Done {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, flatten(snap.Data())...)
			subs := snap.Ref.Collections(ctx)
			for {
				sub, err := subs.Next()
				if err == iterator.Done {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				walkColl(sub)
			}
		}
	}
	colls := fs.Collections(ctx)
	for {
		c, err := colls.Next()
		if err == iterator.Done {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		walkColl(c)
	}
	return out
}

func flatten(v any) [][]byte {
	switch x := v.(type) {
	case string:
		return [][]byte{[]byte(x)}
	case []byte:
		return [][]byte{x}
	case map[string]any:
		var out [][]byte
		for k, e := range x {
			out = append(out, []byte(k))
			out = append(out, flatten(e)...)
		}
		return out
	case []any:
		var out [][]byte
		for _, e := range x {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return nil
}

func TestCommandErrors(t *testing.T) {
	t.Parallel()
	p := newProvisioner(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "usage"},
		{"unknown command", []string{"frobnicate"}, "unknown command"},
		{"sensors before bootstrap", []string{"sensors", "-out", t.TempDir()}, "bootstrap first"},
		{"unknown type", []string{"sensors", "-type", "toaster", "-out", t.TempDir()}, "unknown device type"},
		{"no out dir", []string{"sensors"}, "-out is required"},
		{"revoke unknown connector", []string{"revoke-connector", "-id", "nope"}, "not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, p.getenv, io.Discard, slog.New(slog.NewJSONHandler(io.Discard, nil)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	noEnv := func(k string) string {
		if k == "GOOGLE_CLOUD_PROJECT" {
			return ""
		}
		return p.getenv(k)
	}
	if err := run(context.Background(), []string{"bootstrap"}, noEnv, io.Discard, slog.New(slog.NewJSONHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), "GOOGLE_CLOUD_PROJECT") {
		t.Fatalf("bootstrap without a project = %v, want it to name the variable", err)
	}
}

func TestTenantAndPersonnelAccess(t *testing.T) {
	t.Parallel()
	p := newProvisioner(t)
	path := filepath.Join(t.TempDir(), "admin.json")
	out := p.run("tenant", "-org", "Acme", "-project-name", "Acme main", "-project", "acme-main", "-token-url", "https://api.example/oauth2/token", "-out", path)
	if !strings.Contains(out, "project acme-main") {
		t.Fatalf("tenant printed %q", out)
	}
	assertPrivateFile(t, path)
	creds, err := credentials.LoadServiceAccount(path)
	if err != nil || creds.TokenEndpoint != "https://api.example/oauth2/token" || creds.Algorithm != "HS256" {
		t.Fatalf("credentials file: %+v, %v", creds, err)
	}
	fs := platformtest.Firestore(t, p.vars["GOOGLE_CLOUD_PROJECT"])
	docs, err := fs.Collection("serviceAccountKeys").Documents(context.Background()).GetAll()
	if err != nil || len(docs) != 1 {
		t.Fatalf("keys: %d, %v", len(docs), err)
	}
	if b, _ := json.Marshal(docs[0].Data()); strings.Contains(string(b), creds.Secret) {
		t.Fatal("the key's secret is in Firestore in plaintext")
	}
	// A new project denies platform personnel.
	var buf bytes.Buffer
	err = run(context.Background(), []string{"personnel-devices", "-project", "acme-main", "-operator", "ops@sealedsense.eu", "-reason", "ticket 1: sensor silent"},
		p.getenv, &buf, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if !errors.Is(err, api.ErrPersonnelDenied) {
		t.Fatalf("personnel access to a denying project: %v", err)
	}
}
