package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/relay"
	"github.com/sealedsense/sealedsense/shared/store"
)

func (s *Service) handleStatus(ctx context.Context, data []byte) error {
	st, err := relay.OpenStatus(ctx, data, s.connectors.key)
	if err != nil {
		return envelopeErr(err)
	}
	ev, err := s.setConnection(ctx, st.ConnectorID, func(cs store.Connector, now time.Time) (store.Connector, bool) {
		if !st.Time.After(cs.LastStatus) {
			return cs, false // an older heartbeat, redelivered or reordered
		}
		cs.LastStatus, cs.LastSeen = st.Time, now
		cs.Online = st.Connection != relay.ConnectionOffline
		cs.Available = st.Available
		changed := cs.Connection != st.Connection
		cs.Connection = st.Connection
		return cs, changed
	})
	if err != nil {
		return err
	}
	if ev != nil {
		s.log.Info("connector status changed", "connectorId", st.ConnectorID, "connection", st.Connection)
	}
	if st.Connection != relay.ConnectionOffline {
		s.announceChannel(ctx, st.ConnectorID)
	}
	return nil
}

// Sweep marks connectors whose heartbeats stopped as offline, with a
// connectionStatus event and an alertable log line, and device
// configurations left unconfirmed too long as expired, with a
// configurationStatus event. It returns how many connectors went
// offline. Cloud Scheduler calls it every minute through the Sweep HTTP
// function.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	// One failing does not hold the other up.
	n, err := s.sweepConnectors(ctx)
	if _, cerr := s.expireConfigs(ctx); cerr != nil {
		err = errors.Join(err, cerr)
	}
	return n, err
}

func (s *Service) sweepConnectors(ctx context.Context) (int, error) {
	ids, err := s.db.SilentConnectors(ctx, s.deps.Now().Add(-s.cfg.OfflineAfter))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		ev, err := s.setConnection(ctx, id, func(cs store.Connector, now time.Time) (store.Connector, bool) {
			if !cs.Online || now.Sub(cs.LastSeen) < s.cfg.OfflineAfter {
				return cs, false // a heartbeat arrived since the query
			}
			cs.Online, cs.Connection = false, relay.ConnectionOffline
			return cs, true
		})
		if err != nil {
			return n, err
		}
		if ev != nil {
			n++
			// Alert policy "connector offline" counts this line.
			s.log.Warn("connector offline", "alert", "connector-offline", "connectorId", id)
		}
	}
	return n, nil
}

// setConnection applies change to a connector's status in a transaction and,
// when the connection changed, stores and publishes a connectionStatus event.
func (s *Service) setConnection(ctx context.Context, id string, change func(store.Connector, time.Time) (store.Connector, bool)) ([]byte, error) {
	var js []byte
	var project string
	s.n.commits.Add(1)
	err := s.db.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		js = nil
		now := s.deps.Now()
		cs, err := s.db.ConnectorIn(tx, id)
		if err != nil {
			return err
		}
		next, changed := change(cs, now)
		if next.LastSeen.Equal(cs.LastSeen) && !changed {
			return nil
		}
		if err := s.db.SetConnectorStatus(tx, id, next); err != nil {
			return err
		}
		if !changed || next.ProjectID == "" {
			return nil
		}
		ev := event.ConnectionStatusFor(next.ProjectID, id, next.Connection, next.Available, now)
		se, err := s.stored(ev, next.ProjectID, id, now)
		if err != nil {
			return err
		}
		js, project = se.doc.JSON, next.ProjectID
		return s.db.CreateEvent(tx, se.id, se.doc)
	})
	if err != nil {
		return nil, fmt.Errorf("connector %s: %w", id, err)
	}
	if js != nil {
		if err := s.publishEvents(ctx, project, id, [][]byte{js}); err != nil {
			return nil, err
		}
	}
	return js, nil
}
