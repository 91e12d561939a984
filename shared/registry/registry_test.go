package registry_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"sync"
	"testing"

	"cloud.google.com/go/kms/apiv1/kmspb"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/registry"
)

func TestMain(m *testing.M) { platformtest.Main(m) }

type fixture struct {
	reg       *registry.Registry
	kek       *custody.Wrapper
	deviceKey string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	ctx := context.Background()
	project := platformtest.ProjectID(t)
	kc := platformtest.KMS(t)
	ring, err := kc.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{Parent: "projects/" + project + "/locations/europe", KeyRingId: "r"})
	if err != nil {
		t.Fatal(err)
	}
	key := func(id string) string {
		k, err := kc.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{Parent: ring.GetName(), CryptoKeyId: id, CryptoKey: &kmspb.CryptoKey{
			Purpose:         kmspb.CryptoKey_ENCRYPT_DECRYPT,
			VersionTemplate: &kmspb.CryptoKeyVersionTemplate{Algorithm: kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return k.GetName()
	}
	deviceKey := key("device-keys")
	w := custody.NewWrapper(kc, deviceKey)
	return fixture{
		reg:       registry.New(platformtest.Firestore(t, project), w, nil),
		kek:       custody.NewWrapper(kc, key("session-kek")),
		deviceKey: deviceKey,
	}
}

func TestBootstrapIsIdempotentUnderRaces(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	const racers = 4
	results := make([]registry.CloudKeys, racers)
	errs := make([]error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() { results[i], errs[i] = f.reg.Bootstrap(ctx, f.kek, f.deviceKey) })
	}
	wg.Wait()
	for i := range racers {
		if errs[i] != nil {
			t.Fatalf("bootstrap %d: %v", i, errs[i])
		}
		if !bytes.Equal(results[i].StaticPublic(), results[0].StaticPublic()) {
			t.Fatal("concurrent bootstraps returned different cloud keys")
		}
	}
	again, err := f.reg.Bootstrap(ctx, f.kek, f.deviceKey)
	if err != nil || !bytes.Equal(again.StaticPublic(), results[0].StaticPublic()) {
		t.Fatalf("a second bootstrap replaced the keys: %v", err)
	}
	statics, err := f.reg.CloudStatics(ctx, again)
	if err != nil || len(statics) != 1 || !bytes.Equal(statics[0].Public[:], again.StaticPublic()) {
		t.Fatalf("CloudStatics = %d keys, %v", len(statics), err)
	}
	if _, err := f.reg.SessionEnvelope(ctx, f.kek, again); err != nil {
		t.Fatalf("SessionEnvelope: %v", err)
	}
	// The session KEK is wrapped by its own CryptoKey, not the device key.
	if _, err := f.reg.SessionEnvelope(ctx, custody.NewWrapper(platformtest.KMS(t), f.deviceKey), again); err == nil {
		t.Fatal("the session KEK unwrapped with the device key")
	}
}

func TestDevicesAndLookup(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	var made []registry.Manufactured
	for range 3 {
		m, err := f.reg.Manufacture(ctx, registry.Spec{Type: "temperature", ProductNumber: "p", KitID: "kit-1", KitName: "Kit"}, f.deviceKey)
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, m)
	}
	for _, m := range made {
		d, err := f.reg.DeviceByPublicKey(ctx, m.Static.Public)
		if err != nil {
			t.Fatal(err)
		}
		if d.ID != m.Device.ID || d.ProjectID != "" || d.KitID != "kit-1" {
			t.Fatalf("lookup gave %+v, want unclaimed %s in kit-1", d.ID, m.Device.ID)
		}
		psk, err := f.reg.PSK(ctx, d)
		if err != nil || !bytes.Equal(psk[:], m.PSK) {
			t.Fatalf("PSK: %v", err)
		}
		if len(d.ID) != 20 {
			t.Fatalf("device id %q is not DT-style", d.ID)
		}
	}
	// A PSK copied onto another device's record does not unwrap there.
	swapped := made[0].Device
	swapped.ID = made[1].Device.ID
	if _, err := f.reg.PSK(ctx, swapped); err == nil {
		t.Fatal("a PSK unwrapped for the wrong device")
	}
	if _, err := f.reg.DeviceByPublicKey(ctx, [32]byte{1, 2, 3}); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("unknown sensor: err = %v, want ErrNotFound", err)
	}
}

func TestConnectors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	pub, _, _ := ed25519.GenerateKey(nil)
	if err := f.reg.RegisterConnector(ctx, "ccon-1", "Lab", "proj", pub); err != nil {
		t.Fatal(err)
	}
	if err := f.reg.RegisterConnector(ctx, "ccon-1", "Imposter", "", pub); !errors.Is(err, registry.ErrExists) {
		t.Fatalf("re-registering = %v, want ErrExists", err)
	}
	if err := f.reg.RegisterConnector(ctx, "ccon-2", "Short", "", pub[:5]); err == nil {
		t.Fatal("a short public key was accepted")
	}
	c, err := f.reg.Connector(ctx, "ccon-1")
	if err != nil || c.Revoked || !bytes.Equal(c.PublicKey, pub) {
		t.Fatalf("Connector = %+v, %v", c, err)
	}
	if err := f.reg.RevokeConnector(ctx, "ccon-1"); err != nil {
		t.Fatal(err)
	}
	if c, err := f.reg.Connector(ctx, "ccon-1"); err != nil || !c.Revoked {
		t.Fatalf("after revoke: %+v, %v", c, err)
	}
	if _, err := f.reg.Connector(ctx, "missing"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("missing connector: %v", err)
	}
	if err := f.reg.RevokeConnector(ctx, "missing"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("revoke missing: %v", err)
	}
}
