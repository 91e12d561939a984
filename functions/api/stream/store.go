package stream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sealedsense/sealedsense/functions/api/stream/cursor"
	"github.com/sealedsense/sealedsense/shared/registry"
)

// EventsCollection holds the events ingest stores, one document per event
// named by its eventId.
const EventsCollection = "events"

// eventRow is the part of an event document a stream reads. Ingest writes
// the document; StoredAt is its server timestamp.
type eventRow struct {
	ProjectID string    `firestore:"projectId"`
	DeviceID  string    `firestore:"deviceId"`
	EventType string    `firestore:"eventType"`
	JSON      []byte    `firestore:"json"`
	StoredAt  time.Time `firestore:"storedAt"`
}

// item is one event on its way to streams. A feed shares one item among
// all its streams, so it is never changed after it is made, except for
// dev, which is filled in once, whoever needs it first.
type item struct {
	pos       cursor.Position
	deviceID  string
	eventType string
	json      []byte // the DT event exactly as stored
	dev       atomic.Pointer[device]
}

// page reads up to n of project's events in order, after after and, if
// upTo is set, up to and including upTo. Events without storedAt (stored
// before ingest wrote it) are not in the order and never stream.
func (s *Server) page(ctx context.Context, project string, after, upTo cursor.Position, n int) ([]*item, error) {
	q := s.deps.Firestore.Collection(EventsCollection).
		Select("projectId", "deviceId", "eventType", "json", "storedAt").
		Where("projectId", "==", project)
	if after.ID == "" && !after.At.IsZero() {
		q = q.Where("storedAt", ">=", after.At) // every event stored before After.At was passed
	}
	if !upTo.IsZero() && upTo.ID == "" {
		q = q.Where("storedAt", "<", upTo.At)
	}
	q = q.OrderBy("storedAt", firestore.Asc).OrderBy(firestore.DocumentID, firestore.Asc)
	if after.ID != "" {
		q = q.StartAfter(after.At, after.ID)
	}
	if !upTo.IsZero() && upTo.ID != "" {
		q = q.EndAt(upTo.At, upTo.ID)
	}
	it := q.Limit(n).Documents(ctx)
	defer it.Stop()
	var out []*item
	for {
		snap, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("events of %s: %w", project, err)
		}
		var row eventRow
		if err := snap.DataTo(&row); err != nil {
			return nil, fmt.Errorf("event %s: %w", snap.Ref.ID, err)
		}
		out = append(out, &item{
			pos:      cursor.Position{At: row.StoredAt, ID: snap.Ref.ID},
			deviceID: row.DeviceID, eventType: row.EventType, json: row.JSON,
		})
	}
}

// resumePosition turns a client's resume id into a position in project's
// order, or says why it cannot.
func (s *Server) resumePosition(ctx context.Context, project, raw string) (cursor.Position, error) {
	r, err := cursor.Parse(raw)
	if err != nil {
		return cursor.Position{}, newError(ErrBadRequest, 400,
			"Last-Event-ID / last_event_id must be the eventId of an event or ping this stream sent")
	}
	gone := newError(ErrResumeGone, 410, fmt.Sprintf(
		"cannot resume from that id: it is unknown to this project or older than the resume window (%v); "+
			"reconnect without it and read what was missed from the device event history", s.cfg.ResumeWindow))
	pos := r.Position
	if !r.IsToken() {
		snap, err := s.deps.Firestore.Collection(EventsCollection).Doc(r.EventID).Get(ctx)
		if status.Code(err) == codes.NotFound {
			return cursor.Position{}, gone
		}
		if err != nil {
			return cursor.Position{}, unavailable(s, fmt.Errorf("resume event: %w", err))
		}
		var row eventRow
		if err := snap.DataTo(&row); err != nil {
			return cursor.Position{}, unavailable(s, fmt.Errorf("resume event: %w", err))
		}
		if row.ProjectID != project || row.StoredAt.IsZero() {
			// Another project's event answers as an unknown one, so ids
			// reveal nothing across projects.
			return cursor.Position{}, gone
		}
		pos = cursor.Position{At: row.StoredAt, ID: snap.Ref.ID}
	}
	now := s.deps.Now()
	if pos.At.Before(now.Add(-s.cfg.ResumeWindow)) {
		return cursor.Position{}, gone
	}
	if pos.At.After(now.Add(time.Minute)) {
		return cursor.Position{}, newError(ErrBadRequest, 400, "the resume id lies in the future")
	}
	return pos, nil
}

// unavailable is a refusal for a failure of ours, with the cause logged
// and not shown.
func unavailable(s *Server, err error) *Error {
	s.log.Error("stream: cannot open", "error", err.Error())
	e := newError(ErrUnavailable, 503, "the stream is unavailable; retry")
	e.RetryAfter = s.cfg.RetryAfter
	return e
}

// device is what device_types and label_filters look at.
type device struct {
	typ    string
	labels map[string]string
}

type deviceRow struct {
	ProjectID string            `firestore:"projectId"`
	Type      string            `firestore:"type"`
	Labels    map[string]string `firestore:"labels"`
}

type cachedDevice struct {
	dev     *device
	fetched time.Time
}

// deviceCache keeps devices for DeviceTTL, per instance, so a filter on
// types or labels costs a device read per device and TTL, not per event
// and stream.
type deviceCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]cachedDevice
}

// maxCachedDevices bounds the cache; past it the cache starts over.
const maxCachedDevices = 100000

func newDeviceCache(ttl time.Duration) *deviceCache {
	return &deviceCache{ttl: ttl, m: map[string]cachedDevice{}}
}

// resolve fills in the device of each item that lacks it, reading the
// devices not cached in one call.
func (s *Server) resolve(ctx context.Context, project string, items []*item) error {
	now := time.Now()
	c := s.devices
	var missing []*item
	c.mu.Lock()
	for _, it := range items {
		if it.dev.Load() != nil {
			continue
		}
		if e, ok := c.m[project+"/"+it.deviceID]; ok && now.Sub(e.fetched) < c.ttl {
			it.dev.Store(e.dev)
			continue
		}
		missing = append(missing, it)
	}
	c.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	ids := map[string]*device{}
	var refs []*firestore.DocumentRef
	for _, it := range missing {
		if _, ok := ids[it.deviceID]; !ok {
			ids[it.deviceID] = nil
			refs = append(refs, s.deps.Firestore.Collection(registry.DevicesCollection).Doc(it.deviceID))
		}
	}
	snaps, err := s.deps.Firestore.GetAll(ctx, refs)
	if err != nil {
		return fmt.Errorf("devices of %s: %w", project, err)
	}
	for _, snap := range snaps {
		d := &device{}
		if snap.Exists() {
			var row deviceRow
			if err := snap.DataTo(&row); err != nil {
				return fmt.Errorf("device %s: %w", snap.Ref.ID, err)
			}
			// A device now in another project keeps none of its type or
			// labels here: they are the other project's data.
			if row.ProjectID == project {
				d = &device{typ: row.Type, labels: row.Labels}
			}
		}
		ids[snap.Ref.ID] = d
	}
	c.mu.Lock()
	if len(c.m) > maxCachedDevices {
		clear(c.m)
	}
	for id, d := range ids {
		c.m[project+"/"+id] = cachedDevice{dev: d, fetched: now}
	}
	c.mu.Unlock()
	for _, it := range missing {
		it.dev.Store(ids[it.deviceID])
	}
	return nil
}
