package store

import (
	"context"
	"errors"
	"time"

	"cloud.google.com/go/firestore"
)

// connectorsCollection holds one document per registered Cloud Connector,
// named by its id.
const connectorsCollection = "connectors"

// Connector is a registered Cloud Connector: its identity (only the
// public half of its key) and the status its heartbeats report.
type Connector struct {
	DisplayName string `firestore:"displayName"`
	ProjectID   string `firestore:"projectId"` // the customer project its status events belong to
	PublicKey   []byte `firestore:"publicKey"` // Ed25519
	// PreviousPublicKey is the key a rotation replaced; it is still
	// accepted before PreviousUntil, so the connector can be switched to
	// its new credentials within that grace period.
	PreviousPublicKey []byte    `firestore:"previousPublicKey,omitempty"`
	PreviousUntil     time.Time `firestore:"previousUntil,omitempty"`
	KeyRotateTime     time.Time `firestore:"keyRotateTime,omitempty"`
	Revoked           bool      `firestore:"revoked"`
	RevokeTime        time.Time `firestore:"revokeTime,omitempty"`
	CreateTime        time.Time `firestore:"createTime"`

	// Connection, Ethernet and Cellular are what the connector's last
	// status events said (the change of each is an event); Available
	// the links its last heartbeat said are up.
	Connection string         `firestore:"connection,omitempty"`
	Ethernet   *ConnectorLink `firestore:"ethernet,omitempty"`
	Cellular   *ConnectorLink `firestore:"cellular,omitempty"`
	Available  []string       `firestore:"available,omitempty"`
	Online     bool           `firestore:"online,omitempty"`
	LastSeen   time.Time      `firestore:"lastSeen,omitempty"`
	// LastStatus is the connector's own clock on its last heartbeat, to
	// drop reordered ones.
	LastStatus time.Time `firestore:"lastStatus,omitempty"`
	// OfflineAlerted is set once the sweep logged this outage as long;
	// a heartbeat clears it.
	OfflineAlerted bool `firestore:"offlineAlerted"`
}

// ConnectorLink is what a connector said of one backhaul link.
type ConnectorLink struct {
	Up             bool     `firestore:"up"`
	MACAddress     string   `firestore:"macAddress,omitempty"`
	SignalStrength int      `firestore:"signalStrength,omitempty"`
	Errors         []string `firestore:"errors,omitempty"`
}

func (db *DB) connectorRef(id string) *firestore.DocumentRef {
	return db.fs.Collection(connectorsCollection).Doc(id)
}

// CreateConnector registers a connector and, when it belongs to a
// project, creates its device there (type ConnectorType), in one
// transaction. An id in use is ErrExists, so a key cannot be replaced by
// registering again; an id a sensor has is ErrSensorID (an ErrExists).
func (db *DB) CreateConnector(ctx context.Context, id string, c Connector) error {
	err := db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		found, err := db.ConnectorDeviceIn(tx, id)
		switch {
		case err != nil:
			return err
		case found.Sensor:
			return ErrSensorID
		case found.Exists:
			return ErrExists
		}
		if err := tx.Create(db.connectorRef(id), c); err != nil {
			return err
		}
		if c.ProjectID == "" {
			return nil // no project: its status events belong to no customer
		}
		return tx.Create(db.deviceRef(id), newConnectorDevice(c.ProjectID, c.CreateTime, nil))
	})
	return wrap("register connector "+id, err)
}

// Connector reads a connector, revoked or not.
func (db *DB) Connector(ctx context.Context, id string) (Connector, error) {
	return get[Connector](ctx, db.connectorRef(id), "connector "+id)
}

// RevokeConnector stops a connector's envelopes from being accepted.
func (db *DB) RevokeConnector(ctx context.Context, id string, at time.Time) error {
	_, err := db.connectorRef(id).Update(ctx, []firestore.Update{
		{Path: "revoked", Value: true},
		{Path: "revokeTime", Value: at},
	})
	return wrap("revoke connector "+id, err)
}

// ErrRevokedConnector refuses to rotate a revoked connector's key.
var ErrRevokedConnector = errors.New("store: connector is revoked")

// RotateConnectorKey makes pub the connector's key and keeps the current
// one as the previous, accepted until until. A previous key from an earlier
// rotation is dropped, whatever its grace: one rotation at a time.
func (db *DB) RotateConnectorKey(ctx context.Context, id string, pub []byte, at, until time.Time) error {
	ref := db.connectorRef(id)
	err := db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snap, err := tx.Get(ref)
		if err != nil {
			return err
		}
		c, err := decode[Connector](snap)
		if err != nil {
			return err
		}
		if c.Revoked {
			return ErrRevokedConnector
		}
		return tx.Update(ref, []firestore.Update{
			{Path: "publicKey", Value: pub},
			{Path: "previousPublicKey", Value: c.PublicKey},
			{Path: "previousUntil", Value: until},
			{Path: "keyRotateTime", Value: at},
		})
	})
	return wrap("rotate connector key "+id, err)
}

// connectorsSilent is the sweep's query: online connectors whose last
// heartbeat is older than a cutoff (an equality and a range on different
// fields need a composite index).
var _ = needs(connectorsCollection, Field{"online", Asc}, Field{"lastSeen", Asc})

// SilentConnectors lists the ids of online connectors not heard from
// since cutoff.
func (db *DB) SilentConnectors(ctx context.Context, cutoff time.Time) ([]string, error) {
	docs, err := db.fs.Collection(connectorsCollection).
		Where("online", "==", true).Where("lastSeen", "<", cutoff).Select().Documents(ctx).GetAll()
	if err != nil {
		return nil, wrap("silent connectors", err)
	}
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.Ref.ID
	}
	return ids, nil
}

// OnlineConnectors lists the connectors whose last status was online.
func (db *DB) OnlineConnectors(ctx context.Context) (map[string]Connector, error) {
	docs, err := db.fs.Collection(connectorsCollection).Where("online", "==", true).Documents(ctx).GetAll()
	if err != nil {
		return nil, wrap("online connectors", err)
	}
	out := make(map[string]Connector, len(docs))
	for _, d := range docs {
		c, err := decode[Connector](d)
		if err != nil {
			return nil, err
		}
		out[d.Ref.ID] = c
	}
	return out, nil
}

// ConnectorIn reads a connector in tx.
func (db *DB) ConnectorIn(tx *firestore.Transaction, id string) (Connector, error) {
	snap, err := tx.Get(db.connectorRef(id))
	if err != nil {
		return Connector{}, wrap("connector "+id, err)
	}
	return decode[Connector](snap)
}

// SetConnectorStatus writes a connector's status fields in tx.
func (db *DB) SetConnectorStatus(tx *firestore.Transaction, id string, c Connector) error {
	return tx.Update(db.connectorRef(id), []firestore.Update{
		{Path: "connection", Value: c.Connection},
		{Path: "ethernet", Value: c.Ethernet},
		{Path: "cellular", Value: c.Cellular},
		{Path: "available", Value: c.Available},
		{Path: "online", Value: c.Online},
		{Path: "lastSeen", Value: c.LastSeen},
		{Path: "lastStatus", Value: c.LastStatus},
		{Path: "offlineAlerted", Value: c.OfflineAlerted},
	})
}

// connectorsLongOffline is the sweep's query for outages to alert on:
// offline connectors not alerted yet, last heard before a cutoff.
var _ = needs(connectorsCollection, Field{"online", Asc}, Field{"offlineAlerted", Asc}, Field{"lastSeen", Asc})

// LongOfflineConnectors lists the ids of connectors offline, not yet
// alerted on, and last heard before cutoff. A connector never heard has
// no lastSeen and is not listed.
func (db *DB) LongOfflineConnectors(ctx context.Context, cutoff time.Time) ([]string, error) {
	docs, err := db.fs.Collection(connectorsCollection).
		Where("online", "==", false).Where("offlineAlerted", "==", false).Where("lastSeen", "<", cutoff).
		Select().Documents(ctx).GetAll()
	if err != nil {
		return nil, wrap("long offline connectors", err)
	}
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.Ref.ID
	}
	return ids, nil
}

// MarkOfflineAlerted records that a connector's outage was alerted on,
// if it is still offline and last heard before cutoff; it reports
// whether it did, and when the connector was last heard.
func (db *DB) MarkOfflineAlerted(ctx context.Context, id string, cutoff time.Time) (bool, time.Time, error) {
	var marked bool
	var since time.Time
	ref := db.connectorRef(id)
	err := db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		marked = false
		c, err := db.ConnectorIn(tx, id)
		if err != nil {
			return err
		}
		if c.Online || c.OfflineAlerted || !c.LastSeen.Before(cutoff) {
			return nil // heard from, or alerted, since the query
		}
		marked, since = true, c.LastSeen
		return tx.Update(ref, []firestore.Update{{Path: "offlineAlerted", Value: true}})
	})
	return marked, since, wrap("mark connector "+id+" alerted", err)
}
