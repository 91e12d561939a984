package ingest

import (
	"context"
	"errors"
	"fmt"

	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/radio"
	"github.com/sealedsense/sealedsense/shared/relay"
	"github.com/sealedsense/sealedsense/shared/store"
)

// transport handles one copy of a transport packet: authenticate it,
// claim it, and, for the copy that owns it, store it and schedule its
// reply.
func (s *Service) transport(ctx context.Context, up relay.Uplink) error {
	hdr, err := radio.ParseTransport(up.Packet)
	if err != nil {
		return reject("malformed-packet", err)
	}
	keys, err := s.cloud(ctx)
	if err != nil {
		return err
	}
	var a authenticated
	keys, err = s.withKEK(ctx, keys, func(keys *cloudKeys) (err error) {
		a, err = s.authenticate(ctx, keys, hdr.ReceiverIndex, up)
		return err
	})
	if err != nil {
		return err
	}
	recID := store.TransportReceptionID(hdr.ReceiverIndex, hdr.Counter)
	res, rec, err := s.claims.claim(ctx, recID, up, !a.seen)
	if err != nil || res == copyOf || res == done {
		return err
	}
	if res == resume {
		return s.resume(ctx, recID, rec)
	}
	if a.seen {
		// The window holds the counter only once a transaction committed
		// it, so there is nothing left to process here.
		return nil
	}
	held := s.claims.hold(recID)
	defer held.release()
	// Only the owner builds the events: the copies, two of every three
	// envelopes, stop at the claim. A bad reading is left out here, alone:
	// the packet's others are stored and the ACK covers it too, so the
	// sensor stops resending it.
	now := s.deps.Now()
	readings, bad := screenReadings(a.ul, a.refused, now)
	a.ul.Readings = readings
	events, err := s.readingEvents(a.meta.ProjectID, a.meta.DeviceID, a.ul.Epoch, readings, now)
	if err != nil {
		return s.closeRefused(ctx, recID, reject("bad-payload", err))
	}
	p := &packetWrite{hdr: hdr, up: up, keys: keys, meta: a.meta, ul: a.ul, events: events, bad: bad,
		deviceID: a.meta.DeviceID, recID: recID, rec: rec}
	_, err = s.withKEK(ctx, keys, func(keys *cloudKeys) error {
		p.keys = keys
		return s.writePacket(ctx, p)
	})
	if err != nil {
		err = fmt.Errorf("packet %d/%d: %w", hdr.ReceiverIndex, hdr.Counter, err)
		if _, permanent := classify(err); permanent {
			return s.closeRefused(ctx, recID, err)
		}
		return err
	}
	if p.out.reject != nil {
		return p.out.reject
	}
	held.keep() // the reply takes it
	s.sessions.accepted(hdr.ReceiverIndex, a.sess, a.meta)
	return s.packetStored(ctx, recID, p)
}

// withKEK runs f with keys and handles a session sealed under a KEK they
// lack. A KEK older than the newest they hold was retired: the session
// can never open again, so it is refused ("retired-kek"), not retried,
// and its sensor, answered no more, handshakes anew
// (sensor.Config.SilentAfter). Any other may be newer than this
// instance's keys: f runs once more with keys loaded since (keyring.go),
// and if they lack it too, or no reload was allowed, the error stays
// transient, for a redelivery to try again (and, for a KEK no one ever
// stored, the dead-letter topic). It returns the keys f last ran with.
func (s *Service) withKEK(ctx context.Context, keys *cloudKeys, f func(*cloudKeys) error) (*cloudKeys, error) {
	err := f(keys)
	var miss *kekMissing
	if !errors.As(err, &miss) {
		return keys, err
	}
	if keys.retiredKEK(miss.id) {
		return keys, reject("retired-kek", err)
	}
	fresh, reloaded, rerr := s.keys.refresh(ctx, keys)
	if rerr != nil {
		return keys, rerr
	}
	if !reloaded {
		return keys, err
	}
	if err = f(fresh); errors.As(err, &miss) && fresh.retiredKEK(miss.id) {
		return fresh, reject("retired-kek", err)
	}
	return fresh, err
}

// retiredKEK reports whether id names a KEK version older than the newest
// k holds: k holds every stored version, so one it lacks was retired.
func (k *cloudKeys) retiredKEK(id string) bool {
	for v := 1; v < k.newestKEK; v++ {
		if (store.CloudKey{Version: v}).KEKID() == id {
			return true
		}
	}
	return false
}

// closeRefused settles a claimed packet that a permanent error refuses:
// its reception is closed, so that its copies and redeliveries stop at the
// claim, and err is returned to be logged and acknowledged.
func (s *Service) closeRefused(ctx context.Context, recID string, err error) error {
	s.n.commits.Add(1)
	if cerr := s.db.CloseReception(ctx, recID); cerr != nil {
		return cerr
	}
	return err
}

// authenticated is a transport packet checked against a recent snapshot
// of its session.
type authenticated struct {
	meta    sessionMeta
	sess    *radio.Session // the snapshot's private copy, its window advanced by this packet
	ul      payload.Uplink
	refused []payload.Refusal // readings that do not decode or validate
	seen    bool              // the snapshot's window holds the counter already: a copy or a replay
}

// authenticate opens a packet against a recent snapshot of its session,
// outside any transaction: a forgery is refused before it can claim
// anything, and a copy learns it is one without touching the session.
func (s *Service) authenticate(ctx context.Context, keys *cloudKeys, index uint32, up relay.Uplink) (authenticated, error) {
	sess, meta, err := s.sessions.snapshot(ctx, keys.envelope, index, s.limits, up.ConnectorID)
	if err != nil {
		return authenticated{}, err
	}
	pt, _, err := sess.Open(nil, up.Packet, s.deps.Now())
	a := authenticated{meta: meta, sess: sess, seen: errors.Is(err, radio.ErrReplay) || errors.Is(err, radio.ErrTooOld)}
	if a.seen {
		return a, nil
	}
	if err != nil {
		return authenticated{}, reject(openReason(err), err)
	}
	// Decode before claiming: an authentic packet that does not decode is
	// a sensor bug, refused without a write. Knowing the readings now lets
	// the transaction read everything it needs at once.
	a.ul, a.refused, err = payload.DecodeUplink(pt)
	clear(pt)
	if err != nil {
		return authenticated{}, reject("bad-payload", err)
	}
	return a, nil
}

// packetStored finishes a packet whose transaction committed: it counts
// and publishes the events and schedules the reply.
func (s *Service) packetStored(ctx context.Context, recID string, p *packetWrite) error {
	if p.reused > 0 {
		// The stored event is kept and the new reading under its id is
		// lost: worth an operator's look at the sensor.
		s.log.Warn("readings dropped: their ids were stored before (the sensor reuses sequence numbers)",
			"deviceId", p.deviceID, "dropped", p.reused)
	}
	for _, b := range p.bad {
		// Counted (log-based metric on `rejected`); the value is never
		// logged, only which reading and why.
		s.log.Warn("reading refused", "rejected", "bad-reading", "reason", b.reason,
			"deviceId", p.deviceID, "seq", b.seq, "error", b.err.Error())
	}
	s.n.packets.Add(1)
	s.n.readings.Add(uint64(len(p.fresh)))
	s.n.badReadings.Add(uint64(len(p.bad)))
	events := jsonOf(p.fresh)
	if p.config != nil {
		events = append(events, p.config.doc.JSON)
	}
	if p.update != nil {
		events = append(events, p.update.doc.JSON)
	}
	events = append(events, jsonOf(p.health.events)...)
	s.logAnomalies(p.deviceID, p.health.changes)
	if err := s.publishEvents(ctx, p.out.rec.ProjectID, p.out.rec.DeviceID, events); err != nil {
		return err
	}
	s.scheduleReply(recID, p.out)
	return nil
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
