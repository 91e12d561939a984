package ingest

import (
	"context"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/radio"
	"github.com/sealedsense/sealedsense/shared/store"
)

// replyTimeout bounds the work of sending one reply.
const replyTimeout = 10 * time.Second

// scheduleReply sends a packet's reply once its collection window has
// closed. The events are already stored and published when this is called,
// so losing the reply (the instance dies first) loses no data: the sensor
// resends the readings, and their events are not stored twice.
func (s *Service) scheduleReply(recID string, out outcome) {
	s.deps.After(out.rec.FirstSeen.Add(s.cfg.Window).Sub(s.deps.Now()), func() {
		ctx, cancel := context.WithTimeout(context.Background(), replyTimeout)
		defer cancel()
		again, err := s.finish(ctx, recID, out)
		if err != nil {
			s.log.Error("reply failed; the sensor will resend", "error", err.Error(), "deviceId", out.rec.DeviceID)
		}
		if again > 0 {
			out.polls++
			s.deps.After(again, func() { s.scheduleReply(recID, out) })
		}
	})
}

// pollStore is how often, in polls, a reply waiting for copies reads the
// reception record rather than only this instance's memory.
const pollStore = 4

// missing reports whether a connector whose copy is worth waiting for has
// not been heard yet, among those that heard the device lately (links).
func (s *Service) missing(ctx context.Context, links map[string]store.Link, heard []store.Hearer) bool {
	want := expectedHearers(links, s.deps.Now())
	if len(links) == 0 {
		// A device heard for the first time (its first handshake): any
		// online connector may be its best, so wait for them all, within
		// MaxWindow. It happens once per device.
		want = s.online.list(ctx)
	}
	for _, h := range heard {
		delete(want, h.ConnectorID)
	}
	return len(want) > 0
}

// finish picks one connector among those that heard the packet, sends the
// reply through it, and records the choice so the next uplink can say
// whether the reply arrived.
//
// The collection window adapts: when a connector that has been hearing
// this device has not delivered its copy yet, typically because Pub/Sub is
// delivering a backlog, finish asks to run again shortly (the returned
// delay), up to MaxWindow after the first copy.
func (s *Service) finish(ctx context.Context, recID string, out outcome) (time.Duration, error) {
	rec, joined, again, err := s.collect(ctx, recID, out)
	if err != nil || rec == nil {
		return again, err
	}
	r := chooseConnector(rec.Hearers, out.links, out.avoid)
	via := r.via
	if r.passed != "" {
		s.log.Warn("reply route passed over a connector", "reason", r.reason, "connectorId", r.passed, "via", via, "deviceId", rec.DeviceID)
	}
	if err := s.sendReply(ctx, rec.DeviceID, via, rec.Reply); err != nil {
		return 0, err
	}
	if err := s.recordReply(ctx, recID, *rec, via, joined, out); err != nil {
		return 0, err
	}
	s.log.Info("reply sent", append([]any{"deviceId", rec.DeviceID, "via", via, "heardBy", len(rec.Hearers), "hearers", hearerIDs(rec.Hearers)},
		s.logCounters()...)...)
	return 0, nil
}

// collect waits for the copies worth waiting for. It returns the packet's
// reception with every copy heard, and the copies that joined in memory;
// or a delay to poll again after; or neither, when the reply went out
// already.
func (s *Service) collect(ctx context.Context, recID string, out outcome) (*store.Reception, []store.Hearer, time.Duration, error) {
	deadline := s.deps.Now().Sub(out.rec.FirstSeen) >= s.cfg.MaxWindow
	if out.polls%pollStore != 0 && !deadline {
		// Copies that reach this instance join in memory, so most waits
		// are settled without a read; the record, which copies handled by
		// other instances add to, is read every few polls and at the end.
		heard := mergeHearers(out.rec.Hearers, s.claims.joined(recID))
		if s.missing(ctx, out.links, heard) {
			return nil, nil, s.cfg.Window / 4, nil
		}
	}
	rec, err := s.db.Reception(ctx, recID)
	if err != nil {
		return nil, nil, 0, err
	}
	if rec.Done {
		s.claims.take(recID)
		return nil, nil, 0, nil
	}
	rec.Hearers = mergeHearers(rec.Hearers, s.claims.joined(recID))
	if !deadline && s.missing(ctx, out.links, rec.Hearers) {
		return nil, nil, s.cfg.Window / 4, nil
	}
	joined := s.claims.take(recID)
	rec.Hearers = mergeHearers(rec.Hearers, joined)
	return &rec, joined, 0, nil
}

// recordReply records a sent reply: the reception is done, and the device
// learns about its links. Every NetworkStatusEvery it also stores and
// publishes the device's networkStatus event, in the same commit.
func (s *Service) recordReply(ctx context.Context, recID string, rec store.Reception, via string, joined []store.Hearer, out outcome) error {
	now := s.deps.Now()
	change := store.DeviceChange{RepliedVia: via, Seen: boundedSightings(sightings(rec.Hearers, out.links))}
	if !out.keepPending {
		change.Pending = pendingReply(rec, via, now)
	}
	var step healthStep
	if rec.ProjectID != "" && now.Sub(out.netStatus) >= s.cfg.NetworkStatusEvery {
		netEvent, err := s.networkStatus(ctx, recID, rec, via, joined, change, &step, now)
		if err != nil {
			return err
		}
		s.logAnomalies(rec.DeviceID, step.changes)
		return s.publishEvents(ctx, rec.ProjectID, rec.DeviceID, append([][]byte{netEvent}, jsonOf(step.events)...))
	}
	s.n.commits.Add(1)
	err := s.db.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		if err := s.locate(tx, rec, joined, &change, &step, now); err != nil {
			return err
		}
		if err := s.db.FinishReception(tx, recID, via, joined); err != nil {
			return err
		}
		return s.db.UpdateDevice(tx, rec.DeviceID, change)
	})
	if err != nil {
		return err
	}
	s.logAnomalies(rec.DeviceID, step.changes)
	return s.publishEvents(ctx, rec.ProjectID, rec.DeviceID, jsonOf(step.events))
}

// locate reads the device in tx and checks where the packet's hearers put
// it (health.go), adding the health change to change and the anomaly
// events to tx. The read is the one this transaction adds for fleet
// health; its commit is the one the reply makes anyway.
func (s *Service) locate(tx *firestore.Transaction, rec store.Reception, joined []store.Hearer, change *store.DeviceChange, step *healthStep, now time.Time) error {
	d, err := s.db.DeviceIn(tx, rec.DeviceID)
	if err != nil {
		return err
	}
	if *step, err = s.receptionHealth(d, rec.DeviceID, mergeHearers(rec.Hearers, joined), now); err != nil {
		return err
	}
	change.Health = step.change
	return step.storeEvents(tx, s.db)
}

// networkStatus writes the device's networkStatus event together with the
// reply bookkeeping, in one commit.
func (s *Service) networkStatus(ctx context.Context, recID string, rec store.Reception, via string, joined []store.Hearer, change store.DeviceChange, step *healthStep, now time.Time) ([]byte, error) {
	ns, err := event.NetworkStatusFor(rec.ProjectID, rec.DeviceID, rec.FirstSeen, toReceptions(rec.Hearers))
	if err != nil {
		return nil, fmt.Errorf("networkStatus of %s: %w", rec.DeviceID, err)
	}
	se, err := s.stored(ns, rec.ProjectID, rec.DeviceID, now)
	if err != nil {
		return nil, err
	}
	change.NetworkStatusAt = now
	change.Reported = map[string]any{"networkStatus": se.data}
	s.n.commits.Add(1)
	err = s.db.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		stored, err := s.db.StoredEvents(tx, []string{se.id})
		if err != nil {
			return err
		}
		if err := s.locate(tx, rec, joined, &change, step, now); err != nil {
			return err
		}
		if err := s.db.FinishReception(tx, recID, via, joined); err != nil {
			return err
		}
		if err := s.db.UpdateDevice(tx, rec.DeviceID, change); err != nil {
			return err
		}
		if stored[se.id] {
			return nil
		}
		return s.db.CreateEvent(tx, se.id, se.doc)
	})
	if err != nil {
		return nil, err
	}
	return se.doc.JSON, nil
}

// resume finishes a handshake whose transaction committed in an attempt
// that then failed (a crash, a timeout): Pub/Sub redelivered it, and the
// reception record holds the response still to send.
func (s *Service) resume(ctx context.Context, recID string, rec store.Reception) error {
	dev, err := s.db.Device(ctx, rec.DeviceID)
	if err != nil {
		return err
	}
	s.log.Info("resuming a handshake after redelivery", "deviceId", rec.DeviceID)
	s.scheduleReply(recID, outcome{rec: rec, links: dev.Links, netStatus: dev.LastNetworkStatus})
	return nil
}

// pendingReply is a handshake's response to judge at the device's next
// uplink, by the session it opens.
func pendingReply(rec store.Reception, via string, now time.Time) *store.PendingReply {
	r, err := radio.ParseResponse(rec.Reply)
	if err != nil {
		return nil // not a response: nothing the device can tell about it
	}
	return &store.PendingReply{Via: via, Session: r.SenderIndex, Sent: now}
}

func toReceptions(hs []store.Hearer) []event.Reception {
	out := make([]event.Reception, len(hs))
	for i, h := range hs {
		out[i] = event.Reception{ConnectorID: h.ConnectorID, RSSI: h.RSSI}
	}
	return out
}
