package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/iterator"

	"github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/registry"
	"github.com/sealedsense/sealedsense/shared/relay"
)

// connectorState is the status part of a connector's registry document.
type connectorState struct {
	ProjectID  string    `firestore:"projectId"`
	Connection string    `firestore:"connection"`
	Available  []string  `firestore:"available"`
	Online     bool      `firestore:"online"`
	LastSeen   time.Time `firestore:"lastSeen"`
	LastStatus time.Time `firestore:"lastStatus"` // the connector's own clock, to drop reordered heartbeats
}

func (s *Service) handleStatus(ctx context.Context, data []byte) error {
	st, err := relay.OpenStatus(ctx, data, s.connector)
	if err != nil {
		return envelopeErr(err)
	}
	ev, err := s.setConnection(ctx, st.ConnectorID, func(cs connectorState, now time.Time) (connectorState, bool) {
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
	return nil
}

// Sweep marks connectors whose heartbeats stopped as offline, with a
// connectionStatus event and an alertable log line. Cloud Scheduler calls
// it every minute through the Sweep HTTP function.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	cutoff := s.deps.Now().Add(-s.cfg.OfflineAfter)
	it := s.deps.Firestore.Collection(registry.ConnectorsCollection).
		Where("online", "==", true).Where("lastSeen", "<", cutoff).Documents(ctx)
	defer it.Stop()
	n := 0
	for {
		snap, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		id := snap.Ref.ID
		ev, err := s.setConnection(ctx, id, func(cs connectorState, now time.Time) (connectorState, bool) {
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
}

// setConnection applies change to a connector's status in a transaction and,
// when the connection changed, stores and publishes a connectionStatus event.
func (s *Service) setConnection(ctx context.Context, id string, change func(connectorState, time.Time) (connectorState, bool)) ([]byte, error) {
	fs := s.deps.Firestore
	ref := fs.Collection(registry.ConnectorsCollection).Doc(id)
	var js []byte
	var project string
	s.commits.Add(1)
	err := fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		js = nil
		now := s.deps.Now()
		snap, err := tx.Get(ref)
		if err != nil {
			return err
		}
		var cs connectorState
		if err := snap.DataTo(&cs); err != nil {
			return err
		}
		next, changed := change(cs, now)
		if next.LastSeen.Equal(cs.LastSeen) && !changed {
			return nil
		}
		if err := tx.Update(ref, []firestore.Update{
			{Path: "connection", Value: next.Connection},
			{Path: "available", Value: next.Available},
			{Path: "online", Value: next.Online},
			{Path: "lastSeen", Value: next.LastSeen},
			{Path: "lastStatus", Value: next.LastStatus},
		}); err != nil {
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
		return tx.Create(fs.Collection(eventsCollection).Doc(se.id), se.doc)
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
