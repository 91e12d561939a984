package deliver

import (
	"context"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
	"github.com/cloudevents/sdk-go/v2/event"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sealedsense/sealedsense/shared/dataconnector"
	dtevent "github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/pushmsg"
	"github.com/sealedsense/sealedsense/shared/registry"
)

// Handle is the CloudEvent entry point for the events topic. It queues one
// delivery per matching connector, starts their first attempts, and
// returns without waiting for them.
func (s *Service) Handle(ctx context.Context, e event.Event) error {
	m, _, err := pushmsg.Decode(e)
	if err != nil {
		s.log.Warn("event refused", "rejected", "malformed-message", "error", err.Error())
		return nil
	}
	raw, err := dtevent.SplitMessage(m.Data)
	if err != nil {
		s.log.Warn("event refused", "rejected", "malformed-event", "error", err.Error(), "messageId", m.MessageID)
		return nil
	}
	evs := make([]dataconnector.Event, 0, len(raw))
	for _, r := range raw {
		ev, err := dataconnector.ParseEvent(r, m.Attributes)
		if err != nil {
			// Never retried: it could not succeed. Logged without the
			// payload; the message's other events still go out.
			s.log.Warn("event refused", "rejected", "malformed-event", "error", err.Error(), "messageId", m.MessageID)
			continue
		}
		evs = append(evs, ev)
	}
	return s.Enqueue(ctx, evs...)
}

// Enqueue queues events (of one project) for every active connector of
// the project that takes their type, and starts the first attempts. An
// error means nothing may be assumed queued: Pub/Sub redelivers, and pairs
// already queued are kept.
func (s *Service) Enqueue(ctx context.Context, events ...dataconnector.Event) error {
	if len(events) == 0 {
		return nil
	}
	conns, err := s.connectors(ctx, events[0].Project)
	if err != nil {
		return err
	}
	now := s.deps.Now()
	type queued struct {
		id  string
		c   connector
		ev  dataconnector.Event
		job *firestore.BulkWriterJob
	}
	var qs []queued
	bw := s.deps.Firestore.BulkWriter(ctx)
	for _, ev := range events {
		for _, c := range conns {
			if ev.Project != events[0].Project || c.Status != dataconnector.Active || !c.Wants(ev.Type) {
				continue
			}
			q := queued{id: dataconnector.DeliveryID(c.id, ev.ID, ""), c: c, ev: ev}
			// The first attempt runs from this instance's lane for the
			// connector: the pair is leased to it for as long as the lane's
			// queue may take, and the sweep takes it only if that runs out.
			l := s.lane(c.id)
			due := now.Add(s.lease(len(l.queue)))
			if len(l.queue) == cap(l.queue) {
				due = now // the lane is full: the sweep's
			}
			d := dataconnector.Delivery{ProjectID: ev.Project, ConnectorID: c.id, EventID: ev.ID, DeviceID: ev.Device, EventType: ev.Type,
				Status: dataconnector.Pending, Due: due, Queued: now, ExpireAt: now.Add(s.cfg.Retention)}
			if q.job, err = bw.Create(s.deps.Firestore.Collection(dataconnector.Deliveries).Doc(q.id), d); err != nil {
				bw.End()
				return fmt.Errorf("deliver: queue: %w", err)
			}
			qs = append(qs, q)
		}
	}
	if len(qs) == 0 {
		return nil
	}
	bw.End()
	var failed error
	for _, q := range qs {
		_, err := q.job.Results()
		switch {
		case err == nil:
			if !s.dispatch(delivery{id: q.id, c: q.c, ev: q.ev, queued: now}) {
				s.log.Warn("delivery lane full, left to the sweep", "connectorId", q.c.id)
				ref := s.deps.Firestore.Collection(dataconnector.Deliveries).Doc(q.id)
				if _, err := ref.Update(ctx, []firestore.Update{{Path: "due", Value: now}}); err != nil {
					failed = err
				}
			}
		case status.Code(err) == codes.AlreadyExists:
			// A redelivered message: the pair is queued already, and its
			// own attempt or the sweep owns it.
		default:
			failed = err
		}
	}
	if failed != nil {
		return fmt.Errorf("deliver: queue: %w", failed)
	}
	return nil
}

// connector is a cached connector document with its id.
type connector struct {
	id string
	dataconnector.Connector
}

type cachedConnectors struct {
	list    []connector
	fetched time.Time
}

// connectors returns a project's connectors, at most CacheTTL old.
func (s *Service) connectors(ctx context.Context, project string) ([]connector, error) {
	now := s.deps.Now()
	s.mu.Lock()
	c, ok := s.conns[project]
	s.mu.Unlock()
	if ok && now.Sub(c.fetched) < s.cfg.CacheTTL {
		return c.list, nil
	}
	docs, err := s.deps.Firestore.Collection(dataconnector.Collection).Where("projectId", "==", project).Documents(ctx).GetAll()
	if err != nil {
		return nil, fmt.Errorf("deliver: connectors of %s: %w", project, err)
	}
	list := make([]connector, 0, len(docs))
	for _, d := range docs {
		var dc dataconnector.Connector
		if err := d.DataTo(&dc); err != nil {
			return nil, fmt.Errorf("deliver: connector %s: %w", d.Ref.ID, err)
		}
		list = append(list, connector{id: d.Ref.ID, Connector: dc})
	}
	s.mu.Lock()
	s.conns[project] = cachedConnectors{list: list, fetched: now}
	s.mu.Unlock()
	return list, nil
}

// connector returns one connector of a project; ok is false once it is
// deleted.
func (s *Service) connector(ctx context.Context, project, id string) (connector, bool, error) {
	list, err := s.connectors(ctx, project)
	if err != nil {
		return connector{}, false, err
	}
	for _, c := range list {
		if c.id == id {
			return c, true, nil
		}
	}
	return connector{}, false, nil
}

// forget drops a project's cached connectors after this instance changed
// one, so its own next attempt sees the change.
func (s *Service) forget(project string) {
	s.mu.Lock()
	delete(s.conns, project)
	s.mu.Unlock()
}

type cachedDevice struct {
	d       registry.Device
	fetched time.Time
}

// device returns a device's type, product number and labels, at most
// CacheTTL old.
func (s *Service) device(ctx context.Context, id string) (registry.Device, error) {
	now := s.deps.Now()
	s.mu.Lock()
	c, ok := s.devices[id]
	s.mu.Unlock()
	if ok && now.Sub(c.fetched) < s.cfg.CacheTTL {
		return c.d, nil
	}
	snap, err := s.deps.Firestore.Collection(registry.DevicesCollection).Doc(id).Get(ctx)
	if err != nil {
		return registry.Device{}, fmt.Errorf("deliver: device %s: %w", id, err)
	}
	var d registry.Device
	if err := snap.DataTo(&d); err != nil {
		return registry.Device{}, fmt.Errorf("deliver: device %s: %w", id, err)
	}
	d.ID = id
	d.PublicKey, d.WrappedPSK = nil, nil // not needed here; not kept
	s.mu.Lock()
	if len(s.devices) > 10000 {
		clear(s.devices) // bounded: a cold refill costs a read per device
	}
	s.devices[id] = cachedDevice{d: d, fetched: now}
	s.mu.Unlock()
	return d, nil
}
