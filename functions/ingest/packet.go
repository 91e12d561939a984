package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/radio"
	"github.com/sealedsense/sealedsense/shared/registry"
	"github.com/sealedsense/sealedsense/shared/relay"
	"github.com/sealedsense/sealedsense/shared/store"
)

// packetWrite is one packet's store transaction: what it starts from, and
// what its last attempt leaves for the reply.
type packetWrite struct {
	hdr       radio.Transport
	up        relay.Uplink // the owner's copy
	keys      *cloudKeys
	meta      sessionMeta
	sess      *radio.Session // the snapshot's copy, its window advanced by this packet
	ul        payload.Uplink
	events    []storedEvent
	bad       []badReading // readings refused alone, acknowledged with the packet
	deviceID  string
	recID     string
	firstSeen time.Time // when the owner's copy arrived here
	hearers   []store.Hearer

	out       packetOutcome
	fresh     []storedEvent // the events this attempt creates
	republish [][]byte      // resent readings' events, stored before
	reused    int           // new readings whose ids were stored before
	config    *storedEvent  // this attempt's configurationStatus event
	update    *storedEvent  // this attempt's softwareUpdateStatus event
	netStatus *storedEvent  // this attempt's networkStatus event
	health    healthStep    // this attempt's fleet-health change
}

// packetOutcome is what a packet's transaction decided, for the steps
// after it.
type packetOutcome struct {
	reject    error // a rejection, already wrapped
	projectID string
	reply     []byte // sealed
	via       string // the connector chosen to carry it
	hearers   []store.Hearer
	links     map[string]store.Link
	route     route // logged once the transaction commits, not per attempt
}

// writePacket runs a packet's transaction. Only a resent reading
// (isBackfilled) can have been stored before, so the transaction reads
// only those readings' events: a packet of new readings costs two
// document reads, not one per reading. A new reading stored before all
// the same (a sensor that lost its sequence numbers reuses them) fails the
// commit with AlreadyExists, and the packet is tried once more, reading
// every event.
func (s *Service) writePacket(ctx context.Context, p *packetWrite) error {
	for checkAll := false; ; checkAll = true {
		s.n.commits.Add(1)
		err := s.db.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
			return s.storePacket(ctx, tx, p, checkAll)
		})
		if checkAll || !store.IsExists(err) {
			return err
		}
	}
}

// lookups are the events the transaction reads to learn which are
// stored: the resent readings', or with checkAll every reading's.
func (p *packetWrite) lookups(checkAll bool) []string {
	var ids []string
	for _, e := range p.events {
		if e.backfilled || checkAll {
			ids = append(ids, e.id)
		}
	}
	return ids
}

// storePacket is one attempt of a packet's transaction: it advances the
// session's replay window, creates the readings' events that are not
// stored yet, chooses the reply's connector, updates the device and seals
// the ACK. checkAll reads every reading's event rather than only the
// resent ones'.
func (s *Service) storePacket(ctx context.Context, tx *firestore.Transaction, p *packetWrite, checkAll bool) error {
	p.out, p.fresh, p.republish, p.reused, p.config, p.update, p.netStatus, p.health = packetOutcome{}, nil, nil, 0, nil, nil, nil, healthStep{}
	now := s.deps.Now()
	index := p.hdr.ReceiverIndex
	st, err := s.db.PacketState(tx, index, p.deviceID, p.lookups(checkAll))
	if err != nil {
		return err
	}
	sess, counter, first, err := s.openLive(p, st, now)
	if rej := (*rejection)(nil); errors.As(err, &rej) || errors.Is(err, errAnsweredElsewhere) {
		p.out.reject = err
		return nil // a refusal writes nothing
	}
	if err != nil {
		return err
	}
	// The device's type is known only here, as read: a reading of a kind
	// it does not measure is refused alone. A retry of the transaction
	// finds them gone and refuses nothing twice.
	kept, foreign := ofDeviceType(p.ul.Readings, st.Device.Type)
	p.ul.Readings, p.bad = kept, append(p.bad, foreign...)
	if st.Device.ProjectID != p.meta.ProjectID || len(foreign) > 0 {
		// Claimed or transferred since the snapshot (store under the
		// project the device belongs to now), or readings refused.
		if p.events, err = s.readingEvents(st.Device.ProjectID, p.deviceID, p.ul.Epoch, p.ul.Readings, now); err != nil {
			return err
		}
	}
	cfg := planConfig(st.Device.Configuration, p.ul.Config, now)
	offer := withConfig(keyOffer(p.keys.statics, st.Device.StaticKeyVersion()), cfg.send)
	sw := planSoftware(st.Device.Software, p.ul.Update, now)
	update := s.softwareOffer(ctx, p.deviceID, sw.offer)
	reply, replyCtr, err := sealAck(sess, counter, payload.Reply{Config: offer, Update: update}, now)
	if err != nil {
		return err
	}
	// The session, its window now holding counter, is stored with the
	// device, in the same write.
	sealed, err := sealSession(p.keys.envelope, index, st.Session.DeviceID, sess)
	if err != nil {
		return err
	}
	live := &store.LiveSession{Index: int64(index), Sealed: sealed, Created: st.Session.Created,
		Last: &store.AcceptedPacket{Counter: int64(counter), Hash: store.PacketHash(p.up.Packet), FirstReceived: p.up.Received}}
	if first {
		if err := s.db.MoveSession(tx, index); err != nil {
			return err
		}
	}
	w := planEvents(p.events, st.Stored)
	for _, e := range w.fresh {
		if err := s.db.CreateEvent(tx, e.id, e.doc); err != nil {
			return err
		}
	}
	p.fresh, p.republish, p.reused = w.fresh, w.republish, w.reused
	if err := s.storeConfigEvent(tx, p, st.Device, cfg, &w, now); err != nil {
		return err
	}
	if err := s.storeSoftwareEvent(tx, p, st.Device, sw, &w, now); err != nil {
		return err
	}
	p.out.projectID, p.out.reply, p.out.links = st.Device.ProjectID, reply, st.Device.Links
	p.out.hearers = mergeHearers(p.hearers, s.claims.joined(p.recID))
	return s.updateDevice(tx, p, st.Device, w.reported, cfg.change, sw.change, live, int64(replyCtr), now)
}

// openLive opens the packet against its session's live state, as the
// transaction read it, and returns the session advanced by it, the
// packet's counter and whether the state was still the handshake's. A
// counter the window holds already was accepted since the snapshot: a
// copy another instance answered, or a replay.
func (s *Service) openLive(p *packetWrite, st store.PacketState, now time.Time) (*radio.Session, uint64, bool, error) {
	index := p.hdr.ReceiverIndex
	if st.Session == nil {
		return nil, 0, false, reject("unknown-session", fmt.Errorf("receiver index %d", index))
	}
	sealed, first, err := liveState(index, *st.Session, st.Device)
	if err != nil {
		return nil, 0, false, err
	}
	sess, err := openSession(p.keys.envelope, index, st.Session.DeviceID, sealed, s.cfg.Limits)
	if err != nil {
		return nil, 0, false, err
	}
	pt, counter, err := sess.Open(nil, p.up.Packet, now)
	clear(pt) // the transaction uses the readings authenticate decoded
	if err != nil && s.claims.copyOfLast(p.up, p.hdr.Counter, st.Device.Session) {
		return nil, 0, false, errAnsweredElsewhere
	}
	if err != nil {
		return nil, 0, false, reject(openReason(err), fmt.Errorf("%w (accepted since the snapshot, and not the session's last packet: a replay)", err))
	}
	return sess, counter, first, nil
}

// updateDevice writes what the packet taught about its device, in one
// update: its session, the reported state, the configuration step, the
// fleet-health state (with the events of anomalies it opened or cleared),
// the verdict
// on the last reply, the reply chosen now and the links of the
// connectors that heard the packet. Every NetworkStatusEvery it also
// stores the device's networkStatus event.
func (s *Service) updateDevice(tx *firestore.Transaction, p *packetWrite, d store.Device, reported map[string]any, cfg *store.ConfigChange,
	sw *store.SoftwareChange, live *store.LiveSession, replyCtr int64, now time.Time) error {
	var err error
	if p.health, err = s.packetHealth(d, p.deviceID, p.ul, p.out.hearers, now); err != nil {
		return err
	}
	if err := p.health.storeEvents(tx, s.db); err != nil {
		return err
	}
	change := store.DeviceChange{Reported: reported, Config: cfg, Health: p.health.change, Software: sw, Session: live,
		SoftwareVerdict: d.Software != nil && d.Software.RolloutID != "" && d.Software.Status == store.SoftwareInstalled}
	var avoid string
	v, judged := feedback(d.Pending, heardBack{session: p.hdr.ReceiverIndex, received: p.ul.Replies}, now)
	if judged {
		change.Verdict, avoid = &v, lostVia(v)
	}
	r := chooseConnector(p.out.hearers, d.Links, avoid)
	p.out.via, p.out.route = r.via, r
	change.RepliedVia, change.Seen = r.via, boundedSightings(sightings(p.out.hearers, d.Links))
	if judged || d.Pending == nil {
		// One not judged yet stays pending rather than being replaced by
		// this packet's reply, or a sensor speaking more often than the
		// grace would never have a lost reply judged.
		change.Pending = &store.PendingReply{Via: r.via, Counter: replyCtr, Sent: now}
	}
	if err := s.storeNetworkStatus(tx, p, d, &change, now); err != nil {
		return err
	}
	return s.db.UpdateDevice(tx, p.deviceID, change)
}

// storeNetworkStatus creates the device's networkStatus event, from the
// packet's hearers, if the last is NetworkStatusEvery old.
func (s *Service) storeNetworkStatus(tx *firestore.Transaction, p *packetWrite, d store.Device, change *store.DeviceChange, now time.Time) error {
	if d.ProjectID == "" || now.Sub(d.LastNetworkStatus) < s.cfg.NetworkStatusEvery {
		return nil
	}
	ns, err := event.NetworkStatusFor(d.ProjectID, p.deviceID, p.firstSeen, toReceptions(p.out.hearers))
	if err != nil {
		return fmt.Errorf("networkStatus of %s: %w", p.deviceID, err)
	}
	se, err := s.stored(ns, d.ProjectID, p.deviceID, now)
	if err != nil {
		return err
	}
	if err := s.db.CreateEvent(tx, se.id, se.doc); err != nil {
		return err
	}
	change.NetworkStatusAt = now
	if change.Reported == nil {
		change.Reported = map[string]any{}
	}
	change.Reported["networkStatus"] = se.data
	p.netStatus = &se
	return nil
}

// keyOffer is the configuration a data reply carries to a device whose
// last handshake was under version handshookUnder of the cloud's static
// key: the newest public key, if that version is older. The sensor keeps
// its old key until a handshake under the new one works, and that
// handshake records the new version, which ends the offer.
func keyOffer(statics []registry.StaticKey, handshookUnder int) *payload.Config {
	if len(statics) == 0 || handshookUnder == 0 || handshookUnder >= statics[0].Version {
		return nil
	}
	return &payload.Config{CloudKey: bytes.Clone(statics[0].Public[:])}
}

// storeConfigEvent creates the configurationStatus event of the
// packet's configuration transition, if any, among the packet's events.
func (s *Service) storeConfigEvent(tx *firestore.Transaction, p *packetWrite, d store.Device, cfg configStep, w *eventWrites, now time.Time) error {
	if cfg.transition == "" {
		return nil
	}
	ev, err := s.configEvent(d.ProjectID, p.deviceID, cfg.transition, d.Configuration.DesiredVersion, cfg.reason, now)
	if err != nil || ev == nil {
		return err
	}
	if err := s.db.CreateEvent(tx, ev.id, ev.doc); err != nil {
		return err
	}
	p.config = ev
	return nil
}

// withConfig is a reply's configuration: the key offer and the device's
// pending settings, either or both; nil when it carries neither.
func withConfig(offer, settings *payload.Config) *payload.Config {
	if settings == nil {
		return offer
	}
	if offer != nil {
		settings.CloudKey = offer.CloudKey
	}
	return settings
}

// sealAck seals the reply, an ACK of counter with what extra carries (a
// configuration, a piece of a release), advancing sess. It runs inside
// the transaction, which stores sess, so that a retried attempt never
// sends a second plaintext under a counter the committed one used.
func sealAck(sess *radio.Session, counter uint64, extra payload.Reply, now time.Time) ([]byte, uint64, error) {
	extra.Acks = []uint64{counter}
	reply, err := extra.Marshal()
	if err != nil {
		return nil, 0, err
	}
	return sess.Seal(nil, reply, now)
}

// eventWrites is what a packet's transaction does with its events.
type eventWrites struct {
	fresh     []storedEvent  // the events to create
	republish [][]byte       // resent readings' events stored before, to publish again
	reused    int            // new readings whose ids were stored before
	reported  map[string]any // per event type, the newest new reading's data
}

// planEvents decides, from which events are stored, which to create: a
// resent reading stored before is stored exactly once, and a new reading
// whose id was stored before (reused sequence numbers) is dropped.
// Backfilled readings are old, so they never become the reported state.
func planEvents(events []storedEvent, stored map[string][]byte) eventWrites {
	w := eventWrites{reported: map[string]any{}}
	latest := map[string]storedEvent{}
	for _, e := range events {
		if js, ok := stored[e.id]; ok {
			if e.backfilled {
				w.republish = append(w.republish, js)
			} else {
				w.reused++
			}
			continue
		}
		w.fresh = append(w.fresh, e)
		if prev, ok := latest[e.doc.EventType]; !e.backfilled && (!ok || e.doc.Timestamp.After(prev.doc.Timestamp)) {
			latest[e.doc.EventType] = e
		}
	}
	for typ, e := range latest {
		w.reported[typ] = e.data
	}
	return w
}
