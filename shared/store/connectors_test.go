package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/shared/devconfig"
	"github.com/sealedsense/sealedsense/shared/store"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func newDB(t *testing.T) *store.DB {
	t.Helper()
	return store.New(platformtest.Firestore(t, platformtest.ProjectID(t)))
}

// sensor stores a provisioned sensor of project.
func sensor(t *testing.T, db *store.DB, id, project string) {
	t.Helper()
	err := db.RunTransaction(context.Background(), func(ctx context.Context, tx *firestore.Transaction) error {
		return db.CreateDevice(tx, id, store.Device{Type: "temperature", ProductNumber: "SS-102058", ProjectID: project,
			PublicKeyHash: "hash-" + id, WrappedPSK: []byte("wrapped"), PSKKey: "k", CreateTime: t0})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRegisterConnectorMakesDevice: a connector registered into a project
// is a device of type ccon there, with no keys; one with no project is
// none.
func TestRegisterConnectorMakesDevice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newDB(t)
	if err := db.CreateConnector(ctx, "ccon-1", store.Connector{ProjectID: "p", PublicKey: make([]byte, 32), CreateTime: t0}); err != nil {
		t.Fatal(err)
	}
	d, err := db.Device(ctx, "ccon-1")
	if err != nil {
		t.Fatalf("the registered connector has no device: %v", err)
	}
	if d.Type != store.ConnectorType || d.ProductNumber != store.ConnectorProductNumber || d.ProjectID != "p" ||
		d.PublicKey != nil || d.WrappedPSK != nil || d.PublicKeyHash != "" || !d.CreateTime.Equal(t0) {
		t.Fatalf("device %+v, want a ccon of p with no keys", d)
	}
	if err := db.CreateConnector(ctx, "ccon-1", store.Connector{ProjectID: "q", PublicKey: make([]byte, 32), CreateTime: t0}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("registering ccon-1 again: %v, want ErrExists", err)
	}
	if d, _ := db.Device(ctx, "ccon-1"); d.ProjectID != "p" {
		t.Fatalf("registering again moved the device to %q", d.ProjectID)
	}
	if err := db.CreateConnector(ctx, "ccon-2", store.Connector{PublicKey: make([]byte, 32), CreateTime: t0}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Device(ctx, "ccon-2"); !store.IsNotFound(err) {
		t.Fatalf("a connector of no project has a device: %v", err)
	}
}

// TestRegisterConnectorWithSensorID: a connector cannot take a sensor's
// id, and the refusal leaves both untouched.
func TestRegisterConnectorWithSensorID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newDB(t)
	sensor(t, db, "sensor-1", "p")
	err := db.CreateConnector(ctx, "sensor-1", store.Connector{ProjectID: "p", PublicKey: make([]byte, 32), CreateTime: t0})
	if !errors.Is(err, store.ErrSensorID) || !errors.Is(err, store.ErrExists) {
		t.Fatalf("registering a connector as sensor-1: %v, want ErrSensorID (an ErrExists)", err)
	}
	if _, err := db.Connector(ctx, "sensor-1"); !store.IsNotFound(err) {
		t.Fatalf("the refused connector was stored: %v", err)
	}
	if d, err := db.Device(ctx, "sensor-1"); err != nil || d.Type != "temperature" || string(d.WrappedPSK) != "wrapped" {
		t.Fatalf("the sensor changed: %+v, %v", d, err)
	}
}

// TestConnectorDeviceRefusesSensorPaths: a connector's device is not
// claimed, transferred or configured; its labels do change.
func TestConnectorDeviceRefusesSensorPaths(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newDB(t)
	if err := db.CreateConnector(ctx, "ccon-1", store.Connector{ProjectID: "p", PublicKey: make([]byte, 32), CreateTime: t0}); err != nil {
		t.Fatal(err)
	}
	for _, dry := range []bool{true, false} {
		if _, err := db.ClaimDevice(ctx, "ccon-1", "q", dry); !errors.Is(err, store.ErrNotSensor) {
			t.Errorf("claim (dry %v): %v, want ErrNotSensor", dry, err)
		}
	}
	if err := db.MoveDevice(ctx, "ccon-1", "p", "q"); !errors.Is(err, store.ErrNotSensor) {
		t.Errorf("move: %v, want ErrNotSensor", err)
	}
	if err := db.MoveDevice(ctx, "ccon-1", "q", "r"); !store.IsNotFound(err) {
		t.Errorf("move from a project it is not in: %v, want ErrNotFound", err)
	}
	_, err := db.SetDesiredConfiguration(ctx, "ccon-1", store.ConfigRequest{Project: "p", Desired: devconfig.Config{SampleInterval: 60}, Time: t0})
	if !errors.Is(err, devconfig.ErrInvalid) {
		t.Errorf("configure: %v, want devconfig.ErrInvalid", err)
	}
	if _, err := db.SetDeviceLabels(ctx, "ccon-1", "p", map[string]string{"site": "roof"}, nil, nil); err != nil {
		t.Errorf("labels: %v", err)
	}
	d, err := db.Device(ctx, "ccon-1")
	if err != nil || d.ProjectID != "p" || d.Labels["site"] != "roof" || d.Configuration != nil {
		t.Fatalf("device %+v, %v: want still p's, labelled, unconfigured", d, err)
	}
}

// TestSetConnectorReported: a connector's status reaches its device's
// reported state; a connector from before devices gets its device; a
// sensor with the connector's id is never written.
func TestSetConnectorReported(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newDB(t)
	sensor(t, db, "clash", "p")
	report := func(id string, reported map[string]any) error {
		return db.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
			found, err := db.ConnectorDeviceIn(tx, id)
			if err != nil {
				return err
			}
			return db.SetConnectorReported(tx, id, "p", found, reported, nil, t0)
		})
	}
	first := map[string]any{"connectionStatus": map[string]any{"connection": "ETHERNET"}}
	if err := report("legacy", first); err != nil {
		t.Fatal(err)
	}
	if err := report("legacy", map[string]any{"cellularStatus": map[string]any{"signalStrength": int64(40)}}); err != nil {
		t.Fatal(err)
	}
	d, err := db.Device(ctx, "legacy")
	if err != nil || d.Type != store.ConnectorType || d.ProjectID != "p" || len(d.Reported) != 2 {
		t.Fatalf("legacy connector's device %+v, %v: want a ccon of p with two reported types", d, err)
	}
	if err := report("clash", first); !errors.Is(err, store.ErrSensorID) {
		t.Fatalf("reporting onto a sensor: %v, want ErrSensorID", err)
	}
	if d, _ := db.Device(ctx, "clash"); d.Type != "temperature" || d.Reported != nil {
		t.Fatalf("the sensor was written: %+v", d)
	}
}

// TestDevicePSKsSkipsConnectors: re-wrapping pages through sensors only,
// each once, whatever the page size, and a short page is still the end.
func TestDevicePSKsSkipsConnectors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newDB(t)
	for _, id := range []string{"a", "c", "e"} {
		sensor(t, db, id, "p")
	}
	for _, id := range []string{"b", "d", "f"} {
		if err := db.CreateConnector(ctx, id, store.Connector{ProjectID: "p", PublicKey: make([]byte, 32), CreateTime: t0}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []int{1, 2, 3, 10} {
		var got []string
		after := ""
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatalf("page size %d: no end", n)
			}
			page, err := db.DevicePSKs(ctx, after, n)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range page {
				got = append(got, w.ID)
				if string(w.Doc.WrappedPSK) != "wrapped" {
					t.Fatalf("page size %d: %s has no PSK", n, w.ID)
				}
			}
			if len(page) < n {
				break
			}
			after = page[len(page)-1].ID
		}
		if !slices.Equal(got, []string{"a", "c", "e"}) {
			t.Errorf("page size %d: %v, want the sensors a c e", n, got)
		}
	}
}

func TestIsConnectorDevice(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		rec  store.Record
		want bool
	}{
		{store.Record{Kind: "devices", ID: "ccon-1", Fields: map[string]any{"type": "ccon"}}, true},
		{store.Record{Kind: "devices", ID: "s", Fields: map[string]any{"type": "temperature"}}, false},
		{store.Record{Kind: "connectors", ID: "ccon-1", Fields: map[string]any{"type": "ccon"}}, false},
	} {
		if got := store.IsConnectorDevice(tc.rec); got != tc.want {
			t.Errorf("IsConnectorDevice(%s/%s) = %v, want %v", tc.rec.Kind, tc.rec.ID, got, tc.want)
		}
	}
}
