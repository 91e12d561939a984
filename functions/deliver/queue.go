package deliver

import (
	"context"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/sealedsense/sealedsense/shared/dataconnector"
	dtevent "github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/pushmsg"
	"github.com/sealedsense/sealedsense/shared/store"
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
	ds, ids, docs := s.pairs(events, conns, now)
	if len(ds) == 0 {
		return nil
	}
	errs, err := s.db.CreateDeliveries(ctx, ids, docs)
	if err != nil {
		return fmt.Errorf("deliver: queue: %w", err)
	}
	var failed error
	for i, d := range ds {
		switch err := errs[i]; {
		case err == nil:
			if !s.dispatch(d) {
				s.log.Warn("delivery lane full, left to the sweep", "connectorId", d.c.id)
				if err := s.db.SetDeliveryDue(ctx, d.id, now); err != nil {
					failed = err
				}
			}
		case store.IsExists(err):
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

// pairs are the (event, connector) pairs of events that active connectors
// take, with their document ids and documents.
func (s *Service) pairs(events []dataconnector.Event, conns []connector, now time.Time) ([]delivery, []string, []store.Delivery) {
	var ds []delivery
	var ids []string
	var docs []store.Delivery
	for _, ev := range events {
		for _, c := range conns {
			if ev.Project != events[0].Project || c.Status != dataconnector.Active || !c.Wants(ev.Type) {
				continue
			}
			d := delivery{id: store.DeliveryID(c.id, ev.ID, ""), c: c, ev: ev, queued: now}
			ds, ids = append(ds, d), append(ids, d.id)
			docs = append(docs, store.Delivery{ProjectID: ev.Project, ConnectorID: c.id, EventID: ev.ID, DeviceID: ev.Device, EventType: ev.Type,
				Status: dataconnector.Pending, Due: s.firstDue(c.id, now), Queued: now, ExpireAt: now.Add(s.cfg.Retention)})
		}
	}
	return ds, ids, docs
}

// firstDue is when the sweep may take a new pair of a connector. The first
// attempt runs from this instance's lane for the connector: the pair is
// leased to it for as long as the lane's queue may take, and the sweep
// takes it only if that runs out.
func (s *Service) firstDue(connector string, now time.Time) time.Time {
	l := s.lane(connector)
	if len(l.queue) == cap(l.queue) {
		return now // the lane is full: the sweep's
	}
	return now.Add(s.lease(len(l.queue)))
}

// connector is a cached connector document with its id.
type connector struct {
	id string
	dataconnector.Connector
}

// connectors returns a project's connectors, at most CacheTTL old.
func (s *Service) connectors(ctx context.Context, project string) ([]connector, error) {
	if list, ok := s.conns.Get(project); ok {
		return list, nil
	}
	docs, err := s.db.ProjectDataConnectors(ctx, project)
	if err != nil {
		return nil, fmt.Errorf("deliver: %w", err)
	}
	list := make([]connector, len(docs))
	for i, d := range docs {
		list[i] = connector{id: d.ID, Connector: dataconnector.Connector(d.DataConnector)}
	}
	s.conns.Put(project, list)
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
func (s *Service) forget(project string) { s.conns.Remove(project) }

// device returns a device's type, product number and labels, at most
// CacheTTL old.
func (s *Service) device(ctx context.Context, id string) (store.Device, error) {
	if d, ok := s.devices.Get(id); ok {
		return d, nil
	}
	d, err := s.db.Device(ctx, id)
	if err != nil {
		return store.Device{}, fmt.Errorf("deliver: %w", err)
	}
	// Only what a body needs is kept.
	d = store.Device{Type: d.Type, ProductNumber: d.ProductNumber, Labels: d.Labels}
	s.devices.Put(id, d)
	return d, nil
}
