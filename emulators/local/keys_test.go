package local_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/sealedsense/sealedsense/emulators/local"
	"github.com/sealedsense/sealedsense/emulators/local/localtest"
	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/shared/keybackup"
)

// keyTestConfig runs sensors that start a new handshake after 5 s of
// silence (2 minutes in the field), so a lost session is replaced within
// the test, and an ingest that reads the cloud's keys each second.
func keyTestConfig() local.Config {
	return local.Config{Sensors: 4, Connectors: 2, SilentAfter: 5 * time.Second,
		FunctionsEnv: []string{"SEALEDSENSE_INGEST_KEY_REFRESH_EVERY=1s"}}
}

// handshakesAndAcks snapshots each sensor's handshake and ACK counters.
func handshakesAndAcks(d *local.Deployment, devices []string) map[string][2]uint64 {
	out := map[string][2]uint64{}
	for _, dev := range devices {
		st := d.Sim.Sensor(dev).Stats()
		out[dev] = [2]uint64{st.Handshakes, st.Acked}
	}
	return out
}

// waitAcked waits until every sensor has had readings acknowledged since
// before (nil: since it started).
func waitAcked(t *testing.T, d *local.Deployment, devices []string, before map[string][2]uint64) {
	t.Helper()
	localtest.WaitUntil(t, 60*time.Second, "new ACKs for every sensor", func() (bool, string) {
		now := handshakesAndAcks(d, devices)
		for _, dev := range devices {
			if now[dev][1] <= before[dev][1] {
				return false, "sensor " + dev + " has no new ACK"
			}
		}
		return true, ""
	})
}

// waitRehandshakeAndAcks waits until every sensor has made a new
// handshake since before and had readings acknowledged under it.
func waitRehandshakeAndAcks(t *testing.T, d *local.Deployment, devices []string, before map[string][2]uint64, timeout time.Duration) {
	t.Helper()
	localtest.WaitUntil(t, timeout, "new handshake and ACKs for every sensor", func() (bool, string) {
		now := handshakesAndAcks(d, devices)
		for _, dev := range devices {
			if now[dev][0] <= before[dev][0] || now[dev][1] <= before[dev][1] {
				return false, fmt.Sprintf("sensor %s: handshakes %d→%d, acked %d→%d", dev, before[dev][0], now[dev][0], before[dev][1], now[dev][1])
			}
		}
		return true, ""
	})
}

// wipe deletes every document of the named collections, as a lost or
// damaged database would.
func wipe(t *testing.T, d *local.Deployment, collections ...string) int {
	t.Helper()
	ctx := context.Background()
	n := 0
	for _, c := range collections {
		docs, err := d.FS.Collection(c).Documents(ctx).GetAll()
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range docs {
			if _, err := doc.Ref.Delete(ctx); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	return n
}

// TestRestoreDrill is the operators' restore drill, run with the
// operators' command: sensors report, the registry is backed up to both
// buckets, then the registry collections and every live session are
// wiped and the first bucket's copy is deleted. A restore from the second
// bucket brings the same sensors back: each handshakes again with the
// keys it was made with, and no reading is lost.
func TestRestoreDrill(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := localtest.Start(t, keyTestConfig())
	devices := d.Devices()
	waitAcked(t, d, devices, nil)

	gcs := platformtest.Storage(t)
	b1, b2 := platformtest.ProjectID(t)+"-keys-1", platformtest.ProjectID(t)+"-keys-2"
	for _, b := range []string{b1, b2} {
		if err := gcs.Bucket(b).Create(ctx, "test", nil); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := d.Provision(ctx, "backup", "-buckets", b1+","+b2); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	object, err := keybackup.Latest(ctx, gcs, b1, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}

	before := handshakesAndAcks(d, devices)
	wiped := wipe(t, d, "devices", "deviceKeys", "cloud", "connectors", "sessions")
	if err := gcs.Bucket(b1).Object(object).Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := d.Provision(ctx, "restore", "-from", "gs://"+b1); err == nil || !strings.Contains(err.Error(), "no backup") {
		t.Fatalf("restore from the emptied first bucket: %v\n%s; want no backup", err, out)
	}
	out, err := d.Provision(ctx, "restore", "-from", "gs://"+b2)
	if err != nil {
		t.Fatalf("restore from the second bucket: %v\n%s", err, out)
	}
	t.Logf("wiped %d documents; restore reported:\n%s", wiped, out)

	waitRehandshakeAndAcks(t, d, devices, before, 90*time.Second)
	drain(t, d)
	assertExactlyOnce(t, d, devices)
}

// rotateKMS makes a new primary version of the CryptoKey key and returns
// the name of the one it replaced.
func rotateKMS(t *testing.T, key string) string {
	t.Helper()
	ctx := context.Background()
	kc := platformtest.KMS(t)
	ck, err := kc.GetCryptoKey(ctx, &kmspb.GetCryptoKeyRequest{Name: key})
	if err != nil {
		t.Fatal(err)
	}
	v, err := kc.CreateCryptoKeyVersion(ctx, &kmspb.CreateCryptoKeyVersionRequest{Parent: key, CryptoKeyVersion: &kmspb.CryptoKeyVersion{}})
	if err != nil {
		t.Fatal(err)
	}
	id := v.GetName()[strings.LastIndex(v.GetName(), "/")+1:]
	if _, err := kc.UpdateCryptoKeyPrimaryVersion(ctx, &kmspb.UpdateCryptoKeyPrimaryVersionRequest{Name: key, CryptoKeyVersionId: id}); err != nil {
		t.Fatal(err)
	}
	return ck.GetPrimary().GetName()
}

func disableKMS(t *testing.T, version string) {
	t.Helper()
	_, err := platformtest.KMS(t).UpdateCryptoKeyVersion(context.Background(), &kmspb.UpdateCryptoKeyVersionRequest{
		CryptoKeyVersion: &kmspb.CryptoKeyVersion{Name: version, State: kmspb.CryptoKeyVersion_DISABLED},
		UpdateMask:       &fieldmaskpb.FieldMask{Paths: []string{"state"}},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestKMSRotationWithTraffic: with sensors reporting, the device-key and
// session-KEK CryptoKeys get new primary versions, the operators' rewrap
// moves every stored secret onto them, and the old versions are disabled.
// A restarted functions server (new instances, nothing cached) then
// opens the live sessions and, once those are wiped, every sensor's new
// handshake: nothing needs the disabled versions, and no reading is lost.
func TestKMSRotationWithTraffic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := localtest.Start(t, keyTestConfig())
	devices := d.Devices()
	waitAcked(t, d, devices, nil)
	old := []string{rotateKMS(t, d.Keys.Device), rotateKMS(t, d.Keys.SessionKEK)}
	out, err := d.Provision(ctx, "rewrap")
	if err != nil {
		t.Fatalf("rewrap: %v\n%s", err, out)
	}
	t.Logf("rewrap reported:\n%s", out)
	for _, v := range old {
		disableKMS(t, v)
	}
	d.KillFunctions()
	if err := d.StartFunctions(); err != nil {
		t.Fatal(err)
	}
	// The live sessions open under the re-wrapped KEK.
	waitAcked(t, d, devices, handshakesAndAcks(d, devices))
	// New handshakes unwrap each PSK and the cloud's static key.
	before := handshakesAndAcks(d, devices)
	wipe(t, d, "sessions")
	waitRehandshakeAndAcks(t, d, devices, before, 90*time.Second)
	drain(t, d)
	assertExactlyOnce(t, d, devices)
	for reason, n := range rejections(t, d) {
		if reason == "decrypt" || reason == "handshake-auth" {
			t.Errorf("%d uplinks refused as %s after the rotation", n, reason)
		}
	}
}
