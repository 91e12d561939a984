package local_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/emulators/local"
	"github.com/sealedsense/sealedsense/emulators/local/localtest"
	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/registry"
	"github.com/sealedsense/sealedsense/shared/store"
)

// TestCloudKeyRotationWithSensorsRunning: the cloud's static and channel
// keys are rotated while sensors report. Every sensor moves to the new
// static key through its replies, and every connector process learns the
// new channel key from the downlinks and saves it; the old versions are
// retired, the connectors forget the old channel key, the sensors keep
// reporting through them, and every reading is stored exactly once.
func TestCloudKeyRotationWithSensorsRunning(t *testing.T) {
	ctx := context.Background()
	d := localtest.Start(t, local.Config{Sensors: 8, Connectors: 2,
		// Ingest reads the keys again each second, so the rotation
		// reaches it within the test rather than in 5 minutes.
		FunctionsEnv: []string{"SEALEDSENSE_INGEST_KEY_REFRESH_EVERY=1s"}})
	devices := d.Devices()
	db := store.New(d.FS)
	// Every sensor handshakes under version 1 and reports.
	localtest.WaitUntil(t, 30*time.Second, "every sensor handshaking under static version 1", func() (bool, string) {
		return onVersion(t, db, devices, 1)
	})

	kc := platformtest.KMS(t)
	reg := registry.New(d.FS, custody.NewWrapper(kc, d.Keys.Device), nil)
	k, err := reg.RotateCloudKey(ctx, store.RoleStatic, custody.NewWrapper(kc, d.Keys.SessionKEK))
	if err != nil {
		t.Fatal(err)
	}
	ch, err := reg.RotateCloudKey(ctx, store.RoleChannel, custody.NewWrapper(kc, d.Keys.SessionKEK))
	if err != nil {
		t.Fatal(err)
	}
	localtest.WaitUntil(t, 30*time.Second, "every connector trusting channel version 2", func() (bool, string) {
		return connectorsTrust(t, d, ch.Public, 2)
	})
	localtest.WaitUntil(t, 30*time.Second, "every sensor moving to static version 2", func() (bool, string) {
		if ok, why := onVersion(t, db, devices, 2); !ok {
			return false, why
		}
		for _, dev := range devices {
			if got := d.Sim.Sensor(dev).CloudPublic(); !bytes.Equal(got, k.Public) {
				return false, "sensor " + dev + " still uses the old key"
			}
		}
		return true, ""
	})
	if n, err := db.DevicesOnStaticKey(ctx, 1); err != nil || n != 0 {
		t.Fatalf("%d devices on static version 1 (%v), want none before retiring it", n, err)
	}
	if err := reg.RetireCloudKey(ctx, store.RoleStatic, 1); err != nil {
		t.Fatal(err)
	}
	if err := reg.RetireCloudKey(ctx, store.RoleChannel, 1); err != nil {
		t.Fatal(err)
	}
	localtest.WaitUntil(t, 30*time.Second, "every connector forgetting channel version 1", func() (bool, string) {
		return connectorsTrust(t, d, ch.Public, 1)
	})
	// Each sensor keeps reporting under the new key alone.
	before := ackedBy(d, devices)
	time.Sleep(5 * time.Second)
	after := ackedBy(d, devices)
	for _, dev := range devices {
		if after[dev] <= before[dev] {
			t.Errorf("sensor %s: no reading acknowledged in the 5 s after the retirement (%d before, %d after)", dev, before[dev], after[dev])
		}
	}
	drain(t, d)
	assertExactlyOnce(t, d, devices)
}

// ackedBy is how many readings the cloud has acknowledged to each sensor.
func ackedBy(d *local.Deployment, devices []string) map[string]uint64 {
	out := map[string]uint64{}
	for _, dev := range devices {
		out[dev] = d.Sim.Sensor(dev).Stats().Acked
	}
	return out
}

// onVersion reports whether every device last handshook under static key
// version v, and if not, which did not.
func onVersion(t *testing.T, db *store.DB, devices []string, v int) (bool, string) {
	t.Helper()
	for _, dev := range devices {
		got, err := db.Device(context.Background(), dev)
		if err != nil {
			t.Fatal(err)
		}
		if got.StaticKeyVersion() != v {
			return false, fmt.Sprintf("device %s is on version %d", dev, got.StaticKeyVersion())
		}
	}
	return true, ""
}

// connectorsTrust reports whether every connector's credentials file
// trusts n channel keys, the newest being newest.
func connectorsTrust(t *testing.T, d *local.Deployment, newest []byte, n int) (bool, string) {
	t.Helper()
	for i := 1; ; i++ {
		id := fmt.Sprintf("ccon-%d", i)
		c, err := credentials.LoadConnector(filepath.Join(d.DataDir(), "credentials", id+".json"))
		if errors.Is(err, fs.ErrNotExist) && i > 1 {
			return true, ""
		}
		if err != nil {
			t.Fatal(err)
		}
		trusted := c.Trusted()
		if len(trusted) != n || !bytes.Equal(trusted[len(trusted)-1], newest) {
			return false, fmt.Sprintf("connector %s trusts %d channel keys, want %d ending with the new one", id, len(trusted), n)
		}
	}
}
