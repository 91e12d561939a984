package store

import (
	"context"
	"time"

	"cloud.google.com/go/firestore"
)

// What a project's export holds of each collection. Each kind reads only
// the fields listed, so a secret (a wrapped PSK or signature secret, a
// key's wrapped secret, a webhook's headers, which may carry credentials)
// cannot reach an export by a field added later.
var exportKinds = map[string]struct {
	collection, field string
	fields            []string
}{
	"devices": {devicesCollection, "projectId", []string{"type", "productNumber", "kitId", "emulated", "labels", "reported", "configuration", "software", "health", "createTime"}},
	"dataConnectors": {dataConnectorsCollection, "projectId", []string{"displayName", "status", "events", "labels", "url",
		"failingSince", "disabledAt", "createTime", "updateTime"}},
	"serviceAccounts":    {accountsCollection, "projectId", []string{"email", "displayName", "enableBasicAuth", "disabled", "createTime", "updateTime"}},
	"serviceAccountKeys": {keysCollection, "projectId", []string{"account", "createTime", "accountBound"}},
	"members":            {membersCollection, "scope", []string{"scope", "account", "email", "roles", "createTime", "type"}},
	"auditLog":           {auditCollection, "projectId", []string{"time", "actorType", "actor", "account", "keyId", "action", "resource", "code", "reason"}},
}

// ExportKinds lists the kinds of documents ExportPage reads, besides
// events, in the order an export writes them.
func ExportKinds() []string {
	return []string{"devices", "dataConnectors", "serviceAccounts", "serviceAccountKeys", "members", "auditLog"}
}

// ExportDoc is one exported document: its id and its exported fields.
type ExportDoc struct {
	ID   string
	Data map[string]any
}

// ExportPage reads up to limit of a project's documents of kind after the
// document id after, in id order. For devices it reads only deviceIDs
// when they are given (an export filtered to some devices).
func (db *DB) ExportPage(ctx context.Context, kind, project, after string, deviceIDs []string, limit int) ([]ExportDoc, error) {
	k, ok := exportKinds[kind]
	if !ok {
		return nil, wrap("export "+kind, ErrNotFound)
	}
	value := project
	if k.field == "scope" {
		value = ProjectScope(project)
	}
	q := db.fs.Collection(k.collection).Select(k.fields...).Where(k.field, "==", value)
	if kind == "devices" && len(deviceIDs) > 0 {
		return db.exportDevices(ctx, q, after, deviceIDs, limit)
	}
	q = q.OrderBy(firestore.DocumentID, firestore.Asc)
	if after != "" {
		q = q.StartAfter(after)
	}
	docs, err := q.Limit(limit).Documents(ctx).GetAll()
	if err != nil {
		return nil, wrap("export "+kind, err)
	}
	out := make([]ExportDoc, len(docs))
	for i, d := range docs {
		out[i] = ExportDoc{ID: d.Ref.ID, Data: d.Data()}
	}
	return out, nil
}

// exportDevices reads the named devices after the id after, that are
// still the project's.
func (db *DB) exportDevices(ctx context.Context, q firestore.Query, after string, ids []string, limit int) ([]ExportDoc, error) {
	var out []ExportDoc
	for _, id := range ids {
		if id <= after || len(out) == limit {
			continue
		}
		docs, err := q.Where(firestore.DocumentID, "==", db.deviceRef(id)).Documents(ctx).GetAll()
		if err != nil {
			return nil, wrap("export device "+id, err)
		}
		for _, d := range docs {
			out = append(out, ExportDoc{ID: d.Ref.ID, Data: d.Data()})
		}
	}
	return out, nil
}

// ExportedEvent is an event as an export writes it.
type ExportedEvent struct {
	ID        string
	DeviceID  string    `firestore:"deviceId"`
	Timestamp time.Time `firestore:"timestamp"`
	JSON      []byte    `firestore:"json"`
}

// ExportEvents reads up to limit of a project's events with from <=
// timestamp < to (a zero bound is open), of device if it is not empty,
// in (timestamp, id) order after (afterTime, afterID).
func (db *DB) ExportEvents(ctx context.Context, project, device string, from, to, afterTime time.Time, afterID string, limit int) ([]ExportedEvent, error) {
	q := db.fs.Collection(eventsCollection).Select("deviceId", "timestamp", "json").Where("projectId", "==", project)
	if device != "" {
		q = q.Where("deviceId", "==", device)
	}
	if !from.IsZero() {
		q = q.Where("timestamp", ">=", from)
	}
	if !to.IsZero() {
		q = q.Where("timestamp", "<", to)
	}
	q = q.OrderBy("timestamp", firestore.Asc).OrderBy(firestore.DocumentID, firestore.Asc)
	if afterID != "" {
		q = q.StartAfter(afterTime, afterID)
	}
	docs, err := q.Limit(limit).Documents(ctx).GetAll()
	if err != nil {
		return nil, wrap("export events of "+project, err)
	}
	out := make([]ExportedEvent, len(docs))
	for i, d := range docs {
		if out[i], err = decode[ExportedEvent](d); err != nil {
			return nil, err
		}
		out[i].ID = d.Ref.ID
	}
	return out, nil
}

// RetainEvents rewrites the expiry of up to limit of a project's events
// after (afterTime, afterID) in (timestamp, id) order to their storage
// time plus retention, and says the last one's cursor and how many it
// rewrote.
func (db *DB) RetainEvents(ctx context.Context, project string, retention time.Duration, afterTime time.Time, afterID string, limit int) (time.Time, string, int, error) {
	q := db.fs.Collection(eventsCollection).Select("timestamp", "storedAt").Where("projectId", "==", project).
		OrderBy("timestamp", firestore.Asc).OrderBy(firestore.DocumentID, firestore.Asc)
	if afterID != "" {
		q = q.StartAfter(afterTime, afterID)
	}
	docs, err := q.Limit(limit).Documents(ctx).GetAll()
	if err != nil || len(docs) == 0 {
		return afterTime, afterID, 0, wrap("retain events of "+project, err)
	}
	bw := db.fs.BulkWriter(ctx)
	var last struct {
		Timestamp time.Time `firestore:"timestamp"`
		StoredAt  time.Time `firestore:"storedAt"`
	}
	for _, d := range docs {
		if err := d.DataTo(&last); err != nil {
			bw.End()
			return afterTime, afterID, 0, wrap("retain events", err)
		}
		stored := last.StoredAt
		if stored.IsZero() {
			stored = last.Timestamp
		}
		// An update needs the document: one deleted meanwhile (its TTL
		// ran out) fails alone and is not recreated.
		if _, err := bw.Update(d.Ref, []firestore.Update{{Path: "expireAt", Value: stored.Add(retention)}}); err != nil {
			bw.End()
			return afterTime, afterID, 0, wrap("retain events", err)
		}
	}
	bw.End()
	return last.Timestamp, docs[len(docs)-1].Ref.ID, len(docs), nil
}
