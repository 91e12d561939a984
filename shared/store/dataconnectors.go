package store

import (
	"context"
	"time"

	"cloud.google.com/go/firestore"
)

// dataConnectorsCollection holds one document per Data Connector (a
// customer webhook), named by its id. Connectors live in one top-level
// collection with a projectId field, like devices.
const dataConnectorsCollection = "dataConnectors"

// Collection names of Data Connectors and their deliveries, for tests and
// tools that look at the database directly; code goes through DB.
const (
	DataConnectorsCollection  = dataConnectorsCollection
	DeliveriesCollection      = deliveriesCollection
	DeliveryJobsCollection    = deliveryJobsCollection
	DeliveryMetricsCollection = deliveryMetricsCollection
	DeliveryKeysCollection    = deliveryKeysCollection
)

// DataConnector is a Data Connector's document. Its statuses and the
// logic over it are shared/dataconnector's.
type DataConnector struct {
	ProjectID   string            `firestore:"projectId"`
	DisplayName string            `firestore:"displayName"`
	Status      string            `firestore:"status"`
	Events      []string          `firestore:"events"` // empty: every type
	Labels      []string          `firestore:"labels"` // label keys forwarded in the body
	URL         string            `firestore:"url"`
	Headers     map[string]string `firestore:"headers"`
	// WrappedSecret is the signatureSecret, KMS-wrapped under the
	// webhook-secrets key with dataconnector.SecretAAD as associated data.
	WrappedSecret []byte `firestore:"wrappedSecret"`
	// FailingSince is the first failed attempt since the last success;
	// nil while healthy. The system disables a connector that has not
	// succeeded for the configured period.
	FailingSince *time.Time `firestore:"failingSince"`
	// DisabledAt is when the connector last left ACTIVE; a backfill on
	// re-enable starts from the earlier of it and FailingSince.
	DisabledAt *time.Time `firestore:"disabledAt"`
	CreateTime time.Time  `firestore:"createTime"`
	UpdateTime time.Time  `firestore:"updateTime"`
}

// DataConnectorEntry is a connector with its id.
type DataConnectorEntry struct {
	ID string
	DataConnector
}

func (db *DB) dataConnectorRef(id string) *firestore.DocumentRef {
	return db.fs.Collection(dataConnectorsCollection).Doc(id)
}

// NewDataConnectorID returns a fresh connector id, so that what is stored
// with the connector (its wrapped secret's associated data) can name it
// before it is created.
func (db *DB) NewDataConnectorID() string {
	return db.fs.Collection(dataConnectorsCollection).NewDoc().ID
}

// CreateDataConnector stores a new connector.
func (db *DB) CreateDataConnector(ctx context.Context, id string, c DataConnector) error {
	_, err := db.dataConnectorRef(id).Create(ctx, c)
	return wrap("create data connector "+id, err)
}

// DataConnector reads one connector, of any project.
func (db *DB) DataConnector(ctx context.Context, id string) (DataConnector, error) {
	return get[DataConnector](ctx, db.dataConnectorRef(id), "data connector "+id)
}

// DataConnectorIn reads one connector in tx.
func (db *DB) DataConnectorIn(tx *firestore.Transaction, id string) (DataConnector, error) {
	snap, err := tx.Get(db.dataConnectorRef(id))
	if err != nil {
		return DataConnector{}, wrap("data connector "+id, err)
	}
	return decode[DataConnector](snap)
}

// DataConnectorOf decodes a snapshot of DataConnectorsQuery.
func DataConnectorOf(snap *firestore.DocumentSnapshot) (DataConnector, error) {
	return decode[DataConnector](snap)
}

// DataConnectorsQuery is a project's connectors in id order, for a caller
// that pages through it (and orders by nothing else).
func (db *DB) DataConnectorsQuery(project string) firestore.Query {
	return db.fs.Collection(dataConnectorsCollection).Where("projectId", "==", project).OrderBy(firestore.DocumentID, firestore.Asc)
}

// ProjectDataConnectors reads all of a project's connectors.
func (db *DB) ProjectDataConnectors(ctx context.Context, project string) ([]DataConnectorEntry, error) {
	docs, err := db.fs.Collection(dataConnectorsCollection).Where("projectId", "==", project).Documents(ctx).GetAll()
	if err != nil {
		return nil, wrap("data connectors of "+project, err)
	}
	out := make([]DataConnectorEntry, 0, len(docs))
	for _, d := range docs {
		c, err := decode[DataConnector](d)
		if err != nil {
			return nil, err
		}
		out = append(out, DataConnectorEntry{ID: d.Ref.ID, DataConnector: c})
	}
	return out, nil
}

// CountDataConnectors counts a project's connectors, up to limit, reading
// no fields.
func (db *DB) CountDataConnectors(ctx context.Context, project string, limit int) (int, error) {
	docs, err := db.fs.Collection(dataConnectorsCollection).Where("projectId", "==", project).Select().Limit(limit).Documents(ctx).GetAll()
	if err != nil {
		return 0, wrap("data connectors of "+project, err)
	}
	return len(docs), nil
}

// DeleteDataConnector deletes a connector; a missing one is ErrNotFound.
func (db *DB) DeleteDataConnector(ctx context.Context, id string) error {
	_, err := db.dataConnectorRef(id).Delete(ctx, firestore.Exists)
	return wrap("delete data connector "+id, err)
}

// DataConnectorEdit is a change to a connector's settings; nil fields are
// left as they are.
type DataConnectorEdit struct {
	DisplayName   *string
	Events        *[]string
	Labels        *[]string
	URL           *string
	Headers       *map[string]string
	WrappedSecret []byte // nil: unchanged
	UpdateTime    time.Time
}

// DataConnectorStatus is a change of a connector's status.
type DataConnectorStatus struct {
	Status string
	// DisabledAt is when it left ACTIVE. Nil re-enables it: its failing
	// streak and its disabledAt are cleared.
	DisabledAt *time.Time
}

// StatusChange decides, from the stored connector, how its status
// changes (nil: it does not) and which job to start with it (nil: none).
type StatusChange func(cur DataConnector) (*DataConnectorStatus, *DeliveryJob)

// EditDataConnector applies e and the status change decide makes to
// connector id of project, in one transaction that also creates the job
// decide asks for. A connector of another project is ErrNotFound.
func (db *DB) EditDataConnector(ctx context.Context, id, project string, e DataConnectorEdit, decide StatusChange) error {
	ref := db.dataConnectorRef(id)
	err := db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		cur, err := db.DataConnectorIn(tx, id)
		if err != nil {
			return err
		}
		if cur.ProjectID != project {
			return ErrNotFound
		}
		upd := e.updates()
		st, job := decide(cur)
		if st != nil {
			upd = append(upd, st.updates()...)
		}
		if job != nil {
			if err := db.CreateDeliveryJobIn(tx, *job); err != nil {
				return err
			}
		}
		return tx.Update(ref, upd)
	})
	return wrap("edit data connector "+id, err)
}

func (e DataConnectorEdit) updates() []firestore.Update {
	upd := []firestore.Update{{Path: "updateTime", Value: e.UpdateTime}}
	add := func(path string, v any) { upd = append(upd, firestore.Update{Path: path, Value: v}) }
	if e.DisplayName != nil {
		add("displayName", *e.DisplayName)
	}
	if e.Events != nil {
		add("events", *e.Events)
	}
	if e.Labels != nil {
		add("labels", *e.Labels)
	}
	if e.URL != nil {
		add("url", *e.URL)
	}
	if e.Headers != nil {
		add("headers", *e.Headers)
	}
	if e.WrappedSecret != nil {
		add("wrappedSecret", e.WrappedSecret)
	}
	return upd
}

func (s DataConnectorStatus) updates() []firestore.Update {
	upd := []firestore.Update{{Path: "status", Value: s.Status}}
	if s.DisabledAt == nil {
		return append(upd, firestore.Update{Path: "failingSince", Value: nil}, firestore.Update{Path: "disabledAt", Value: nil})
	}
	return append(upd, firestore.Update{Path: "disabledAt", Value: *s.DisabledAt})
}

// ClearDataConnectorFailing ends a connector's failing streak.
func (db *DB) ClearDataConnectorFailing(ctx context.Context, id string) error {
	_, err := db.dataConnectorRef(id).Update(ctx, []firestore.Update{{Path: "failingSince", Value: nil}})
	return wrap("data connector health "+id, err)
}

// SetDataConnectorFailingIn starts a connector's failing streak in tx.
func (db *DB) SetDataConnectorFailingIn(tx *firestore.Transaction, id string, since time.Time) error {
	return tx.Update(db.dataConnectorRef(id), []firestore.Update{{Path: "failingSince", Value: since}})
}

// DisableDataConnectorIn gives a connector status (the system's disabled
// one) in tx, as of at.
func (db *DB) DisableDataConnectorIn(tx *firestore.Transaction, id, status string, at time.Time) error {
	return tx.Update(db.dataConnectorRef(id), []firestore.Update{{Path: "status", Value: status}, {Path: "disabledAt", Value: at}, {Path: "updateTime", Value: at}})
}

// DataConnectorSecrets reads up to n connectors after the connector id
// after, in id order, with only their project and wrapped secret.
func (db *DB) DataConnectorSecrets(ctx context.Context, after string, n int) ([]Wrapped[DataConnector], error) {
	return wrappedPage[DataConnector](ctx, db.fs.Collection(dataConnectorsCollection), after, n, "projectId", "wrappedSecret")
}

// ReplaceDataConnectorSecret stores a connector's signature secret
// re-wrapped, unless the connector changed since version (ErrChanged).
// Its updateTime stays: the customer's settings did not change.
func (db *DB) ReplaceDataConnectorSecret(ctx context.Context, id string, version time.Time, wrapped []byte) error {
	return replaceWrapped(ctx, db.dataConnectorRef(id), version, []firestore.Update{{Path: "wrappedSecret", Value: wrapped}})
}
