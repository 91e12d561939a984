package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sealedsense/sealedsense/shared/devconfig"
	"github.com/sealedsense/sealedsense/shared/release"

	"github.com/sealedsense/sealedsense/shared/event"
)

// devicesCollection holds one document per provisioned sensor and one per
// Cloud Connector registered into a project (type ConnectorType). Devices
// live in one top-level collection with a projectId field rather than
// under their project, so claiming or transferring a device is an update,
// not a move of its document.
const devicesCollection = "devices"

// ConnectorType is the device type of a Cloud Connector, DT's "ccon". A
// connector registered into a project is also a device of this type, so
// that the API lists it and its status events belong to a device. Its
// document holds no keys (its identity is in the connectors collection),
// and what is done to sensors (claim, transfer, configuration, PSK
// re-wrapping, key backup) is not done to it.
const ConnectorType = release.ConnectorTarget

// ConnectorProductNumber is our Cloud Connector's catalogue number, in
// the form of the sensors'.
const ConnectorProductNumber = "SS-102991"

var (
	// ErrNotSensor refuses to do to a Cloud Connector's device what only
	// a sensor takes: a claim or a transfer.
	ErrNotSensor = errors.New("store: a Cloud Connector, not a sensor")
	// ErrSensorID refuses a connector an id that a sensor has: device ids
	// are one name space, and a connector's status must never land on a
	// sensor's document.
	ErrSensorID = fmt.Errorf("%w: the id is a sensor's", ErrExists)
)

// Device is a sensor's document: what provisioning made (its keys, the
// PSK only KMS-wrapped), what the customer set (labels, project) and what
// the pipeline learnt (the latest event per type, links to connectors).
// The pipeline's fields are omitted until first written, so a new
// device's document has only provisioning's fields. A Cloud Connector's
// document reads as a Device with only its type, product number, project,
// labels, creation time and reported state.
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
	// Emulated marks a device of the device emulator API: no radio, no
	// keys; its events are what the customer published (emulated.go).
	Emulated bool `firestore:"emulated,omitempty"`

	// Reported is the latest event data per event type (DT's reported).
	Reported map[string]any `firestore:"reported,omitempty"`
	// LastHandshakeNs is the newest handshake timestamp accepted, in ns:
	// Firestore timestamps keep only µs.
	LastHandshakeNs int64 `firestore:"lastHandshakeNs,omitempty"`
	// CloudKeyVersion is the version of the cloud's static key the
	// device's last handshake was under; see StaticKeyVersion.
	CloudKeyVersion   int             `firestore:"cloudKeyVersion,omitempty"`
	Links             map[string]Link `firestore:"links,omitempty"`
	Pending           *PendingReply   `firestore:"pendingReply,omitempty"`
	LastNetworkStatus time.Time       `firestore:"lastNetworkStatus,omitempty"`
	// Configuration is the device's desired and reported configuration
	// (its shadow); nil until one is first set.
	Configuration *ConfigState `firestore:"configuration,omitempty"`
	// Health is what fleet-health detection keeps of the device (health.go).
	Health *DeviceHealth `firestore:"health,omitempty"`
	// Software is the device's software shadow (software.go); nil until
	// it reports a version or is assigned a release.
	Software *SoftwareState `firestore:"software,omitempty"`
	// ReplyStats counts the replies judged on their next uplink.
	ReplyStats ReplyStats `firestore:"replyStats,omitempty"`
	// Session is the session the device uses, sealed: its packets'
	// transactions update it with the rest of the device. Key backups
	// leave it out (ExportRegistry).
	Session *LiveSession `firestore:"session,omitempty"`
}

// sessionField is Device.Session's field.
const sessionField = "session"

// A data packet's transaction rewrites these, so each device write
// would land at the end of their single-field indexes: none is queried.
// reported, which holds each event type's updateTime, rises too, but the
// API orders devices by reported values, so it stays indexed (the
// README's scale model).
// lastHandshakeNs is queried alone (key rotation's count of devices that
// handshook), and written only by a handshake, which a sensor makes once
// per session: the fleet's handshake rate, not its packet rate, is its
// write rate (the README's scale model).
var _ = rising(devicesCollection, "links", "pendingReply", "lastNetworkStatus", "health", sessionField, "lastHandshakeNs")

// ReplyStats counts a device's replies that arrived and that were lost.
type ReplyStats struct {
	Acked  int64 `firestore:"acked"`
	Failed int64 `firestore:"failed"`
}

// Configuration statuses.
const (
	ConfigInSync   = "IN_SYNC"
	ConfigPending  = "PENDING"
	ConfigRejected = "REJECTED"
	ConfigExpired  = "EXPIRED"
	// ConfigRequested is no stored status: it names the event of a new
	// desired configuration, which is then PENDING.
	ConfigRequested = "REQUESTED"
)

// ConfigState is a device's configuration shadow: what the customer wants,
// what the sensor last confirmed running, and where the change stands.
type ConfigState struct {
	Desired         devconfig.Config `firestore:"desired"`
	DesiredVersion  int64            `firestore:"desiredVersion"`
	Reported        devconfig.Config `firestore:"reported"`
	ReportedVersion int64            `firestore:"reportedVersion"`
	Status          string           `firestore:"status"`
	// Requested is when the desired configuration was set; a PENDING one
	// not confirmed within the expiry bound becomes EXPIRED.
	Requested time.Time `firestore:"requested"`
	// Attempts and LastSent count the replies that carried it.
	Attempts     int64     `firestore:"attempts"`
	LastSent     time.Time `firestore:"lastSent,omitempty"`
	RejectReason int       `firestore:"rejectReason,omitempty"`
	Updated      time.Time `firestore:"updated"`
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
// next speaks: a data packet lists the reply counters it received, and
// uses the session a handshake's response opened; a new handshake means
// the last response never arrived.
type PendingReply struct {
	Via     string    `firestore:"via"`
	Counter int64     `firestore:"counter"`
	Sent    time.Time `firestore:"sent"`
	// Session, for a handshake's response, is the receiver index of the
	// session it opened; zero for a data reply.
	Session uint32 `firestore:"session,omitempty"`
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

// What ingest reads and changes.

// DeviceIn reads a device in tx.
func (db *DB) DeviceIn(tx *firestore.Transaction, id string) (Device, error) {
	snap, err := tx.Get(db.deviceRef(id))
	if err != nil {
		return Device{}, wrap("device "+id, err)
	}
	return decode[Device](snap)
}

// StaticKeyVersion is the version of the cloud's static key the device
// last handshook under: 0 if it never did, and 1 for a handshake from
// before versions were recorded, when version 1 was the only one.
func (d Device) StaticKeyVersion() int {
	if d.CloudKeyVersion == 0 && d.LastHandshakeNs != 0 {
		return 1
	}
	return d.CloudKeyVersion
}

// SetLastHandshake records, in tx, the newest handshake timestamp a
// device's sessions were accepted with, in ns, and the version of the
// cloud's static key that handshake was under.
func (db *DB) SetLastHandshake(tx *firestore.Transaction, id string, ns int64, cloudKeyVersion int) error {
	return tx.Update(db.deviceRef(id), []firestore.Update{
		{Path: "lastHandshakeNs", Value: ns},
		{Path: "cloudKeyVersion", Value: cloudKeyVersion},
	})
}

// DevicesOnStaticKey counts the devices whose last handshake was under
// version v of the cloud's static key (as StaticKeyVersion tells): the
// ones retiring v would cut off until they learn a newer key. Each count
// is an aggregation on one field, which Firestore's single-field indexes
// serve.
var _ = queriesField(devicesCollection, "lastHandshakeNs")

func (db *DB) DevicesOnStaticKey(ctx context.Context, v int) (int64, error) {
	devices := db.fs.Collection(devicesCollection)
	n, err := count(ctx, devices.Where("cloudKeyVersion", "==", v), "devices on static key")
	if err != nil || v != 1 {
		return n, err
	}
	// Devices that handshook before versions were recorded have no
	// cloudKeyVersion: those that handshook less those with a version.
	shook, err := count(ctx, devices.Where("lastHandshakeNs", ">", 0), "devices that handshook")
	if err != nil {
		return 0, err
	}
	versioned, err := count(ctx, devices.Where("cloudKeyVersion", ">", 0), "devices with a static key version")
	if err != nil {
		return 0, err
	}
	return n + shook - versioned, nil
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
	// cleared, unless Pending replaces it.
	Verdict *ReplyVerdict
	// RepliedVia, if set, is the connector a reply went through, counted
	// on its link.
	RepliedVia string
	// Pending, if set, is the reply to judge at the next uplink.
	Pending *PendingReply
	// Seen updates the links of the connectors that heard the device; a
	// connector listed twice is updated from its first sighting, since
	// one write cannot set a field twice.
	Seen []Sighting
	// NetworkStatusAt, if set, is when a networkStatus event was stored.
	NetworkStatusAt time.Time
	// Reported is the latest event data per event type to report.
	Reported map[string]any
	// Config, if set, changes the configuration shadow.
	Config *ConfigChange
	// Health, if set, changes the fleet-health state.
	Health *HealthChange
	// Software, if set, changes the software shadow.
	Software *SoftwareChange
	// SoftwareVerdict counts the Verdict on the software shadow too: the
	// device runs a rollout's release.
	SoftwareVerdict bool
	// Session, if set, is the device's session as a packet left it.
	Session *LiveSession
}

// ConfigChange is what one packet, or the sweep, changes of a device's
// configuration shadow. Only its set fields are written, so a change
// never overwrites a desired configuration the API set meanwhile.
type ConfigChange struct {
	// Sent, if set, is when a reply carried the desired configuration:
	// one more attempt.
	Sent time.Time
	// ReportedVersion, if not 0, is the version the sensor reports it
	// runs, and Reported, if set, its settings.
	ReportedVersion int64
	Reported        *devconfig.Config
	// Status, if set, is the new status, with RejectReason when REJECTED.
	Status       string
	RejectReason int
	Updated      time.Time
}

func (c ConfigChange) updates() []firestore.Update {
	at := func(f string) firestore.FieldPath { return firestore.FieldPath{"configuration", f} }
	var upd []firestore.Update
	if !c.Sent.IsZero() {
		upd = append(upd, firestore.Update{FieldPath: at("attempts"), Value: firestore.Increment(1)},
			firestore.Update{FieldPath: at("lastSent"), Value: c.Sent})
	}
	if c.ReportedVersion != 0 {
		upd = append(upd, firestore.Update{FieldPath: at("reportedVersion"), Value: c.ReportedVersion})
	}
	if c.Reported != nil {
		upd = append(upd, firestore.Update{FieldPath: at("reported"), Value: *c.Reported})
	}
	if c.Status != "" {
		upd = append(upd, firestore.Update{FieldPath: at("status"), Value: c.Status})
		if c.Status == ConfigRejected {
			upd = append(upd, firestore.Update{FieldPath: at("rejectReason"), Value: c.RejectReason})
		}
	}
	if len(upd) > 0 && !c.Updated.IsZero() {
		upd = append(upd, firestore.Update{FieldPath: at("updated"), Value: c.Updated})
	}
	return upd
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
			firestore.Update{FieldPath: firestore.FieldPath{replyStatsField, field}, Value: firestore.Increment(1)})
		if c.Pending == nil {
			upd = append(upd, firestore.Update{Path: "pendingReply", Value: firestore.Delete})
		}
		if c.SoftwareVerdict {
			upd = append(upd, firestore.Update{FieldPath: firestore.FieldPath{softwareField, field}, Value: firestore.Increment(1)})
		}
	}
	if c.RepliedVia != "" {
		upd = append(upd, firestore.Update{FieldPath: firestore.FieldPath{"links", c.RepliedVia, "replies"}, Value: firestore.Increment(1)})
	}
	if c.Pending != nil {
		upd = append(upd, firestore.Update{Path: "pendingReply", Value: *c.Pending})
	}
	seen := make(map[string]bool, len(c.Seen))
	for _, s := range c.Seen {
		if seen[s.ConnectorID] {
			continue
		}
		seen[s.ConnectorID] = true
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
	if c.Config != nil {
		upd = append(upd, c.Config.updates()...)
	}
	if c.Health != nil {
		upd = append(upd, c.Health.updates()...)
	}
	if c.Software != nil {
		upd = append(upd, c.Software.updates()...)
	}
	if c.Session != nil {
		upd = append(upd, firestore.Update{Path: sessionField, Value: *c.Session})
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

// What the API reads and changes.

// ErrClaimed is a claim of a device that a project already has.
var ErrClaimed = errors.New("store: device already claimed")

// DeviceFilter selects the devices of a listing. The filters Firestore
// cannot run (ids, types, label presence, text) are the caller's.
type DeviceFilter struct {
	// Projects, when not empty, selects the devices of several projects
	// (at most 30, Firestore's bound on "in"); else Project selects one
	// project's.
	Project  string
	Projects []string
	// LabelIs lists label key=value pairs a device must have.
	LabelIs [][2]string
	// Order is the field from DeviceOrderPath to order by before the
	// document id (nil: by document id only), descending if Desc.
	Order firestore.FieldPath
	Desc  bool
}

// DeviceOrderPath is the path of a field devices can be listed by, named
// as the API names it: type, productNumber, labels.<key> or
// reported.<eventType>.<field>, event type and field in ASCII letters.
func DeviceOrderPath(field string) (firestore.FieldPath, bool) {
	letters := func(s string) bool {
		return len(s) > 0 && len(s) <= 32 && strings.IndexFunc(s, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') }) < 0
	}
	if field == "type" || field == "productNumber" {
		return firestore.FieldPath{field}, true
	}
	if k, ok := strings.CutPrefix(field, "labels."); ok && event.ValidLabelKey(k) {
		return firestore.FieldPath{"labels", k}, true
	}
	if rest, ok := strings.CutPrefix(field, "reported."); ok {
		typ, f, ok := strings.Cut(rest, ".")
		if ok && letters(typ) && letters(f) {
			return firestore.FieldPath{"reported", typ, f}, true
		}
	}
	return nil, false
}

// DevicesQuery is the query of a listing, ordered by f.Order and then
// the document id, for a caller to page through. Firestore leaves out
// the devices that lack the order field, as DT's ordering by a reported
// value leaves out devices without one. In GCP an order other than the
// document id needs a composite index with projectId.
func (db *DB) DevicesQuery(f DeviceFilter) firestore.Query {
	q := db.fs.Collection(devicesCollection).Query
	if len(f.Projects) > 0 {
		q = q.Where("projectId", "in", f.Projects)
	} else {
		q = q.Where("projectId", "==", f.Project)
	}
	for _, kv := range f.LabelIs {
		q = q.WherePath(firestore.FieldPath{"labels", kv[0]}, "==", kv[1])
	}
	dir := firestore.Asc
	if f.Desc {
		dir = firestore.Desc
	}
	if f.Order != nil {
		q = q.OrderByPath(f.Order, dir)
	}
	return q.OrderBy(firestore.DocumentID, dir)
}

// ProjectDevices reads every device of a project, keyed by id.
func (db *DB) ProjectDevices(ctx context.Context, project string) (map[string]Device, error) {
	docs, err := db.fs.Collection(devicesCollection).Where("projectId", "==", project).Documents(ctx).GetAll()
	if err != nil {
		return nil, wrap("devices of "+project, err)
	}
	out := make(map[string]Device, len(docs))
	for _, d := range docs {
		dev, err := decode[Device](d)
		if err != nil {
			return nil, err
		}
		out[d.Ref.ID] = dev
	}
	return out, nil
}

// ProjectDeviceCounts counts a project's sensors and Cloud Connectors,
// as DT's project resource carries them: two count aggregations on
// equality filters, which single-field indexes serve.
func (db *DB) ProjectDeviceCounts(ctx context.Context, project string) (sensors, connectors int64, err error) {
	q := db.fs.Collection(devicesCollection).Where("projectId", "==", project)
	all, err := count(ctx, q, "count devices of "+project)
	if err != nil {
		return 0, 0, err
	}
	if connectors, err = count(ctx, q.Where("type", "==", ConnectorType), "count connectors of "+project); err != nil {
		return 0, 0, err
	}
	return all - connectors, connectors, nil
}

// ProjectHasDevices says whether a project has a device.
func (db *DB) ProjectHasDevices(ctx context.Context, project string) (bool, error) {
	docs, err := db.fs.Collection(devicesCollection).Where("projectId", "==", project).Limit(1).Documents(ctx).GetAll()
	if err != nil {
		return false, wrap("devices of "+project, err)
	}
	return len(docs) > 0, nil
}

// ClaimDevice gives an unclaimed device to project, in a transaction of
// its own so that two projects racing for a device cannot both have it.
// A claimed device is ErrClaimed, a Cloud Connector's ErrNotSensor; dry
// checks and changes nothing. It returns the device as read.
func (db *DB) ClaimDevice(ctx context.Context, id, project string, dry bool) (Device, error) {
	ref := db.deviceRef(id)
	var d Device
	err := db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snap, err := tx.Get(ref)
		if err != nil {
			return err
		}
		if d, err = decode[Device](snap); err != nil {
			return err
		}
		if d.Type == ConnectorType {
			return ErrNotSensor // it belongs to the project it was registered into
		}
		if d.ProjectID != "" {
			return ErrClaimed
		}
		if dry {
			return nil
		}
		return tx.Update(ref, []firestore.Update{{Path: "projectId", Value: project}})
	})
	return d, wrap("claim device "+id, err)
}

// MoveDevice moves a device of project from to project to. A device that
// is missing or not from's is ErrNotFound; a Cloud Connector's is
// ErrNotSensor, since its status events go to the project its
// registration names.
func (db *DB) MoveDevice(ctx context.Context, id, from, to string) error {
	return db.updateProjectDevice(ctx, id, from, true, []firestore.Update{{Path: "projectId", Value: to}})
}

// LabelChangeEvent makes the labelsChanged event of a change that changed
// something, to be stored in the change's transaction.
type LabelChangeEvent func(event.LabelsChanged) (id string, e Event, err error)

// SetDeviceLabels sets and removes labels of a device of project, and
// says what that changed, as DT's labelsChanged data. The labels are read
// in the same transaction, so the change is exact even beside another;
// changed, when not nil, makes its event, stored with it, so a change and
// its event exist together or not at all. A change that changes nothing
// writes nothing. A device that is missing or not project's is
// ErrNotFound.
func (db *DB) SetDeviceLabels(ctx context.Context, id, project string, set map[string]string, remove []string, changed LabelChangeEvent) (event.LabelsChanged, error) {
	ref := db.deviceRef(id)
	var out event.LabelsChanged
	err := db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		d, err := getIn[Device](tx, ref)
		if err != nil {
			return err
		}
		if d.ProjectID == "" || d.ProjectID != project {
			return ErrNotFound
		}
		var upd []firestore.Update
		out, upd = labelChange(d.Labels, set, remove)
		if out.Empty() {
			return nil
		}
		if changed != nil {
			evID, ev, err := changed(out)
			if err != nil {
				return err
			}
			if err := db.CreateEvent(tx, evID, ev); err != nil {
				return err
			}
		}
		return tx.Update(ref, upd)
	})
	if err != nil {
		return event.LabelsChanged{}, wrap("device "+id, err)
	}
	return out, nil
}

// labelChange is what setting and removing labels does to labels: DT's
// added, modified and removed, and the updates that make it.
func labelChange(labels, set map[string]string, remove []string) (event.LabelsChanged, []firestore.Update) {
	var c event.LabelsChanged
	var upd []firestore.Update
	for k, v := range set {
		old, had := labels[k]
		switch {
		case !had:
			if c.Added == nil {
				c.Added = map[string]string{}
			}
			c.Added[k] = v
		case old != v:
			if c.Modified == nil {
				c.Modified = map[string]string{}
			}
			c.Modified[k] = v
		default:
			continue
		}
		upd = append(upd, firestore.Update{FieldPath: firestore.FieldPath{"labels", k}, Value: v})
	}
	remove = slices.Clone(remove)
	slices.Sort(remove)
	for _, k := range slices.Compact(remove) {
		if _, had := labels[k]; had {
			c.Removed = append(c.Removed, k)
			upd = append(upd, firestore.Update{FieldPath: firestore.FieldPath{"labels", k}, Value: firestore.Delete})
		}
	}
	return c, upd
}

// updateProjectDevice applies upd to a device if, read in the same
// transaction, it belongs to project, and, if sensorOnly, is no Cloud
// Connector's (ErrNotSensor).
func (db *DB) updateProjectDevice(ctx context.Context, id, project string, sensorOnly bool, upd []firestore.Update) error {
	ref := db.deviceRef(id)
	err := db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snap, err := tx.Get(ref)
		if err != nil {
			return err
		}
		if pid, _ := snap.Data()["projectId"].(string); pid != project {
			return ErrNotFound
		}
		if typ, _ := snap.Data()["type"].(string); sensorOnly && typ == ConnectorType {
			return ErrNotSensor
		}
		return tx.Update(ref, upd)
	})
	return wrap("device "+id, err)
}

// What webhook delivery reads.

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

// What re-wrapping reads and changes.

// DevicePSKs reads up to n sensors after the device id after, in id
// order, with only their wrapped PSK and the CryptoKey that wrapped it.
// Cloud Connectors' devices, which hold no PSK, are passed over, reading
// on until n sensors or the end: fewer than n means the end, as the
// caller's paging expects.
func (db *DB) DevicePSKs(ctx context.Context, after string, n int) ([]Wrapped[Device], error) {
	var out []Wrapped[Device]
	for len(out) < n {
		page, err := wrappedPage[Device](ctx, db.fs.Collection(devicesCollection), after, n, "wrappedPsk", "pskKey", "type")
		if err != nil {
			return nil, err
		}
		for _, w := range page {
			if w.Doc.Type != ConnectorType && len(out) < n {
				out = append(out, w)
			}
		}
		if len(page) < n {
			break
		}
		after = page[len(page)-1].ID
	}
	return out, nil
}

// IsConnectorDevice says whether rec is a Cloud Connector's device
// document, which key backups leave out: it holds no key, the
// connector's own record is backed up, and the connector's next status
// makes the device again.
func IsConnectorDevice(rec Record) bool {
	return rec.Kind == devicesCollection && rec.Fields["type"] == ConnectorType
}

// ReplaceDevicePSK writes a device's re-wrapped PSK and the CryptoKey
// that wrapped it, if its wrapped PSK is still was. The condition is on
// the secret, not on the document's update time: every packet updates a
// device's document, so under traffic a rewrap conditioned on the whole
// document would lose to the sensor's own readings, run after run. What a
// stale write could clobber is the secret, so the secret is what is
// compared (in a transaction, which retries a write that contends).
func (db *DB) ReplaceDevicePSK(ctx context.Context, id string, was, wrapped []byte, keyName string) error {
	ref := db.deviceRef(id)
	err := db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snap, err := tx.Get(ref)
		if err != nil {
			return err
		}
		var cur struct {
			WrappedPSK []byte `firestore:"wrappedPsk"`
		}
		if err := snap.DataTo(&cur); err != nil {
			return err
		}
		if !bytes.Equal(cur.WrappedPSK, was) {
			return ErrChanged
		}
		return tx.Update(ref, []firestore.Update{{Path: "wrappedPsk", Value: wrapped}, {Path: "pskKey", Value: keyName}})
	})
	return wrap("replace wrapped PSK of devices/"+id, err)
}

// What connector status writes.

// connectorDevice is a Cloud Connector's device document: what the API
// shows of any device, and none of a sensor's fields.
type connectorDevice struct {
	Type          string            `firestore:"type"`
	ProductNumber string            `firestore:"productNumber"`
	ProjectID     string            `firestore:"projectId"`
	Labels        map[string]string `firestore:"labels"`
	CreateTime    time.Time         `firestore:"createTime"`
	Reported      map[string]any    `firestore:"reported,omitempty"`
}

func newConnectorDevice(project string, at time.Time, reported map[string]any) connectorDevice {
	return connectorDevice{Type: ConnectorType, ProductNumber: ConnectorProductNumber, ProjectID: project,
		Labels: map[string]string{}, CreateTime: at, Reported: reported}
}

// ConnectorDevice is what a transaction found in the devices collection
// under a connector's id.
type ConnectorDevice struct {
	Exists bool // a device has the id
	Sensor bool // and it is a sensor, never to be written as a connector
	// Software is the connector's software shadow, nil until a rollout
	// assigned it a release or it reported its version.
	Software *SoftwareState
}

// ConnectorDeviceIn reads, in tx, what has connector id's device id.
func (db *DB) ConnectorDeviceIn(tx *firestore.Transaction, id string) (ConnectorDevice, error) {
	snap, err := tx.Get(db.deviceRef(id))
	if status.Code(err) == codes.NotFound {
		return ConnectorDevice{}, nil
	}
	if err != nil {
		return ConnectorDevice{}, wrap("device "+id, err)
	}
	var d struct {
		Type     string         `firestore:"type"`
		Software *SoftwareState `firestore:"software"`
	}
	if err := snap.DataTo(&d); err != nil {
		return ConnectorDevice{}, wrap("device "+id, err)
	}
	return ConnectorDevice{Exists: true, Sensor: d.Type != ConnectorType, Software: d.Software}, nil
}

// SetConnectorReported writes, in tx, the data of a connector's latest
// status events into its device's reported state (DT's reported), keyed
// by event type. found is what ConnectorDeviceIn read: a connector
// registered before connectors were devices has none, and gets one in
// project. A sensor's document is never written: ErrSensorID. sw, if
// set, changes the connector's software shadow; a new device has none to
// change.
func (db *DB) SetConnectorReported(tx *firestore.Transaction, id, project string, found ConnectorDevice, reported map[string]any, sw *SoftwareChange, at time.Time) error {
	switch {
	case found.Sensor:
		return fmt.Errorf("store: connector %s: %w", id, ErrSensorID)
	case !found.Exists:
		return tx.Create(db.deviceRef(id), newConnectorDevice(project, at, reported))
	}
	return db.UpdateDevice(tx, id, DeviceChange{Reported: reported, Software: sw})
}
