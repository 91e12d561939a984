package ingest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/radio"
	"github.com/sealedsense/sealedsense/shared/relay"
	"github.com/sealedsense/sealedsense/shared/store"
)

// transport handles one copy of a transport packet: it authenticates it
// against a snapshot of its session and settles it at once, unless it is
// the first copy of a new packet here. That copy owns the packet and is
// returned, to store and answer once the copies worth waiting for are in
// (answerLater); nothing is written before then, so a packet costs one
// transaction, whoever heard it.
func (s *Service) transport(ctx context.Context, up relay.Uplink) (*packetWrite, error) {
	hdr, err := radio.ParseTransport(up.Packet)
	if err != nil {
		return nil, reject("malformed-packet", err)
	}
	keys, err := s.cloud(ctx)
	if err != nil {
		return nil, err
	}
	var a authenticated
	keys, err = s.withKEK(ctx, keys, func(keys *cloudKeys) (err error) {
		a, err = s.authenticate(ctx, keys, hdr.ReceiverIndex, up)
		return err
	})
	if err != nil {
		return nil, err
	}
	recID := packetID(hdr.ReceiverIndex, hdr.Counter)
	if a.seen {
		// The snapshot learns a counter only once its packet committed.
		err := s.claims.afterAnswer(recID, up, hdr.Counter, a.meta.live)
		switch {
		case err == nil:
			s.n.lateCopies.Add(1)
		case errors.Is(err, errAnsweredElsewhere):
			s.n.crossCopies.Add(1)
			return nil, nil
		}
		return nil, err
	}
	if owns, err := s.claims.own(recID, up); !owns {
		return nil, err
	}
	// Only the owner builds the events: the copies, two of every three
	// envelopes, stop at the claim. A bad reading is left out here, alone:
	// the packet's others are stored and the ACK covers it too, so the
	// sensor stops resending it.
	now := s.deps.Now()
	readings, bad := screenReadings(a.ul, a.refused, now)
	a.ul.Readings = readings
	events, err := s.readingEvents(a.meta.ProjectID, a.meta.DeviceID, a.ul.Epoch, readings, now)
	if err != nil {
		s.claims.take(recID)
		return nil, reject("bad-payload", err)
	}
	return &packetWrite{hdr: hdr, up: up, keys: keys, meta: a.meta, sess: a.sess, ul: a.ul, events: events, bad: bad,
		deviceID: a.meta.DeviceID, recID: recID, firstSeen: now}, nil
}

// packetID names a data packet among the live and answered ones by its
// session and counter, which the session's replay window makes unique.
func packetID(index uint32, counter uint64) string {
	return "p-" + store.SessionID(index) + "-" + strconv.FormatUint(counter, 10)
}

// answerTimeout bounds the work of storing and answering one packet.
const answerTimeout = 30 * time.Second

// maxAnswering bounds the packets an instance holds, waiting for their
// copies or a transaction; maxCommitting bounds their transactions in
// flight. Unbounded, a load past what Firestore stores piled up
// transactions that contended until the stored rate fell to a twentieth
// (measured on the emulator at 0.75 of its raw create rate); 32 at once is
// what a push's batch ran before.
const (
	maxAnswering  = 1024
	maxCommitting = 32
)

// answerLater stores and answers an owned packet once its copies are in,
// after the push that brought it was acknowledged. Holding the push
// through the collection window instead would hold one of the
// subscription's pushes, and Pub/Sub delivers only so many at once: the
// emulator's limit, measured, let uplinks queue for seconds at 20
// sensors. Nothing is lost if the instance dies first, or the
// transaction fails: the sensor keeps its readings until an ACK, which
// only a commit sends, and resends them.
func (s *Service) answerLater(p *packetWrite) {
	s.deps.After(p.firstSeen.Add(s.cfg.Window).Sub(s.deps.Now()), func() {
		p.hearers = mergeHearers([]store.Hearer{hearerOf(p.up)}, s.claims.joined(p.recID))
		rank := replyRank(p.hearers, p.meta.links, s.deps.Now())
		s.deps.After(time.Duration(rank)*s.cfg.Window/2, func() { s.answerNow(p, rank > 0) })
	})
}

// answerNow stores and answers p, or, deferred, first learns whether
// another instance has.
func (s *Service) answerNow(p *packetWrite, deferred bool) {
	defer func() { <-s.answering }()
	ctx, cancel := context.WithTimeout(context.Background(), answerTimeout)
	defer cancel()
	err := s.answer(ctx, p, deferred)
	if reason, permanent := classify(err); permanent {
		s.log.Warn("packet rejected", "rejected", reason, "error", err.Error(), "deviceId", p.deviceID)
	} else if err != nil {
		s.log.Error("packet not stored; the sensor will resend it", "error", err.Error(), "deviceId", p.deviceID)
	}
}

// replyRank orders the instances holding copies of one packet, without
// their talking: on Cloud Run each connector's copy reaches whichever
// instance Pub/Sub pushes it to, and each of them would run the packet's
// transaction at the window's end, contending on the device's document.
// The instance holding the copy of the connector with the strongest link
// goes first (rank 0); one whose best copy ranks r waits r half-windows
// more, by when the first has most often answered, and a read tells it
// so. A device without links ranks 0 everywhere: its first packets may
// contend, once.
func replyRank(hearers []store.Hearer, links map[string]store.Link, now time.Time) int {
	order := slices.Collect(maps.Keys(expectedHearers(links, now)))
	slices.SortFunc(order, func(a, b string) int {
		if c := cmp.Compare(links[b].RSSI, links[a].RSSI); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	if len(order) == 0 {
		return 0
	}
	rank := len(order)
	for _, h := range hearers {
		if i := slices.Index(order, h.ConnectorID); i >= 0 {
			rank = min(rank, i)
		}
	}
	return rank
}

// answer stores an owned packet and answers it, once its copies are in:
// one transaction advances the session, stores the events, chooses the
// reply's connector and records what the copies taught about the device;
// the events and the reply go out after it commits.
func (s *Service) answer(ctx context.Context, p *packetWrite, deferred bool) error {
	defer s.claims.take(p.recID)
	if deferred {
		d, err := s.db.Device(ctx, p.deviceID)
		if err != nil {
			return err
		}
		if s.claims.copyOfLast(p.up, p.hdr.Counter, d.Session) {
			s.n.crossCopies.Add(1)
			return nil
		}
	}
	select {
	case s.committing <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	_, err := s.withKEK(ctx, p.keys, func(keys *cloudKeys) error {
		p.keys = keys
		return s.writePacket(ctx, p)
	})
	<-s.committing
	if err != nil {
		return fmt.Errorf("packet %d/%d: %w", p.hdr.ReceiverIndex, p.hdr.Counter, err)
	}
	if errors.Is(p.out.reject, errAnsweredElsewhere) {
		s.n.crossCopies.Add(1)
		return nil
	}
	if p.out.reject != nil {
		return p.out.reject
	}
	s.claims.answered(p.recID, p.up)
	s.sessions.accepted(p.hdr.ReceiverIndex, p.sess, sessionMeta{DeviceID: p.deviceID, ProjectID: p.out.projectID, links: p.out.links})
	return s.packetStored(ctx, p)
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
// and publishes the events, then sends the reply. Events go first: if
// they fail, no reply goes out, the sensor resends the readings, and
// their events, found stored, are published again (subscribers
// deduplicate on eventId). A lost reply loses nothing either way, so
// neither failure is retried.
func (s *Service) packetStored(ctx context.Context, p *packetWrite) error {
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
	events := append(jsonOf(p.fresh), p.republish...)
	for _, e := range []*storedEvent{p.config, p.update, p.netStatus} {
		if e != nil {
			events = append(events, e.doc.JSON)
		}
	}
	events = append(events, jsonOf(p.health.events)...)
	s.logAnomalies(p.deviceID, p.health.changes)
	if err := s.publishEvents(ctx, p.out.projectID, p.deviceID, events); err != nil {
		s.log.Error("publishing events failed; no reply, so the sensor resends and they go out again", "deviceId", p.deviceID, "error", err.Error())
		return nil
	}
	if err := s.sendReply(ctx, p.deviceID, p.out.via, p.out.reply); err != nil {
		s.log.Error("reply failed; the sensor will resend", "error", err.Error(), "deviceId", p.deviceID)
		return nil
	}
	if r := p.out.route; r.passed != "" {
		s.log.Warn("reply route passed over a connector", "reason", r.reason, "connectorId", r.passed, "via", r.via, "deviceId", p.deviceID)
	}
	s.log.Info("reply sent", append([]any{"deviceId", p.deviceID, "via", p.out.via, "heardBy", len(p.out.hearers),
		"hearers", hearerIDs(p.out.hearers)}, s.logCounters()...)...)
	return nil
}

// sendReply signs a sealed reply for connector via and publishes it.
func (s *Service) sendReply(ctx context.Context, deviceID, via string, reply []byte) error {
	keys, err := s.cloud(ctx)
	if err != nil {
		return err
	}
	env, err := relay.SignDownlink(keys.channel, relay.Downlink{ConnectorID: via, Expires: s.deps.Now().Add(s.cfg.DownlinkTTL), Packet: reply, Endorsements: keys.endorsements})
	if err != nil {
		return err
	}
	if _, err := s.deps.Downlinks.Publish(ctx, &pubsub.Message{Data: env, Attributes: map[string]string{"connector": via}}).Get(ctx); err != nil {
		return fmt.Errorf("downlink to %s: %w", deviceID, err)
	}
	return nil
}

func hearerIDs(hs []store.Hearer) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.ConnectorID
	}
	return out
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
