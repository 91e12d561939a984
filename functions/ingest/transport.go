package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/radio"
	"github.com/sealedsense/sealedsense/shared/registry"
	"github.com/sealedsense/sealedsense/shared/relay"
)

func (s *Service) transport(ctx context.Context, up relay.Uplink) error {
	hdr, err := radio.ParseTransport(up.Packet)
	if err != nil {
		return reject("malformed-packet", err)
	}
	keys, err := s.cloud(ctx)
	if err != nil {
		return err
	}
	fs := s.deps.Firestore
	sessRef := fs.Collection(sessionsCollection).Doc(sessionID(hdr.ReceiverIndex))
	recRef := fs.Collection(receptionsCollection).Doc(transportReceptionID(hdr.ReceiverIndex, hdr.Counter))

	// Authenticate against a recent snapshot of the session, outside any
	// transaction: a forgery is refused before it can claim anything, and
	// a copy learns it is one without touching the session.
	sess, snap, err := s.sessionSnapshot(ctx, keys, hdr.ReceiverIndex)
	if err != nil {
		return err
	}
	pt, _, err := sess.Open(nil, up.Packet, s.deps.Now())
	seen := errors.Is(err, radio.ErrReplay) || errors.Is(err, radio.ErrTooOld)
	if err != nil && !seen {
		return reject(openReason(err), err)
	}
	var ul payload.Uplink
	if !seen {
		// Decode before claiming: an authentic packet that does not decode
		// is a sensor bug, refused without a write. Knowing the readings
		// now lets the transaction read everything it needs at once.
		ul, err = payload.DecodeUplink(pt)
		clear(pt)
		if err != nil {
			return reject("bad-payload", err)
		}
	}
	deviceID := snap.DeviceID
	res, rec, err := s.claim(ctx, recRef, up, !seen)
	if err != nil || res == copyOf || res == done {
		return err
	}
	if res == resume {
		return s.resume(ctx, recRef, rec)
	}
	if seen {
		// The window holds the counter only once a transaction committed
		// it, so there is nothing left to process here.
		return nil
	}
	// Only the owner builds the events: the copies, two of every three
	// envelopes, stop at the claim.
	events, err := s.readingEvents(snap.ProjectID, deviceID, ul.Readings, s.deps.Now())
	if err != nil {
		s.live.take(recRef.ID)
		s.commits.Add(1)
		if _, uerr := recRef.Update(ctx, []firestore.Update{{Path: "committed", Value: true}, {Path: "done", Value: true}}); uerr != nil {
			return uerr
		}
		return reject("bad-payload", err)
	}

	p := &packetWrite{hdr: hdr, up: up, keys: keys, meta: snap, ul: ul, events: events,
		deviceID: deviceID, sessRef: sessRef, recRef: recRef, rec: rec}
	// Only a resent reading (isBackfilled) can have been stored before, so
	// the transaction reads only those readings' events: a packet of new
	// readings costs two document reads, not one per reading. A new
	// reading stored before all the same (a sensor that lost its sequence
	// numbers reuses them) fails the commit with AlreadyExists, and the
	// packet is tried once more, reading every event.
	for checkAll := false; ; checkAll = true {
		s.commits.Add(1)
		err = fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
			return s.storePacket(ctx, tx, p, checkAll)
		})
		if checkAll || !exists(err) {
			break
		}
	}
	out, fresh, reused := p.out, p.fresh, p.reused
	if err != nil || out.reject != nil {
		s.live.take(recRef.ID) // no reply will be sent for it here
	}
	if err != nil {
		return fmt.Errorf("packet %d/%d: %w", hdr.ReceiverIndex, hdr.Counter, err)
	}
	if out.reject != nil {
		return out.reject
	}
	if reused > 0 {
		// The stored event is kept and the new reading under its id is
		// lost: worth an operator's look at the sensor.
		s.log.Warn("readings dropped: their ids were stored before (the sensor reuses sequence numbers)",
			"deviceId", deviceID, "dropped", reused)
	}
	s.packets.Add(1)
	s.readings.Add(uint64(len(fresh)))
	if err := s.publishEvents(ctx, out.rec.ProjectID, out.rec.DeviceID, jsonOf(fresh)); err != nil {
		return err
	}
	s.scheduleReply(recRef, out)
	return nil
}

// packetWrite is one packet's store transaction: what it starts from, and
// what its last attempt leaves for the reply.
type packetWrite struct {
	hdr             radio.Transport
	up              relay.Uplink
	keys            *cloudKeys
	meta            sessionMeta
	ul              payload.Uplink
	events          []storedEvent
	deviceID        string
	sessRef, recRef *firestore.DocumentRef
	rec             reception

	out    outcome
	fresh  []storedEvent // the events this attempt creates
	reused int           // new readings whose ids were stored before
}

// storePacket is one attempt of a packet's transaction: it advances the
// session's replay window, creates the readings' events that are not
// stored yet, updates the device and seals the ACK. checkAll reads every
// reading's event rather than only the resent ones'.
func (s *Service) storePacket(ctx context.Context, tx *firestore.Transaction, p *packetWrite, checkAll bool) error {
	p.out, p.fresh, p.reused = outcome{rec: p.rec}, nil, 0
	fs := s.deps.Firestore
	var sd sessionDoc
	now := s.deps.Now()
	devRef := fs.Collection(registry.DevicesCollection).Doc(p.deviceID)
	refs := []*firestore.DocumentRef{p.sessRef, devRef}
	for _, e := range p.events {
		if e.backfilled || checkAll {
			refs = append(refs, fs.Collection(eventsCollection).Doc(e.id))
		}
	}
	snaps, err := tx.GetAll(refs)
	if err != nil {
		return err
	}
	stored := map[string]bool{}
	for _, ev := range snaps[2:] {
		if ev.Exists() {
			stored[ev.Ref.ID] = true
		}
	}
	if !snaps[0].Exists() {
		p.out.reject = reject("unknown-session", fmt.Errorf("receiver index %d", p.hdr.ReceiverIndex))
		return tx.Update(p.recRef, []firestore.Update{{Path: "committed", Value: true}, {Path: "done", Value: true}})
	}
	if err := snaps[0].DataTo(&sd); err != nil {
		return err
	}
	sess, err := s.openSession(p.keys, p.hdr.ReceiverIndex, sd.Sealed)
	if err != nil {
		return err
	}
	pt, counter, err := sess.Open(nil, p.up.Packet, now)
	defer clear(pt)
	if err != nil {
		p.out.reject = reject(openReason(err), err)
		return tx.Update(p.recRef, []firestore.Update{{Path: "committed", Value: true}, {Path: "done", Value: true}})
	}
	var st deviceState
	if err := snaps[1].DataTo(&st); err != nil {
		return err
	}
	if st.ProjectID != p.meta.ProjectID {
		// Claimed or transferred since the snapshot: store under the
		// project the device belongs to now.
		if p.events, err = s.readingEvents(st.ProjectID, p.deviceID, p.ul.Readings, now); err != nil {
			return err
		}
	}

	// The reply: an ACK of this counter, sealed inside the transaction
	// so that a retried attempt never sends a second plaintext under a
	// counter the committed one used.
	reply, err := payload.Reply{Acks: []uint64{counter}}.Marshal()
	if err != nil {
		return err
	}
	replyPkt, replyCtr, err := sess.Seal(nil, reply, now)
	if err != nil {
		return err
	}
	sealed, err := s.sealSession(p.keys, p.hdr.ReceiverIndex, sess)
	if err != nil {
		return err
	}
	if err := tx.Update(p.sessRef, []firestore.Update{{Path: "sealed", Value: sealed}}); err != nil {
		return err
	}
	ids := make([]string, 0, len(p.events))
	latest := map[string]storedEvent{}
	for _, e := range p.events {
		ids = append(ids, e.id)
		if stored[e.id] {
			if !e.backfilled {
				p.reused++
			}
			continue // a resent reading stored before: exactly once
		}
		if err := tx.Create(fs.Collection(eventsCollection).Doc(e.id), e.doc); err != nil {
			return err
		}
		p.fresh = append(p.fresh, e)
		if prev, ok := latest[e.doc.EventType]; !e.backfilled && (!ok || e.doc.Timestamp.After(prev.doc.Timestamp)) {
			latest[e.doc.EventType] = e
		}
	}
	upd := feedback(st, p.ul.Replies, now)
	for typ, e := range latest {
		upd = append(upd, firestore.Update{FieldPath: firestore.FieldPath{"reported", typ}, Value: e.data})
	}
	if len(upd) > 0 {
		if err := tx.Update(devRef, upd); err != nil {
			return err
		}
	}
	p.out.rec.DeviceID, p.out.rec.ProjectID, p.out.rec.Reply, p.out.rec.EventIDs = sd.DeviceID, st.ProjectID, replyPkt, ids
	p.out.links, p.out.netStatus = st.Links, st.LastNetworkStatus
	return tx.Update(p.recRef, []firestore.Update{
		{Path: "deviceId", Value: sd.DeviceID}, {Path: "projectId", Value: st.ProjectID},
		{Path: "reply", Value: replyPkt}, {Path: "replyCtr", Value: int64(replyCtr)},
		{Path: "eventIds", Value: ids}, {Path: "committed", Value: true},
	})
}

func openReason(err error) string {
	switch {
	case errors.Is(err, radio.ErrReplay), errors.Is(err, radio.ErrTooOld):
		return "replay"
	case errors.Is(err, radio.ErrExpired):
		return "expired-session"
	case errors.Is(err, radio.ErrAuth):
		return "decrypt"
	default:
		return "malformed-packet"
	}
}

// feedbackGrace is how long after a reply was sent an uplink that does not
// mention it counts as proof it was lost. A sensor that spoke again before
// the reply reached it will mention it in the uplink after.
const feedbackGrace = 3 * time.Second

// feedback judges the last reply from what the device says it received:
// acknowledged if listed, lost if not listed long after it went out, and
// otherwise not judged yet.
func feedback(st deviceState, received []uint64, now time.Time) []firestore.Update {
	p := st.Pending
	if p == nil || p.Via == "" {
		return nil
	}
	field := "acked"
	if !slices.Contains(received, uint64(p.Counter)) {
		if now.Sub(p.Sent) < feedbackGrace {
			return nil
		}
		field = "failed"
	}
	return []firestore.Update{
		{FieldPath: firestore.FieldPath{"links", p.Via, field}, Value: firestore.Increment(1)},
		{Path: "pendingReply", Value: firestore.Delete},
	}
}

// storedEvent is an event ready to write and publish.
type storedEvent struct {
	id         string
	doc        eventDoc
	data       map[string]any // the inner data object, for the device's reported state
	backfilled bool
}

func (s *Service) readingEvents(project, deviceID string, readings []payload.Reading, now time.Time) ([]storedEvent, error) {
	out := make([]storedEvent, 0, len(readings))
	for _, r := range readings {
		ev, err := event.FromReading(project, deviceID, r)
		if err != nil {
			return nil, err
		}
		se, err := s.stored(ev, project, deviceID, now)
		if err != nil {
			return nil, err
		}
		se.backfilled = r.Backfilled
		out = append(out, se)
	}
	return out, nil
}

func (s *Service) stored(ev event.Event, project, deviceID string, now time.Time) (storedEvent, error) {
	js, err := json.Marshal(ev)
	if err != nil {
		return storedEvent{}, err
	}
	var data map[string]map[string]any
	if err := json.Unmarshal(ev.Data, &data); err != nil {
		return storedEvent{}, err
	}
	return storedEvent{
		id:   ev.EventID,
		data: data[ev.EventType],
		doc: eventDoc{
			ProjectID: project, DeviceID: deviceID, EventType: ev.EventType,
			Timestamp: ev.Timestamp, JSON: js, ExpireAt: now.Add(s.cfg.Retention),
		},
	}, nil
}

func jsonOf(events []storedEvent) [][]byte {
	out := make([][]byte, len(events))
	for i, e := range events {
		out[i] = e.doc.JSON
	}
	return out
}

// sessionTTL bounds how stale a cached session snapshot may be.
const sessionTTL = 30 * time.Second

// sessionSnapshot returns a private copy of a recent snapshot of a session.
func (s *Service) sessionSnapshot(ctx context.Context, keys *cloudKeys, index uint32) (*radio.Session, sessionMeta, error) {
	now := s.deps.Now()
	s.sessMu.Lock()
	c, ok := s.sessions[index]
	s.sessMu.Unlock()
	if !ok || now.Sub(c.fetched) > sessionTTL {
		snap, err := s.deps.Firestore.Collection(sessionsCollection).Doc(sessionID(index)).Get(ctx)
		if notFound(err) {
			return nil, sessionMeta{}, reject("unknown-session", fmt.Errorf("receiver index %d", index))
		}
		if err != nil {
			return nil, sessionMeta{}, err
		}
		var sd sessionDoc
		if err := snap.DataTo(&sd); err != nil {
			return nil, sessionMeta{}, err
		}
		sess, err := s.openSession(keys, index, sd.Sealed)
		if err != nil {
			return nil, sessionMeta{}, fmt.Errorf("session %d: %w", index, err)
		}
		c = cachedSession{sess: sess, meta: sessionMeta{DeviceID: sd.DeviceID, ProjectID: sd.ProjectID}, fetched: now}
		s.sessMu.Lock()
		if len(s.sessions) > 100000 {
			clear(s.sessions)
		}
		s.sessions[index] = c
		s.sessMu.Unlock()
	}
	cp := *c.sess
	return &cp, c.meta, nil
}
