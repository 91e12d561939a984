package store_test

import (
	"context"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/shared/store"
)

// The tests in this file run against the Firestore emulator: what a
// write's shape makes Firestore refuse only Firestore can say.
func TestMain(m *testing.M) { platformtest.Main(m) }

// TestDeviceChangeSameConnectorTwice: a packet an honest gateway forwarded
// twice is two hearers from one connector. The device change that
// records them is one write Firestore accepts, keeping the first copy.
func TestDeviceChangeSameConnectorTwice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := store.New(platformtest.Firestore(t, platformtest.ProjectID(t)))
	at := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	err := db.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		return db.CreateDevice(tx, "dev", store.Device{Type: "temperature", PublicKeyHash: "k", CreateTime: at})
	})
	if err != nil {
		t.Fatal(err)
	}
	change := store.DeviceChange{RepliedVia: "a", Seen: []store.Sighting{
		{ConnectorID: "a", RSSI: -70, Received: at},
		{ConnectorID: "b", RSSI: -90, Received: at},
		{ConnectorID: "a", RSSI: -72, Received: at.Add(5 * time.Millisecond)},
	}}
	err = db.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		return db.UpdateDevice(tx, "dev", change)
	})
	if err != nil {
		t.Fatalf("the device change was refused: %v", err)
	}
	d, err := db.Device(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	if a := d.Links["a"]; a.RSSI != -70 || !a.LastSeen.Equal(at) || a.Replies != 1 {
		t.Fatalf("link a %+v, want the first copy's RSSI and time, one reply", a)
	}
	if b := d.Links["b"]; b.RSSI != -90 {
		t.Fatalf("link b %+v", b)
	}
}

// TestEventOfType: the load tool sizes storage from one stored event of a
// type, with the fields Firestore holds; a type with none is NotFound.
func TestEventOfType(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := store.New(platformtest.Firestore(t, platformtest.ProjectID(t)))
	at := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	if err := db.CreateEventAlone(ctx, "ev1", store.Event{ProjectID: "p", DeviceID: "d", EventType: "temperature",
		Timestamp: at, JSON: []byte(`{}`), ExpireAt: at.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	id, fields, err := db.EventOfType(ctx, "temperature")
	if err != nil || id != "ev1" || fields["deviceId"] != "d" || fields["storedAt"] == nil {
		t.Fatalf("EventOfType = %q, %v, %v; want ev1 with its fields, storedAt set by the server", id, fields, err)
	}
	if _, _, err := db.EventOfType(ctx, "touch"); !store.IsNotFound(err) {
		t.Fatalf("a type with no event: %v; want NotFound", err)
	}
}
