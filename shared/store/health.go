package store

import (
	"context"
	"maps"
	"slices"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/anomaly"
)

// A device's fleet-health state is the "health" field of its document:
// what the detectors learnt (each part written by the one kind of
// transaction that owns it), its open anomalies, and flags the health
// summary counts. Every transaction that changes it has read the device,
// so the open anomalies it writes are exact.
//
// The summary's counts are equality filters on these flags, which
// Firestore serves by merging single-field indexes: no composite index.
const (
	healthField = "health"
	// healthKinds.<KIND> is true while that anomaly is open.
	healthKinds = "kinds"
	// healthAnomalous is true while any anomaly is open.
	healthAnomalous = "anomalous"
	// healthHeard is true once a packet of the device was stored.
	healthHeard = "heard"
	// healthReviewAt is when the sweep must next look at the device;
	// absent when it need not.
	healthReviewAt = "reviewAt"
)

// DeviceHealth is a device document's health field.
type DeviceHealth struct {
	anomaly.Health
	Kinds     map[string]bool `firestore:"kinds,omitempty"`
	Anomalous bool            `firestore:"anomalous,omitempty"`
	Heard     bool            `firestore:"heard,omitempty"`
	ReviewAt  time.Time       `firestore:"reviewAt,omitempty"`
}

// HealthChange is what one transaction changes of a device's health.
// Only its set parts are written.
type HealthChange struct {
	Traffic    *anomaly.Traffic
	Handshakes *anomaly.Handshakes
	Location   *anomaly.Location
	// Open, if not nil, is the device's open anomalies after the
	// transaction's changes: the whole map is written, with the flags
	// derived from it.
	Open map[anomaly.Kind]anomaly.Open
	// Heard marks the device as heard from.
	Heard bool
	// ReviewAt, if not nil, is the sweep's next look; a zero time removes
	// it.
	ReviewAt *time.Time
}

func (c HealthChange) updates() []firestore.Update {
	at := func(f string) firestore.FieldPath { return firestore.FieldPath{healthField, f} }
	var upd []firestore.Update
	if c.Traffic != nil {
		upd = append(upd, firestore.Update{FieldPath: at("traffic"), Value: *c.Traffic})
	}
	if c.Handshakes != nil {
		upd = append(upd, firestore.Update{FieldPath: at("handshakes"), Value: *c.Handshakes})
	}
	if c.Location != nil {
		upd = append(upd, firestore.Update{FieldPath: at("location"), Value: *c.Location})
	}
	if c.Open != nil {
		// The client writes maps keyed by plain strings only.
		open := make(map[string]anomaly.Open, len(c.Open))
		kinds := make(map[string]bool, len(c.Open))
		for k, o := range c.Open {
			open[string(k)], kinds[string(k)] = o, true
		}
		upd = append(upd,
			firestore.Update{FieldPath: at("open"), Value: open},
			firestore.Update{FieldPath: at(healthKinds), Value: kinds},
			firestore.Update{FieldPath: at(healthAnomalous), Value: len(c.Open) > 0})
	}
	if c.Heard {
		upd = append(upd, firestore.Update{FieldPath: at(healthHeard), Value: true})
	}
	if c.ReviewAt != nil {
		var v any = *c.ReviewAt
		if c.ReviewAt.IsZero() {
			v = firestore.Delete
		}
		upd = append(upd, firestore.Update{FieldPath: at(healthReviewAt), Value: v})
	}
	return upd
}

// DevicesToReview lists up to limit devices, of any project, whose health
// review time has passed, oldest first: a range on one field, which its
// single-field index serves.
func (db *DB) DevicesToReview(ctx context.Context, now time.Time, limit int) ([]string, error) {
	docs, err := db.fs.Collection(devicesCollection).
		WherePath(firestore.FieldPath{healthField, healthReviewAt}, "<=", now).
		OrderByPath(firestore.FieldPath{healthField, healthReviewAt}, firestore.Asc).
		Limit(limit).Select().Documents(ctx).GetAll()
	if err != nil {
		return nil, wrap("devices to review", err)
	}
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.Ref.ID
	}
	return ids, nil
}

// HealthSummary is a project's fleet health: its sensors by state, its
// open anomalies by kind, and its connectors.
type HealthSummary struct {
	Sensors, NeverHeard, Anomalous, Silent int64
	ByKind                                 map[anomaly.Kind]int64
	Connectors, ConnectorsOnline           int64
	// Open lists up to the limit asked of the devices with open anomalies.
	Open map[string]map[anomaly.Kind]anomaly.Open
}

// ProjectHealth counts a project's devices by health state and lists up
// to limit of those with open anomalies. Each count is an aggregation
// with equality filters only; nothing reads every device.
func (db *DB) ProjectHealth(ctx context.Context, project string, limit int) (HealthSummary, error) {
	devices := db.fs.Collection(devicesCollection).Where("projectId", "==", project)
	flag := func(f string) firestore.Query {
		return devices.WherePath(firestore.FieldPath{healthField, f}, "==", true)
	}
	var sum HealthSummary
	all, err := count(ctx, devices, "devices of "+project)
	if err != nil {
		return sum, err
	}
	if sum.Connectors, err = count(ctx, devices.Where("type", "==", ConnectorType), "connectors of "+project); err != nil {
		return sum, err
	}
	sum.Sensors = all - sum.Connectors
	heard, err := count(ctx, flag(healthHeard), "devices heard of "+project)
	if err != nil {
		return sum, err
	}
	sum.NeverHeard = sum.Sensors - heard
	if sum.Anomalous, err = count(ctx, flag(healthAnomalous), "anomalous devices of "+project); err != nil {
		return sum, err
	}
	sum.ByKind = map[anomaly.Kind]int64{}
	for _, k := range anomaly.Kinds() {
		n, err := count(ctx, devices.WherePath(firestore.FieldPath{healthField, healthKinds, string(k)}, "==", true), "devices with "+string(k))
		if err != nil {
			return sum, err
		}
		sum.ByKind[k] = n
	}
	sum.Silent = sum.ByKind[anomaly.Silent]
	online := db.fs.Collection(connectorsCollection).Where("projectId", "==", project).Where("online", "==", true)
	if sum.ConnectorsOnline, err = count(ctx, online, "connectors online of "+project); err != nil {
		return sum, err
	}
	sum.Open, err = db.openAnomalies(ctx, flag(healthAnomalous), limit)
	return sum, err
}

// openAnomalies reads the open anomalies of up to limit devices of q, by
// device id.
func (db *DB) openAnomalies(ctx context.Context, q firestore.Query, limit int) (map[string]map[anomaly.Kind]anomaly.Open, error) {
	docs, err := q.OrderBy(firestore.DocumentID, firestore.Asc).Limit(limit).Select(healthField + ".open").Documents(ctx).GetAll()
	if err != nil {
		return nil, wrap("open anomalies", err)
	}
	out := make(map[string]map[anomaly.Kind]anomaly.Open, len(docs))
	for _, d := range docs {
		var v struct {
			Health struct {
				Open map[anomaly.Kind]anomaly.Open `firestore:"open"`
			} `firestore:"health"`
		}
		if err := d.DataTo(&v); err != nil {
			return nil, wrap("open anomalies of "+d.Ref.ID, err)
		}
		out[d.Ref.ID] = maps.Clone(v.Health.Open)
	}
	return out, nil
}

// SortedKinds returns the kinds of open, in a stable order.
func SortedKinds(open map[anomaly.Kind]anomaly.Open) []anomaly.Kind {
	return slices.Sorted(maps.Keys(open))
}
