package stream

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/sealedsense/sealedsense/functions/api/stream/cursor"
	"github.com/sealedsense/sealedsense/shared/store"
)

// source is what a stream reads from the data model (shared/store).
type source interface {
	// StreamEvents reads a page of a project's events in order.
	StreamEvents(ctx context.Context, p store.StreamPage) ([]store.EventDoc, error)
	// WatchNewestEvent calls changed whenever a project's newest event
	// changes, until the listener fails.
	WatchNewestEvent(ctx context.Context, project string, changed func()) error
	// Event reads one event, for a resume.
	Event(ctx context.Context, id string) (store.Event, error)
	// Devices reads the devices of ids that exist.
	Devices(ctx context.Context, ids []string) (map[string]store.Device, error)
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
	docs, err := s.src.StreamEvents(ctx, store.StreamPage{Project: project,
		After: store.StreamPos(after), UpTo: store.StreamPos(upTo), Limit: n})
	if err != nil {
		return nil, fmt.Errorf("events of %s: %w", project, err)
	}
	out := make([]*item, len(docs))
	for i, d := range docs {
		out[i] = &item{
			pos:      cursor.Position{At: d.StoredAt, ID: d.ID},
			deviceID: d.DeviceID, eventType: d.EventType, json: d.JSON,
		}
	}
	return out, nil
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
		ev, err := s.src.Event(ctx, r.EventID)
		if store.IsNotFound(err) {
			return cursor.Position{}, gone
		}
		if err != nil {
			return cursor.Position{}, unavailable(s, fmt.Errorf("resume event: %w", err))
		}
		if ev.ProjectID != project || ev.StoredAt.IsZero() {
			// Another project's event answers as an unknown one, so ids
			// reveal nothing across projects.
			return cursor.Position{}, gone
		}
		pos = cursor.Position{At: ev.StoredAt, ID: r.EventID}
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

// maxCachedDevices bounds the device cache; past it the least recently
// used device leaves.
const maxCachedDevices = 100000

// resolve fills in the device of each item that lacks it, reading the
// devices not cached in one call. Devices are cached for DeviceTTL from
// before their read, per instance, so a filter on types or labels costs
// a device read per device and TTL, not per event and stream.
func (s *Server) resolve(ctx context.Context, project string, items []*item) error {
	now := time.Now()
	missing, ids := s.uncached(project, items)
	if len(missing) == 0 {
		return nil
	}
	found, err := s.src.Devices(ctx, ids)
	if err != nil {
		return fmt.Errorf("devices of %s: %w", project, err)
	}
	devs := make(map[string]*device, len(ids))
	for _, id := range ids {
		d := &device{}
		// A device now in another project keeps none of its type or
		// labels here: they are the other project's data.
		if row, ok := found[id]; ok && row.ProjectID == project {
			d = &device{typ: row.Type, labels: row.Labels}
		}
		devs[id] = d
		s.devices.PutUntil(project+"/"+id, d, now.Add(s.cfg.DeviceTTL))
	}
	for _, it := range missing {
		it.dev.Store(devs[it.deviceID])
	}
	return nil
}

// uncached fills in the items whose device is cached and returns the
// others, with their device ids, each once.
func (s *Server) uncached(project string, items []*item) (missing []*item, ids []string) {
	seen := map[string]bool{}
	for _, it := range items {
		if it.dev.Load() != nil {
			continue
		}
		if d, ok := s.devices.Get(project + "/" + it.deviceID); ok {
			it.dev.Store(d)
			continue
		}
		missing = append(missing, it)
		if !seen[it.deviceID] {
			seen[it.deviceID] = true
			ids = append(ids, it.deviceID)
		}
	}
	return missing, ids
}
