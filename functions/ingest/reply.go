package ingest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"

	"github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/registry"
	"github.com/sealedsense/sealedsense/shared/relay"
)

// replyTimeout bounds the work of sending one reply.
const replyTimeout = 10 * time.Second

// scheduleReply sends a packet's reply once its collection window has
// closed. The events are already stored and published when this is called,
// so losing the reply (the instance dies first) loses no data: the sensor
// resends the readings, and their events are not stored twice.
func (s *Service) scheduleReply(recRef *firestore.DocumentRef, out outcome) {
	s.deps.After(out.rec.FirstSeen.Add(s.cfg.Window).Sub(s.deps.Now()), func() {
		ctx, cancel := context.WithTimeout(context.Background(), replyTimeout)
		defer cancel()
		again, err := s.finish(ctx, recRef, out)
		if err != nil {
			s.log.Error("reply failed; the sensor will resend", "error", err.Error(), "deviceId", out.rec.DeviceID)
		}
		if again > 0 {
			out.polls++
			s.deps.After(again, func() { s.scheduleReply(recRef, out) })
		}
	})
}

// pollStore is how often, in polls, a reply waiting for copies reads the
// reception record rather than only this instance's memory.
const pollStore = 4

// missing reports whether a connector whose copy is worth waiting for has
// not been heard yet.
func (s *Service) missing(ctx context.Context, out outcome, heard []hearer) bool {
	want := expectedHearers(out.links, s.deps.Now())
	if len(out.links) == 0 {
		// A device heard for the first time (its first handshake): any
		// online connector may be its best, so wait for them all, within
		// MaxWindow. It happens once per device.
		want = s.onlineConnectors(ctx)
	}
	for _, h := range heard {
		delete(want, h.ConnectorID)
	}
	return len(want) > 0
}

// expectedHearers are the connectors that heard a device within the last
// few minutes: the copies worth waiting a little longer for.
func expectedHearers(links map[string]link, now time.Time) map[string]bool {
	out := map[string]bool{}
	for id, l := range links {
		if now.Sub(l.LastSeen) < 10*time.Minute {
			out[id] = true
		}
	}
	return out
}

// finish picks one connector among those that heard the packet, sends the
// reply through it, and records the choice so the next uplink can say
// whether the reply arrived.
//
// The collection window adapts: when a connector that has been hearing
// this device has not delivered its copy yet, typically because Pub/Sub is
// delivering a backlog, finish asks to run again shortly (the returned
// delay), up to MaxWindow after the first copy.
func (s *Service) finish(ctx context.Context, recRef *firestore.DocumentRef, out outcome) (time.Duration, error) {
	deadline := s.deps.Now().Sub(out.rec.FirstSeen) >= s.cfg.MaxWindow
	if out.polls%pollStore != 0 && !deadline {
		// Copies that reach this instance join in memory, so most waits
		// are settled without a read; the record, which copies handled by
		// other instances add to, is read every few polls and at the end.
		heard := mergeHearers(out.rec.Hearers, s.live.peek(recRef.ID))
		if s.missing(ctx, out, heard) {
			return s.cfg.Window / 4, nil
		}
	}
	snap, err := recRef.Get(ctx)
	if err != nil {
		return 0, err
	}
	var rec reception
	if err := snap.DataTo(&rec); err != nil {
		return 0, err
	}
	if rec.Done {
		s.live.take(recRef.ID)
		return 0, nil
	}
	rec.Hearers = mergeHearers(rec.Hearers, s.live.peek(recRef.ID))
	if !deadline && s.missing(ctx, out, rec.Hearers) {
		return s.cfg.Window / 4, nil
	}
	joined := s.live.take(recRef.ID)
	rec.Hearers = mergeHearers(rec.Hearers, joined)
	via := chooseConnector(rec.Hearers, out.links)
	keys, err := s.cloud(ctx)
	if err != nil {
		return 0, err
	}
	env, err := relay.SignDownlink(keys.channel, relay.Downlink{ConnectorID: via, Expires: s.deps.Now().Add(s.cfg.DownlinkTTL), Packet: rec.Reply})
	if err != nil {
		return 0, err
	}
	if _, err := s.deps.Downlinks.Publish(ctx, &pubsub.Message{Data: env, Attributes: map[string]string{"connector": via}}).Get(ctx); err != nil {
		return 0, fmt.Errorf("downlink: %w", err)
	}

	now := s.deps.Now()
	fs := s.deps.Firestore
	devRef := fs.Collection(registry.DevicesCollection).Doc(rec.DeviceID)
	devUpd := []firestore.Update{{FieldPath: firestore.FieldPath{"links", via, "replies"}, Value: firestore.Increment(1)}}
	if len(rec.EventIDs) > 0 {
		// Only transport replies can be judged: the sensor reports the
		// counters of those it received in its next uplink.
		devUpd = append(devUpd, firestore.Update{Path: "pendingReply", Value: pendingReply{Via: via, Counter: rec.ReplyCtr, Sent: s.deps.Now()}})
	}
	for _, h := range rec.Hearers {
		prev := out.links[h.ConnectorID]
		rssi := h.RSSI
		if !prev.LastSeen.IsZero() {
			rssi = 0.7*prev.RSSI + 0.3*h.RSSI // smooths fading, keeps up with a moved sensor
		}
		devUpd = append(devUpd,
			firestore.Update{FieldPath: firestore.FieldPath{"links", h.ConnectorID, "rssi"}, Value: rssi},
			firestore.Update{FieldPath: firestore.FieldPath{"links", h.ConnectorID, "lastSeen"}, Value: h.Received})
	}
	var netEvent []byte
	if rec.ProjectID != "" && now.Sub(out.netStatus) >= s.cfg.NetworkStatusEvery {
		netEvent, err = s.networkStatus(ctx, recRef, rec, receptionDone(via, joined), devUpd, now)
		if err != nil {
			return 0, err
		}
	} else {
		s.commits.Add(1)
		err = fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
			if err := tx.Update(recRef, receptionDone(via, joined)); err != nil {
				return err
			}
			return tx.Update(devRef, devUpd)
		})
		if err != nil {
			return 0, err
		}
	}
	if netEvent != nil {
		if err := s.publishEvents(ctx, rec.ProjectID, rec.DeviceID, [][]byte{netEvent}); err != nil {
			return 0, err
		}
	}
	s.log.Info("reply sent", "deviceId", rec.DeviceID, "via", via, "heardBy", len(rec.Hearers),
		"commits", s.commits.Load(), "uniquePackets", s.packets.Load(), "storedReadings", s.readings.Load())
	return 0, nil
}

// networkStatus writes the device's networkStatus event together with the
// reply bookkeeping, in one commit.
func (s *Service) networkStatus(ctx context.Context, recRef *firestore.DocumentRef, rec reception, recUpd, devUpd []firestore.Update, now time.Time) ([]byte, error) {
	ns := event.NetworkStatusFor(rec.ProjectID, rec.DeviceID, rec.FirstSeen, toReceptions(rec.Hearers))
	se, err := s.stored(ns, rec.ProjectID, rec.DeviceID, now)
	if err != nil {
		return nil, err
	}
	fs := s.deps.Firestore
	evRef := fs.Collection(eventsCollection).Doc(se.id)
	devRef := fs.Collection(registry.DevicesCollection).Doc(rec.DeviceID)
	devUpd = append(devUpd,
		firestore.Update{Path: "lastNetworkStatus", Value: now},
		firestore.Update{FieldPath: firestore.FieldPath{"reported", "networkStatus"}, Value: se.data})
	s.commits.Add(1)
	err = fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snap, err := tx.Get(evRef)
		if err != nil && !notFound(err) {
			return err
		}
		if err := tx.Update(recRef, recUpd); err != nil {
			return err
		}
		if err := tx.Update(devRef, devUpd); err != nil {
			return err
		}
		if snap != nil && snap.Exists() {
			return nil
		}
		return tx.Create(evRef, se.doc)
	})
	if err != nil {
		return nil, err
	}
	return se.doc.JSON, nil
}

// resume finishes a packet whose transaction committed in an attempt that
// then failed (a crash, a timeout): Pub/Sub redelivered it, the replay
// window now refuses it, and the reception record says what is left to do.
func (s *Service) resume(ctx context.Context, recRef *firestore.DocumentRef, rec reception) error {
	var payloads [][]byte
	for _, id := range rec.EventIDs {
		snap, err := s.deps.Firestore.Collection(eventsCollection).Doc(id).Get(ctx)
		if err != nil {
			return err
		}
		var d eventDoc
		if err := snap.DataTo(&d); err != nil {
			return err
		}
		payloads = append(payloads, d.JSON)
	}
	// Subscribers deduplicate on eventId, so publishing again is safe.
	if err := s.publishEvents(ctx, rec.ProjectID, rec.DeviceID, payloads); err != nil {
		return err
	}
	devSnap, err := s.deps.Firestore.Collection(registry.DevicesCollection).Doc(rec.DeviceID).Get(ctx)
	if err != nil {
		return err
	}
	var st deviceState
	if err := devSnap.DataTo(&st); err != nil {
		return err
	}
	s.log.Info("resuming a packet after redelivery", "deviceId", rec.DeviceID)
	s.scheduleReply(recRef, outcome{rec: rec, links: st.Links, netStatus: st.LastNetworkStatus})
	return nil
}

func (s *Service) publishEvents(ctx context.Context, project, deviceID string, events [][]byte) error {
	if project == "" {
		return nil // an unclaimed device's events belong to no customer yet
	}
	// A packet's events go out as one message: every subscriber of the
	// topic is a push, and one request per packet rather than per reading
	// keeps their work, and the Pub/Sub emulator's, per packet.
	var results []*pubsub.PublishResult
	for chunk := range slices.Chunk(events, event.MaxPerMessage) {
		data, err := event.EncodeMessage(chunk)
		if err != nil {
			return err
		}
		results = append(results, s.deps.Events.Publish(ctx, &pubsub.Message{Data: data, Attributes: map[string]string{"projectId": project, "deviceId": deviceID}}))
	}
	for _, r := range results {
		if _, err := r.Get(ctx); err != nil {
			return fmt.Errorf("publish event: %w", err)
		}
	}
	return nil
}

// chooseConnector ranks the connectors that heard a packet. The base score
// is The Things Stack's adjusted RSSI (RSSI plus SNR when SNR is negative,
// since below the noise floor SNR is what limits decoding), smoothed with the
// recent RSSI through that connector, minus a penalty that grows as replies
// through it go unacknowledged. Neither LoRaWAN server learns from failed
// replies; this does.
func chooseConnector(hearers []hearer, links map[string]link) string {
	type cand struct {
		id    string
		score float64
	}
	cands := make([]cand, 0, len(hearers))
	for _, h := range hearers {
		score := h.RSSI + min(h.SNR, 0)
		l := links[h.ConnectorID]
		if !l.LastSeen.IsZero() {
			score = 0.7*score + 0.3*l.RSSI
		}
		// Laplace-smoothed delivery rate: a connector without history
		// starts at 1/2, neither trusted nor written off.
		rate := float64(l.Acked+1) / float64(l.Acked+l.Failed+2)
		score -= 30 * (1 - rate)
		cands = append(cands, cand{h.ConnectorID, score})
	}
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].score != cands[j].score {
			return cands[i].score > cands[j].score
		}
		return cands[i].id < cands[j].id
	})
	return cands[0].id
}

func toReceptions(hs []hearer) []event.Reception {
	out := make([]event.Reception, len(hs))
	for i, h := range hs {
		out[i] = event.Reception{ConnectorID: h.ConnectorID, RSSI: h.RSSI}
	}
	return out
}

// onlineConnectors lists connectors whose heartbeats are current, cached
// briefly: it only shapes how long a first reply waits.
func (s *Service) onlineConnectors(ctx context.Context) map[string]bool {
	now := s.deps.Now()
	s.connMu.Lock()
	if now.Sub(s.onlineAt) < s.cfg.ConnectorCacheTTL {
		out := maps.Clone(s.online)
		s.connMu.Unlock()
		return out
	}
	s.connMu.Unlock()
	docs, err := s.deps.Firestore.Collection(registry.ConnectorsCollection).Where("online", "==", true).Documents(ctx).GetAll()
	if err != nil {
		return map[string]bool{} // not worth failing a reply over
	}
	online := make(map[string]bool, len(docs))
	for _, d := range docs {
		online[d.Ref.ID] = true
	}
	if len(online) > 0 {
		// An empty answer is not cached: at start-up the first heartbeats
		// are seconds away.
		s.connMu.Lock()
		s.online, s.onlineAt = online, now
		s.connMu.Unlock()
	}
	return online
}

// mergeHearers adds the copies that joined in memory to those recorded in
// Firestore, once each.
func mergeHearers(stored, joined []hearer) []hearer {
	out := stored
	for _, j := range joined {
		dup := false
		for _, h := range out {
			if h.ConnectorID == j.ConnectorID {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, j)
		}
	}
	return out
}

// receptionDone records the reply's connector, and the copies that joined
// in memory, so the reception record tells the whole story.
func receptionDone(via string, joined []hearer) []firestore.Update {
	upd := []firestore.Update{{Path: "via", Value: via}, {Path: "done", Value: true}}
	if len(joined) > 0 {
		vals := make([]any, len(joined))
		for i, h := range joined {
			vals[i] = h
		}
		upd = append(upd, firestore.Update{Path: "hearers", Value: firestore.ArrayUnion(vals...)})
	}
	return upd
}
