package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/shared/apikey"
	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/dataconnector"
	"github.com/sealedsense/sealedsense/shared/store"
)

// The re-wrap tests run the command in-process against the emulators, as
// an operator would after KMS rotated the keys: rotate, rewrap, disable
// the old versions, and everything stored must still unwrap.

// env opens the command's environment as run does.
func (p *provisioner) env() *env {
	p.t.Helper()
	e, err := open(context.Background(), p.getenv)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(e.Close)
	return e
}

func (p *provisioner) rewrapOpts(page int) rewrapOpts {
	return rewrapOpts{page: page, apiSecretsKey: p.vars["SEALEDSENSE_API_SECRETS_KEY"], webhookSecretsKey: p.vars["SEALEDSENSE_WEBHOOK_SECRETS_KEY"]}
}

func (p *provisioner) db() *store.DB {
	return store.New(platformtest.Firestore(p.t, p.vars["GOOGLE_CLOUD_PROJECT"]))
}

func (p *provisioner) wrapper(envKey string) *custody.Wrapper {
	return custody.NewWrapper(platformtest.KMS(p.t), p.vars[envKey])
}

// rotate makes a new primary version of the CryptoKey named by envKey, as
// KMS's scheduled rotation does, and returns the old primary's name.
func (p *provisioner) rotate(envKey string) string {
	p.t.Helper()
	ctx, c, key := context.Background(), platformtest.KMS(p.t), p.vars[envKey]
	k, err := c.GetCryptoKey(ctx, &kmspb.GetCryptoKeyRequest{Name: key})
	if err != nil {
		p.t.Fatal(err)
	}
	v, err := c.CreateCryptoKeyVersion(ctx, &kmspb.CreateCryptoKeyVersionRequest{Parent: key})
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := c.UpdateCryptoKeyPrimaryVersion(ctx, &kmspb.UpdateCryptoKeyPrimaryVersionRequest{
		Name: key, CryptoKeyVersionId: v.GetName()[strings.LastIndex(v.GetName(), "/")+1:]}); err != nil {
		p.t.Fatal(err)
	}
	return k.GetPrimary().GetName()
}

func (p *provisioner) disable(version string) {
	p.t.Helper()
	if _, err := platformtest.KMS(p.t).UpdateCryptoKeyVersion(context.Background(), &kmspb.UpdateCryptoKeyVersionRequest{
		CryptoKeyVersion: &kmspb.CryptoKeyVersion{Name: version, State: kmspb.CryptoKeyVersion_DISABLED},
		UpdateMask:       &fieldmaskpb.FieldMask{Paths: []string{"state"}},
	}); err != nil {
		p.t.Fatal(err)
	}
}

// world is one of every kind of stored secret, with the plaintexts that
// the devices, customers and API hold.
type world struct {
	sensors   []credentials.Sensor
	apiKey    credentials.ServiceAccount
	project   string
	connector string
	hookSec   custody.Secret
	pageKey   custody.Secret
}

func provisionWorld(t *testing.T, p *provisioner, nSensors string) world {
	t.Helper()
	ctx := context.Background()
	p.run("bootstrap")
	var w world
	for _, f := range strings.Fields(p.run("sensors", "-n", nSensors, "-out", t.TempDir())) {
		s, err := credentials.LoadSensor(f)
		if err != nil {
			t.Fatal(err)
		}
		w.sensors = append(w.sensors, s)
	}
	path := filepath.Join(t.TempDir(), "admin.json")
	out := p.run("tenant", "-org", "Acme", "-project-name", "Main", "-project", "acme-main", "-token-url", "https://api.example/oauth2/token", "-out", path)
	if !strings.Contains(out, "project acme-main") {
		t.Fatalf("tenant printed %q", out)
	}
	var err error
	if w.apiKey, err = credentials.LoadServiceAccount(path); err != nil {
		t.Fatal(err)
	}
	// A connector's device, among the sensors, holds no PSK: re-wrapping
	// passes it over.
	p.run("connector", "-id", "ccon-1", "-project", "acme-main", "-out", t.TempDir())
	db := p.db()
	w.project, w.connector, w.hookSec = "acme-main", db.NewDataConnectorID(), custody.Secret("webhook signature secret one")
	wrapped, err := p.wrapper("SEALEDSENSE_WEBHOOK_SECRETS_KEY").Wrap(ctx, w.hookSec, dataconnector.SecretAAD(w.project, w.connector))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateDataConnector(ctx, w.connector, store.DataConnector{ProjectID: w.project, Status: "ACTIVE", URL: "https://hook.example", WrappedSecret: wrapped}); err != nil {
		t.Fatal(err)
	}
	// The page-token key, as the API's first list request makes it.
	w.pageKey = custody.Secret(bytes.Repeat([]byte{7}, 32))
	if wrapped, err = p.wrapper("SEALEDSENSE_API_SECRETS_KEY").Wrap(ctx, w.pageKey, apikey.PageKeyAAD()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreatePageTokenKey(ctx, wrapped); err != nil {
		t.Fatal(err)
	}
	return w
}

// assertUnwraps unwraps every secret of w the way its user does.
func assertUnwraps(t *testing.T, p *provisioner, w world) {
	t.Helper()
	ctx, db, reg := context.Background(), p.db(), p.registry()
	for _, s := range w.sensors {
		d, err := reg.DeviceByPublicKey(ctx, [32]byte(s.StaticPublic))
		if err != nil {
			t.Fatal(err)
		}
		psk, err := reg.PSK(ctx, d)
		if err != nil || !bytes.Equal(psk[:], s.PSK) {
			t.Errorf("device %s: PSK does not unwrap to the sensor's: %v", s.DeviceID, err)
		}
		if d.PSKKey != p.vars["SEALEDSENSE_DEVICE_KEY"] {
			t.Errorf("device %s: pskKey %q, want %q", s.DeviceID, d.PSKKey, p.vars["SEALEDSENSE_DEVICE_KEY"])
		}
	}
	k, err := db.Key(ctx, w.apiKey.KeyID)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := p.wrapper("SEALEDSENSE_API_SECRETS_KEY").Unwrap(ctx, k.WrappedSecret, apikey.StoredSecretAAD(w.apiKey.KeyID, k.Account, k.AccountBound))
	if err != nil || string(secret) != w.apiKey.Secret {
		t.Errorf("API key %s: secret does not unwrap to the customer's: %v", w.apiKey.KeyID, err)
	}
	c, err := db.DataConnector(ctx, w.connector)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := p.wrapper("SEALEDSENSE_WEBHOOK_SECRETS_KEY").Unwrap(ctx, c.WrappedSecret, dataconnector.SecretAAD(w.project, w.connector)); err != nil || !bytes.Equal(got, w.hookSec) {
		t.Errorf("data connector %s: secret %q, %v; want %q", w.connector, got, err, w.hookSec)
	}
	pk, err := db.PageTokenKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := p.wrapper("SEALEDSENSE_API_SECRETS_KEY").Unwrap(ctx, pk, apikey.PageKeyAAD()); err != nil || !bytes.Equal(got, w.pageKey) {
		t.Errorf("page-token key does not unwrap: %v", err)
	}
	// The cloud's own keys, as ingest unwraps them.
	ck, err := reg.CloudKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CloudStatics(ctx, ck); err != nil {
		t.Errorf("cloud static keys: %v", err)
	}
	if _, err := reg.ChannelKeys(ctx, ck); err != nil {
		t.Errorf("channel keys: %v", err)
	}
	if _, err := reg.SessionEnvelope(ctx, p.wrapper("SEALEDSENSE_SESSION_KEK_KEY"), ck); err != nil {
		t.Errorf("session KEKs: %v", err)
	}
}

func assertTally(t *testing.T, report map[string]tally, want map[string]tally) {
	t.Helper()
	for kind, w := range want {
		if got := report[kind]; got != w {
			t.Errorf("%s: %v\nwant %v", kind, got, w)
		}
	}
}

// rotatedKeys are the env names of the CryptoKeys re-wrapping covers.
var rotatedKeys = []string{"SEALEDSENSE_DEVICE_KEY", "SEALEDSENSE_SESSION_KEK_KEY", "SEALEDSENSE_API_SECRETS_KEY", "SEALEDSENSE_WEBHOOK_SECRETS_KEY"}

// TestRewrapThenDisableOldVersions: after rotation and a re-wrap, the old
// versions can be disabled and every stored secret still unwraps; a dry
// run before changes nothing, and a second run re-wraps nothing.
func TestRewrapThenDisableOldVersions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newProvisioner(t)
	w := provisionWorld(t, p, "3")
	var old []string
	for _, k := range rotatedKeys {
		old = append(old, p.rotate(k))
	}
	e := p.env()
	all := map[string]tally{
		kindDevices:        {Examined: 3, Rewrapped: 3},
		kindAPIKeys:        {Examined: 1, Rewrapped: 1},
		kindPageTokenKey:   {Examined: 1, Rewrapped: 1},
		kindDataConnectors: {Examined: 1, Rewrapped: 1},
		kindCloudKeys:      {Examined: 2, Rewrapped: 2}, // static and channel version 1
		kindSessionKEKs:    {Examined: 1, Rewrapped: 1},
	}
	for _, dry := range []bool{true, false} {
		opts := p.rewrapOpts(2)
		opts.dryRun = dry
		var out bytes.Buffer
		report, err := rewrap(ctx, e, opts, &out)
		if err != nil {
			t.Fatalf("rewrap (dry run %v): %v\n%s", dry, err, out.String())
		}
		assertTally(t, report, all) // the dry run left everything to do
	}
	for _, v := range old {
		p.disable(v)
	}
	assertUnwraps(t, p, w)

	var out bytes.Buffer
	report, err := rewrap(ctx, e, p.rewrapOpts(defaultRewrapPage), &out)
	if err != nil {
		t.Fatalf("second rewrap: %v\n%s", err, out.String())
	}
	assertTally(t, report, map[string]tally{
		kindDevices:        {Examined: 3, AlreadyPrimary: 3},
		kindAPIKeys:        {Examined: 1, AlreadyPrimary: 1},
		kindPageTokenKey:   {Examined: 1, AlreadyPrimary: 1},
		kindDataConnectors: {Examined: 1, AlreadyPrimary: 1},
		kindCloudKeys:      {Examined: 2, AlreadyPrimary: 2},
		kindSessionKEKs:    {Examined: 1, AlreadyPrimary: 1},
	})
}

// cancelOnCursor cancels a run once it prints its first cursor, as an
// operator's Ctrl-C after the first page would.
type cancelOnCursor struct {
	bytes.Buffer
	cancel context.CancelFunc
}

func (c *cancelOnCursor) Write(b []byte) (int, error) {
	if bytes.HasPrefix(b, []byte("cursor ")) {
		defer c.cancel()
	}
	return c.Buffer.Write(b)
}

// TestRewrapResumes: a run interrupted after its first page, resumed
// with -after from the cursor it printed, finishes the rest without
// redoing the first page.
func TestRewrapResumes(t *testing.T) {
	t.Parallel()
	p := newProvisioner(t)
	w := provisionWorld(t, p, "3")
	var old []string
	for _, k := range rotatedKeys {
		old = append(old, p.rotate(k))
	}
	e := p.env()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &cancelOnCursor{cancel: cancel}
	report, err := rewrap(ctx, e, p.rewrapOpts(1), out)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "resume with -after devices:") {
		t.Fatalf("interrupted run: %v, want it canceled with a resume cursor\n%s", err, out.String())
	}
	assertTally(t, report, map[string]tally{kindDevices: {Examined: 1, Rewrapped: 1}})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var printed string
	for _, l := range lines {
		if c, ok := strings.CutPrefix(l, "cursor "); ok {
			printed = c
		}
	}

	// Resumed, through the command line as an operator would.
	got := p.run("rewrap", "-page", "1", "-after", printed)
	for _, want := range []string{
		kindDevices + ": examined 2, rewrapped 2,",
		kindAPIKeys + ": examined 1, rewrapped 1,",
		kindPageTokenKey + ": examined 1, rewrapped 1,",
		kindDataConnectors + ": examined 1, rewrapped 1,",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("resumed run printed\n%s\nwant a line with %q", got, want)
		}
	}
	for _, v := range old {
		p.disable(v)
	}
	assertUnwraps(t, p, w)
}

// TestRewrapBindsLegacyKey: a key minted before keys were bound to their
// account ends bound, unwrapping only with its account, even though KMS
// already used the primary version for it.
func TestRewrapBindsLegacyKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newProvisioner(t)
	w := provisionWorld(t, p, "1")
	db, keys := p.db(), p.wrapper("SEALEDSENSE_API_SECRETS_KEY")
	admin, err := db.Key(ctx, w.apiKey.KeyID)
	if err != nil {
		t.Fatal(err)
	}
	const legacyID = "legacykey0000000001"
	secret := custody.Secret("a secret minted before keys were bound")
	wrapped, err := keys.Wrap(ctx, secret, apikey.LegacySecretAAD(legacyID))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateKey(ctx, legacyID, store.Key{Account: admin.Account, ProjectID: admin.ProjectID, WrappedSecret: wrapped, CreateTime: time.Now()}); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	report, err := rewrap(ctx, p.env(), p.rewrapOpts(defaultRewrapPage), &out)
	if err != nil {
		t.Fatalf("rewrap: %v\n%s", err, out.String())
	}
	assertTally(t, report, map[string]tally{kindAPIKeys: {Examined: 2, Rewrapped: 1, AlreadyPrimary: 1}})
	k, err := db.Key(ctx, legacyID)
	if err != nil {
		t.Fatal(err)
	}
	if !k.AccountBound {
		t.Fatal("the legacy key is not account-bound after rewrap")
	}
	if got, err := keys.Unwrap(ctx, k.WrappedSecret, apikey.SecretAAD(legacyID, admin.Account)); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("the bound secret does not unwrap with its account: %v", err)
	}
	if _, err := keys.Unwrap(ctx, k.WrappedSecret, apikey.LegacySecretAAD(legacyID)); err == nil {
		t.Fatal("the bound secret still unwraps without its account")
	}
}

// TestRewrapKeepsConcurrentChange: a connector whose secret the customer
// replaced between rewrap's read and its write keeps the new secret; the
// run counts it as changed meanwhile and says to run again.
func TestRewrapKeepsConcurrentChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newProvisioner(t)
	w := provisionWorld(t, p, "1")
	for _, k := range rotatedKeys {
		p.rotate(k)
	}
	db, hooks := p.db(), p.wrapper("SEALEDSENSE_WEBHOOK_SECRETS_KEY")
	newer := custody.Secret("webhook signature secret two")
	opts := p.rewrapOpts(defaultRewrapPage)
	kinds := rewrapKinds(p.env(), opts)
	afterRead(kinds, kindDataConnectors, func(ctx context.Context) { // the customer sets a new secret, as the API would
		b, err := hooks.Wrap(ctx, newer, dataconnector.SecretAAD(w.project, w.connector))
		if err != nil {
			t.Fatal(err)
		}
		if err := db.EditDataConnector(ctx, w.connector, w.project, store.DataConnectorEdit{WrappedSecret: b, UpdateTime: time.Now()},
			func(store.DataConnector) (*store.DataConnectorStatus, *store.DeliveryJob) { return nil, nil }); err != nil {
			t.Fatal(err)
		}
	})
	var out bytes.Buffer
	report, err := runRewrap(ctx, kinds, opts, &out)
	if err == nil || !strings.Contains(err.Error(), "run rewrap again") {
		t.Fatalf("run with a concurrent change: %v, want it to ask for another run\n%s", err, out.String())
	}
	assertTally(t, report, map[string]tally{kindDataConnectors: {Examined: 1, Changed: 1}})
	c, err := db.DataConnector(ctx, w.connector)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := hooks.Unwrap(ctx, c.WrappedSecret, dataconnector.SecretAAD(w.project, w.connector)); err != nil || !bytes.Equal(got, newer) {
		t.Fatalf("connector secret after rewrap: %q, %v; want the customer's new %q", got, err, newer)
	}
	// The next run finds the new secret already under the primary.
	out.Reset()
	if report, err = rewrap(ctx, p.env(), opts, &out); err != nil {
		t.Fatalf("second rewrap: %v\n%s", err, out.String())
	}
	assertTally(t, report, map[string]tally{kindDataConnectors: {Examined: 1, AlreadyPrimary: 1}})
}

func TestParseCursor(t *testing.T) {
	tests := []struct {
		in      string
		want    cursor
		wantErr bool
	}{
		{"devices:abc", cursor{"devices", "abc"}, false},
		{"devices:", cursor{"devices", ""}, false},
		{"api-keys:a:b", cursor{"api-keys", "a:b"}, false},
		{"devices", cursor{}, true},
		{":abc", cursor{}, true},
		{"", cursor{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseCursor(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("parseCursor(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// FuzzParseCursor: every cursor a run can print parses back to itself.
func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"devices:abc", "devices:", ":", "a:b:c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseCursor(s)
		if err != nil {
			return
		}
		if again, err := parseCursor(c.String()); err != nil || again != c {
			t.Fatalf("%q parsed to %+v, which prints %q and parses to %+v, %v", s, c, c.String(), again, err)
		}
	})
}

// TestRewrapRefusesBadOptions: what an operator can get wrong is refused
// before anything is read.
func TestRewrapRefusesBadOptions(t *testing.T) {
	t.Parallel()
	p := newProvisioner(t)
	e := p.env()
	tests := []struct {
		name string
		opts func(o *rewrapOpts)
		want string
	}{
		{"page too small", func(o *rewrapOpts) { o.page = 0 }, "-page"},
		{"page too large", func(o *rewrapOpts) { o.page = maxRewrapPage + 1 }, "-page"},
		{"unknown kind", func(o *rewrapOpts) { o.after = cursor{"toasters", "x"} }, "unknown kind"},
		{"no webhook key", func(o *rewrapOpts) { o.webhookSecretsKey = "" }, "SEALEDSENSE_WEBHOOK_SECRETS_KEY"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := p.rewrapOpts(defaultRewrapPage)
			tc.opts(&o)
			_, err := rewrap(context.Background(), e, o, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// TestRewrapDevicesUnderTraffic: a device whose document its own packets
// update between rewrap's read and its write is re-wrapped all the same
// (the condition is on the secret, which traffic never touches); one
// whose PSK was replaced meanwhile keeps the new one and is counted as
// changed.
func TestRewrapDevicesUnderTraffic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newProvisioner(t)
	w := provisionWorld(t, p, "2")
	p.rotate("SEALEDSENSE_DEVICE_KEY")
	fs, db := platformtest.Firestore(t, p.vars["GOOGLE_CLOUD_PROJECT"]), p.db()
	busy, replaced := w.sensors[0].DeviceID, w.sensors[1].DeviceID
	opts := p.rewrapOpts(defaultRewrapPage)
	kinds := rewrapKinds(p.env(), opts)
	afterRead(kinds, kindDevices, func(ctx context.Context) {
		// A packet of the busy device lands, updating its document as
		// ingest does; someone with write access replaces the other's PSK.
		err := db.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
			return db.UpdateDevice(tx, busy, store.DeviceChange{Reported: map[string]any{"temperature": map[string]any{"value": 21.5}}})
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fs.Collection("devices").Doc(replaced).Update(ctx, []firestore.Update{{Path: "wrappedPsk", Value: []byte("a newer wrapping")}}); err != nil {
			t.Fatal(err)
		}
	})
	var out bytes.Buffer
	report, err := runRewrap(ctx, kinds, opts, &out)
	if err == nil || !strings.Contains(err.Error(), "run rewrap again") {
		t.Fatalf("run with a replaced PSK: %v, want it to ask for another run\n%s", err, out.String())
	}
	assertTally(t, report, map[string]tally{kindDevices: {Examined: 2, Rewrapped: 1, Changed: 1}})
	snap, err := fs.Collection("devices").Doc(replaced).Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := snap.DataAt("wrappedPsk"); !bytes.Equal(got.([]byte), []byte("a newer wrapping")) {
		t.Errorf("the replaced PSK was overwritten by the rewrap")
	}
}

// afterRead makes kind's page reader run change once a page has been read,
// before any of its records is written: a concurrent change rewrap must
// notice or tolerate.
func afterRead(kinds []secretKind, kind string, change func(ctx context.Context)) {
	for i, k := range kinds {
		if k.name != kind {
			continue
		}
		read := k.page
		kinds[i].page = func(ctx context.Context, after string, n int) ([]stored, error) {
			recs, err := read(ctx, after, n)
			if len(recs) > 0 {
				change(ctx)
			}
			return recs, err
		}
	}
}
