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

// --- ingest ---

// DeviceIn reads a device in tx.
func (db *DB) DeviceIn(tx *firestore.Transaction, id string) (Device, error) {
	snap, err := tx.Get(db.deviceRef(id))
	if err != nil {
		return Device{}, wrap("device "+id, err)
	}
	return decode[Device](snap)
}

// SetLastHandshake records, in tx, the newest handshake timestamp a
// device's sessions were accepted with, in ns.
func (db *DB) SetLastHandshake(tx *firestore.Transaction, id string, ns int64) error {
	return tx.Update(db.deviceRef(id), []firestore.Update{{Path: "lastHandshakeNs", Value: ns}})
}

// ReplyVerdict is the judgement of a device's pending reply, from the
// reply counters its next uplink lists.
type ReplyVerdict struct {
	Via   string // the connector the reply went through
	Acked bool   // listed, so it arrived; otherwise it was lost
}

// Sighting is a connector's reception of a device, for its link.
type Sighting struct {
	ConnectorID string
	RSSI        float64 // already smoothed with the link's
	Received    time.Time
}

// DeviceChange is what the pipeline learnt about a device from one packet
// or one reply. Its zero value changes nothing.
type DeviceChange struct {
	// Verdict, if set, is counted on its link, and the pending reply
	// cleared.
	Verdict *ReplyVerdict
	// RepliedVia, if set, is the connector a reply went through, counted
	// on its link.
	RepliedVia string
	// Pending, if set, is the reply to judge at the next uplink.
	Pending *PendingReply
	// Seen updates the links of the connectors that heard the device.
	Seen []Sighting
	// NetworkStatusAt, if set, is when a networkStatus event was stored.
	NetworkStatusAt time.Time
	// Reported is the latest event data per event type to report.
	Reported map[string]any
}

// updates turns c into a device document's field updates.
func (c DeviceChange) updates() []firestore.Update {
	var upd []firestore.Update
	if v := c.Verdict; v != nil {
		field := "failed"
		if v.Acked {
			field = "acked"
		}
		upd = append(upd,
			firestore.Update{FieldPath: firestore.FieldPath{"links", v.Via, field}, Value: firestore.Increment(1)},
			firestore.Update{Path: "pendingReply", Value: firestore.Delete})
	}
	if c.RepliedVia != "" {
		upd = append(upd, firestore.Update{FieldPath: firestore.FieldPath{"links", c.RepliedVia, "replies"}, Value: firestore.Increment(1)})
	}
	if c.Pending != nil {
		upd = append(upd, firestore.Update{Path: "pendingReply", Value: *c.Pending})
	}
	for _, s := range c.Seen {
		upd = append(upd,
			firestore.Update{FieldPath: firestore.FieldPath{"links", s.ConnectorID, "rssi"}, Value: s.RSSI},
			firestore.Update{FieldPath: firestore.FieldPath{"links", s.ConnectorID, "lastSeen"}, Value: s.Received})
	}
	if !c.NetworkStatusAt.IsZero() {
		upd = append(upd, firestore.Update{Path: "lastNetworkStatus", Value: c.NetworkStatusAt})
	}
	for typ, data := range c.Reported {
		upd = append(upd, firestore.Update{FieldPath: firestore.FieldPath{"reported", typ}, Value: data})
	}
	return upd
}

// UpdateDevice applies c to a device in tx; a change of nothing writes
// nothing.
func (db *DB) UpdateDevice(tx *firestore.Transaction, id string, c DeviceChange) error {
	upd := c.updates()
	if len(upd) == 0 {
		return nil
	}
	return tx.Update(db.deviceRef(id), upd)
}
