package store

import (
	"context"
	"time"

	"cloud.google.com/go/firestore"
)

// devicesCollection holds one document per provisioned sensor. Devices
// live in one top-level collection with a projectId field rather than
// under their project, so claiming or transferring a device is an update,
// not a move of its document.
const devicesCollection = "devices"

// Device is a sensor's document: what provisioning made (its keys, the
// PSK only KMS-wrapped), what the customer set (labels, project) and what
// the pipeline learnt (the latest event per type, links to connectors).
// The pipeline's fields are omitted until first written, so a new
// device's document has only provisioning's fields.
type Device struct {
	Type          string            `firestore:"type"`
	ProductNumber string            `firestore:"productNumber"`
	KitID         string            `firestore:"kitId"`
	ProjectID     string            `firestore:"projectId"` // empty while the device is unclaimed
	Labels        map[string]string `firestore:"labels"`
	PublicKey     []byte            `firestore:"publicKey"`
	PublicKeyHash string            `firestore:"publicKeyHash"`
	WrappedPSK    []byte            `firestore:"wrappedPsk"`
	PSKKey        string            `firestore:"pskKey"` // the CryptoKey that wrapped the PSK, for re-wrapping after rotation
	CreateTime    time.Time         `firestore:"createTime"`

	// Reported is the latest event data per event type (DT's reported).
	Reported map[string]any `firestore:"reported,omitempty"`
	// LastHandshakeNs is the newest handshake timestamp accepted, in ns:
	// Firestore timestamps keep only µs.
	LastHandshakeNs   int64           `firestore:"lastHandshakeNs,omitempty"`
	Links             map[string]Link `firestore:"links,omitempty"`
	Pending           *PendingReply   `firestore:"pendingReply,omitempty"`
	LastNetworkStatus time.Time       `firestore:"lastNetworkStatus,omitempty"`
}

// Link is what the cloud has learnt about reaching a device through one
// connector: recent signal, and how many replies sent through it arrived.
type Link struct {
	RSSI     float64   `firestore:"rssi"` // exponentially weighted
	Replies  int64     `firestore:"replies"`
	Acked    int64     `firestore:"acked"`
	Failed   int64     `firestore:"failed"`
	LastSeen time.Time `firestore:"lastSeen"`
}

// PendingReply is the last reply sent to a device, judged when the device
// next speaks: its uplink lists the reply counters it received.
type PendingReply struct {
	Via     string    `firestore:"via"`
	Counter int64     `firestore:"counter"`
	Sent    time.Time `firestore:"sent"`
}

func (db *DB) deviceRef(id string) *firestore.DocumentRef {
	return db.fs.Collection(devicesCollection).Doc(id)
}

// Device reads one device.
func (db *DB) Device(ctx context.Context, id string) (Device, error) {
	return get[Device](ctx, db.deviceRef(id), "device "+id)
}

// Devices reads the devices of ids that exist, in one round trip, keyed
// by id.
func (db *DB) Devices(ctx context.Context, ids []string) (map[string]Device, error) {
	refs := make([]*firestore.DocumentRef, len(ids))
	for i, id := range ids {
		refs[i] = db.deviceRef(id)
	}
	snaps, err := db.fs.GetAll(ctx, refs)
	if err != nil {
		return nil, wrap("devices", err)
	}
	out := make(map[string]Device, len(snaps))
	for _, s := range snaps {
		if !s.Exists() {
			continue
		}
		d, err := decode[Device](s)
		if err != nil {
			return nil, err
		}
		out[s.Ref.ID] = d
	}
	return out, nil
}

// --- deliver ---

// DeviceReported is a device's id and the event types it has reported.
type DeviceReported struct {
	ID    string
	Types []string
}

// ProjectDevicesReported lists up to limit of a project's devices in id
// order, after the device afterID when it is set, with the event types
// each has reported. Ordered by id after one equality, it needs no
// composite index.
func (db *DB) ProjectDevicesReported(ctx context.Context, project, afterID string, limit int) ([]DeviceReported, error) {
	q := db.fs.Collection(devicesCollection).Select("reported").Where("projectId", "==", project).OrderBy(firestore.DocumentID, firestore.Asc)
	if afterID != "" {
		q = q.StartAfter(afterID)
	}
	docs, err := q.Limit(limit).Documents(ctx).GetAll()
	if err != nil {
		return nil, wrap("devices of "+project, err)
	}
	out := make([]DeviceReported, len(docs))
	for i, d := range docs {
		reported, _ := d.DataAt("reported")
		m, _ := reported.(map[string]any)
		types := make([]string, 0, len(m))
		for t := range m {
			types = append(types, t)
		}
		out[i] = DeviceReported{ID: d.Ref.ID, Types: types}
	}
	return out, nil
}
