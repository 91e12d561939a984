package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/relay"
	"github.com/sealedsense/sealedsense/shared/store"
)

// Connector status. Each heartbeat updates its connector's record, and
// what it says that is news becomes an event of the connector as a device
// of type ccon (statusEvents): connectionStatus when the link it publishes
// over changes, ethernetStatus when anything it knows of its Ethernet link
// changes, and cellularStatus when its cellular link goes up or down, its
// faults change, or its signal moves signalStep or more from the signal
// last published, so that a flickering signal is not a flood of events.
// The record keeps what was last published, so a signal that drifts a
// little at each heartbeat is published once it has drifted far enough.
// A heartbeat with no facts about a link (an older connector, or one
// without that link) says nothing new about it. The record, the events
// and the device's reported state change in one transaction.

// signalStep is the move in cellular signal strength (0..100) that is
// news.
const signalStep = 10

func (s *Service) handleStatus(ctx context.Context, data []byte) error {
	st, err := relay.OpenStatus(ctx, data, s.connectors.key)
	if err != nil {
		return envelopeErr(err)
	}
	out, err := s.setConnection(ctx, st.ConnectorID, st.Software, func(cs store.Connector, now time.Time) (store.Connector, bool) {
		return applyStatus(cs, st, now)
	})
	if err != nil {
		return err
	}
	if len(out.types) > 0 {
		s.log.Info("connector status changed", "connectorId", st.ConnectorID, "connection", st.Connection, "events", out.types)
	}
	if st.Connection != relay.ConnectionOffline {
		s.announceChannel(ctx, st.ConnectorID)
		s.sendConnectorSoftware(ctx, st.ConnectorID, out.offer)
	}
	return nil
}

// applyStatus is a connector's record after heartbeat st, received at
// now, and false for a heartbeat no newer than the last one (redelivered
// or reordered), which changes nothing.
func applyStatus(cs store.Connector, st relay.Status, now time.Time) (store.Connector, bool) {
	if !st.Time.After(cs.LastStatus) {
		return cs, false
	}
	cs.LastStatus, cs.LastSeen = st.Time, now
	cs.Online = st.Connection != relay.ConnectionOffline
	cs.OfflineAlerted = false // a new outage is alerted on anew
	cs.Connection = st.Connection
	cs.Available = linksUp(st)
	if l := linkState(st.Ethernet); ethernetNews(cs.Ethernet, l) {
		cs.Ethernet = l
	}
	if l := linkState(st.Cellular); cellularNews(cs.Cellular, l) {
		cs.Cellular = l
	}
	return cs, true
}

// linksUp lists the links st says are up: from its link facts when it
// has any, else as its Available lists them (a connector from before
// link facts).
func linksUp(st relay.Status) []string {
	if st.Ethernet == nil && st.Cellular == nil {
		return st.Available
	}
	var up []string
	if st.Ethernet != nil && st.Ethernet.Up {
		up = append(up, relay.ConnectionEthernet)
	}
	if st.Cellular != nil && st.Cellular.Up {
		up = append(up, relay.ConnectionCellular)
	}
	return up
}

// linkState is a link's facts as the record keeps them: the MAC address
// in one spelling and the errors as a set, so that a connector that
// spells or orders them differently says nothing new.
func linkState(l *relay.Link) *store.ConnectorLink {
	if l == nil {
		return nil
	}
	out := &store.ConnectorLink{Up: l.Up, SignalStrength: l.SignalStrength, MACAddress: l.MACAddress}
	if hw, err := net.ParseMAC(l.MACAddress); err == nil {
		out.MACAddress = hw.String()
	}
	if len(l.Errors) > 0 {
		out.Errors = slices.Compact(slices.Sorted(slices.Values(l.Errors)))
	}
	return out
}

// ethernetNews says whether next, a heartbeat's Ethernet facts, differs
// from last, those last published.
func ethernetNews(last, next *store.ConnectorLink) bool {
	switch {
	case next == nil:
		return false
	case last == nil:
		return true
	}
	return last.Up != next.Up || last.MACAddress != next.MACAddress || !slices.Equal(last.Errors, next.Errors)
}

// cellularNews says whether next, a heartbeat's cellular facts, differs
// from last, those last published: up or down, other faults, or a signal
// signalStep or more away.
func cellularNews(last, next *store.ConnectorLink) bool {
	switch {
	case next == nil:
		return false
	case last == nil:
		return true
	}
	move := next.SignalStrength - last.SignalStrength
	return last.Up != next.Up || !slices.Equal(last.Errors, next.Errors) || move >= signalStep || move <= -signalStep
}

// statusEvents are the events of a connector's record changing from prev
// to next at now.
func statusEvents(prev, next store.Connector, project, id string, now time.Time) []event.Event {
	var out []event.Event
	if next.Connection != prev.Connection {
		out = append(out, event.ConnectionStatusFor(project, id, next.Connection, next.Available, now))
	}
	if l := next.Ethernet; l != nil && !sameLink(prev.Ethernet, l) {
		out = append(out, event.EthernetStatusFor(project, id, l.MACAddress, l.Errors, now))
	}
	if l := next.Cellular; l != nil && !sameLink(prev.Cellular, l) {
		out = append(out, event.CellularStatusFor(project, id, l.SignalStrength, l.Errors, now))
	}
	return out
}

func sameLink(a, b *store.ConnectorLink) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Up == b.Up && a.MACAddress == b.MACAddress && a.SignalStrength == b.SignalStrength && slices.Equal(a.Errors, b.Errors)
}

// Sweep marks connectors whose heartbeats stopped as offline, with a
// connectionStatus event and an alertable log line, and device
// configurations left unconfirmed too long as expired, with a
// configurationStatus event, and reviews the fleet health of devices
// whose review time passed (silence). It returns how many connectors went
// offline. Cloud Scheduler calls it every minute through the Sweep HTTP
// function.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	// One failing does not hold the other up.
	n, err := s.sweepConnectors(ctx)
	if _, cerr := s.expireConfigs(ctx); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if _, herr := s.reviewHealth(ctx); herr != nil {
		err = errors.Join(err, herr)
	}
	if aerr := s.alertLongOffline(ctx); aerr != nil {
		err = errors.Join(err, aerr)
	}
	if rerr := s.stepRollouts(ctx); rerr != nil {
		err = errors.Join(err, rerr)
	}
	return n, err
}

// alertLongOffline logs, once per outage, each connector offline longer
// than OfflineAlertAfter, for the long-outage alert.
func (s *Service) alertLongOffline(ctx context.Context) error {
	cutoff := s.deps.Now().Add(-s.cfg.OfflineAlertAfter)
	ids, err := s.db.LongOfflineConnectors(ctx, cutoff)
	if err != nil {
		return err
	}
	for _, id := range ids {
		marked, since, err := s.db.MarkOfflineAlerted(ctx, id, cutoff)
		if err != nil {
			return err
		}
		if marked {
			s.log.Error("connector offline for long", "alert", "connector-offline-long", "connectorId", id,
				"lastSeen", since, "offlineFor", s.deps.Now().Sub(since).Round(time.Second).String())
		}
	}
	return nil
}

func (s *Service) sweepConnectors(ctx context.Context) (int, error) {
	ids, err := s.db.SilentConnectors(ctx, s.deps.Now().Add(-s.cfg.OfflineAfter))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		var offline bool
		_, err := s.setConnection(ctx, id, nil, func(cs store.Connector, now time.Time) (store.Connector, bool) {
			offline = false // a retried transaction decides again
			if !cs.Online || now.Sub(cs.LastSeen) < s.cfg.OfflineAfter {
				return cs, false // a heartbeat arrived since the query
			}
			// The cloud hears it over no link: none is up as far as
			// anyone reading the event can tell.
			cs.Online, cs.Connection, cs.Available = false, relay.ConnectionOffline, nil
			offline = true
			return cs, true
		})
		if err != nil {
			return n, err
		}
		if offline {
			n++
			// Alert policy "connector offline" counts this line.
			s.log.Warn("connector offline", "alert", "connector-offline", "connectorId", id)
		}
	}
	return n, nil
}

// setConnection applies change to a connector's record in a transaction,
// which also stores the status events of the change, with the record's
// state before as what was published (statusEvents), and writes them into
// the connector's device's reported state; rep, a heartbeat's software
// report, if any, moves its software shadow in the same transaction. It
// then publishes the events, and returns what it stored and the piece of
// a pending release to send.
func (s *Service) setConnection(ctx context.Context, id string, rep *payload.UpdateReport, change func(store.Connector, time.Time) (store.Connector, bool)) (statusOutcome, error) {
	var out statusOutcome
	s.n.commits.Add(1)
	err := s.db.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		out = statusOutcome{}
		now := s.deps.Now()
		cs, err := s.db.ConnectorIn(tx, id)
		if err != nil {
			return err
		}
		var found store.ConnectorDevice
		if cs.ProjectID != "" {
			if found, err = s.db.ConnectorDeviceIn(tx, id); err != nil {
				return err
			}
		}
		next, ok := change(cs, now)
		if !ok {
			return nil
		}
		if err := s.db.SetConnectorStatus(tx, id, next); err != nil {
			return err
		}
		if next.ProjectID == "" {
			return nil // no project: its status belongs to no customer
		}
		if found.Sensor {
			out.clash = true
			return nil
		}
		prev := cs
		if !found.Exists {
			// A connector registered before connectors were devices: its
			// new device is told all that is known.
			prev = store.Connector{}
		}
		var sw softwareStep
		if rep != nil && found.Exists {
			sw = planSoftware(found.Software, rep, now)
		}
		out, err = s.reportStatus(tx, id, found, statusEvents(prev, next, next.ProjectID, id, now), sw, next.ProjectID, now)
		return err
	})
	if err != nil {
		return statusOutcome{}, fmt.Errorf("connector %s: %w", id, err)
	}
	if out.clash {
		s.log.Error("connector has a sensor's id: its status is not stored as events", "connectorId", id)
	}
	if len(out.json) > 0 {
		if err := s.publishEvents(ctx, out.project, id, out.json); err != nil {
			return statusOutcome{}, err
		}
	}
	return out, nil
}

// statusOutcome is what a status transaction stored: its events' types
// and JSON, for the log and for publishing, and whether the connector's
// id turned out to be a sensor's.
type statusOutcome struct {
	project string
	types   []string
	json    [][]byte
	clash   bool
	offer   softwareOffer
}

// reportStatus stores a connector's status events, and the
// softwareUpdateStatus event of its software step, in tx and writes their
// data into its device's reported state, making the device if found says
// there is none.
func (s *Service) reportStatus(tx *firestore.Transaction, id string, found store.ConnectorDevice, evs []event.Event, sw softwareStep, project string, now time.Time) (statusOutcome, error) {
	out := statusOutcome{project: project, offer: sw.offer}
	reported := make(map[string]any, len(evs)+2)
	if sw.update != nil {
		evs = append(evs, event.SoftwareUpdateStatusFor(project, id, *sw.update, now))
	}
	if sw.change != nil && sw.change.ReportedVersion != 0 {
		reported["softwareVersion"] = softwareVersionData(sw.change.ReportedVersion, now)
	}
	for _, ev := range evs {
		se, err := s.stored(ev, project, id, now)
		if err != nil {
			return statusOutcome{}, err
		}
		if err := s.db.CreateEvent(tx, se.id, se.doc); err != nil {
			return statusOutcome{}, err
		}
		reported[ev.EventType] = se.data
		out.types = append(out.types, ev.EventType)
		out.json = append(out.json, se.doc.JSON)
	}
	if found.Exists && len(reported) == 0 && sw.change == nil {
		return out, nil
	}
	return out, s.db.SetConnectorReported(tx, id, project, found, reported, sw.change, now)
}
