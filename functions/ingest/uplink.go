package ingest

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/radio"
	"github.com/sealedsense/sealedsense/shared/registry"
	"github.com/sealedsense/sealedsense/shared/relay"
	"github.com/sealedsense/sealedsense/shared/store"
)

// handleUplink handles one connector's copy of a packet, carried in a
// message Pub/Sub published at published. The first copy of a data
// packet is returned, to answer once its copies are in.
func (s *Service) handleUplink(ctx context.Context, data []byte, published time.Time) (*packetWrite, error) {
	up, err := relay.OpenUplink(ctx, data, s.connectors.key)
	if err != nil {
		return nil, envelopeErr(err)
	}
	// Before anything is claimed or joined: what the connector says about
	// its reception is only its claim.
	if err := checkMetadata(up, published); err != nil {
		return nil, reject("bad-metadata", err)
	}
	typ, err := radio.Type(up.Packet)
	if err != nil {
		return nil, reject("malformed-packet", err)
	}
	switch typ {
	case radio.TypeInitiation:
		return nil, s.handshake(ctx, up)
	case radio.TypeTransport:
		return s.transport(ctx, up)
	default:
		return nil, reject("unexpected-packet-type", fmt.Errorf("type %d on the uplink", typ))
	}
}

// outcome is what a handshake's transaction decided, for its reply.
type outcome struct {
	reject    error // a rejection, already wrapped
	rec       store.Reception
	links     map[string]store.Link
	netStatus time.Time
	// avoid is the connector the device's last reply was lost on, if its
	// uplink told: this reply goes another way.
	avoid string
	// keepPending: the device's pending reply is not judged yet, so this
	// reply does not replace it.
	keepPending bool
	// polls counts the reply's waits for expected copies; every
	// pollStore-th one, and the last, reads the reception record.
	polls int
}

// handshake handles one copy of a handshake's first message: claim it,
// and, for the copy that owns it, open a session and schedule the answer.
//
// The order keeps a bad message 1 cheap. The connector's handshake limit
// comes before any X25519 work. The sensor's key is looked up before the
// claim, so that a message 1 from a key no sensor has (anyone with the
// cloud's public key can make one) leaves nothing stored; for a known
// sensor the lookup is cached, so its copies still claim at once and land
// inside the collection window. The device's last handshake time is
// checked before the PSK is unwrapped, so a replayed message 1 costs no
// KMS call; the check inside the transaction is the one that decides.
func (s *Service) handshake(ctx context.Context, up relay.Uplink) error {
	if err := s.limits.handshake(up.ConnectorID); err != nil {
		return err
	}
	keys, err := s.cloud(ctx)
	if err != nil {
		return err
	}
	keys, hs, version, err := s.readInitiation(ctx, keys, up.Packet)
	if err != nil {
		return err
	}
	deviceID, err := s.sensorKeys.device(ctx, hs.PeerStatic(), s.limits, up.ConnectorID)
	if err != nil {
		return err
	}
	if err := s.admission.beforeClaim(deviceID, up.ConnectorID); err != nil {
		return err
	}
	recID := store.HandshakeReceptionID(up.Packet)
	res, rec, err := s.claims.claim(ctx, recID, up, true)
	if err != nil || res == copyOf || res == done {
		return err
	}
	if res == resume {
		return s.resume(ctx, recID, rec)
	}
	held := s.claims.hold(recID)
	defer held.release()
	h, err := s.prepareHandshake(ctx, up, keys, hs, version, deviceID, recID, rec)
	if err != nil {
		return err
	}
	s.n.commits.Add(1)
	err = s.db.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		return s.storeHandshake(tx, h)
	})
	if err != nil {
		return fmt.Errorf("handshake of %s: %w", deviceID, err)
	}
	if h.out.reject != nil {
		return h.out.reject
	}
	s.sessions.created(h.index)
	s.log.Info("handshake accepted", "deviceId", deviceID, "connectorId", up.ConnectorID, "cloudKeyVersion", version)
	s.logAnomalies(deviceID, h.health.changes)
	if err := s.publishEvents(ctx, h.out.rec.ProjectID, deviceID, jsonOf(h.health.events)); err != nil {
		// Stored with the handshake, which a redelivery would refuse as
		// a replay: history has them, the push subscribers miss them.
		s.log.Error("publishing deviceAnomaly events failed", "deviceId", deviceID, "error", err)
	}
	held.keep() // the reply takes it
	s.scheduleReply(recID, h.out)
	return nil
}

// readInitiation reads message 1 under each version of the cloud's static
// key, newest first, and returns the keys that opened it with the version
// that did. One that opens under none may be under a version added since
// the keys were loaded: the keys are reloaded (at most every minReload,
// keyring.go) and tried once more before it is refused.
func (s *Service) readInitiation(ctx context.Context, keys *cloudKeys, pkt []byte) (*cloudKeys, *radio.ResponderHandshake, int, error) {
	hs, v, err := openInitiation(keys.statics, pkt, 0)
	if errors.Is(err, radio.ErrAuth) {
		fresh, reloaded, rerr := s.keys.refresh(ctx, keys)
		if rerr != nil {
			return nil, nil, 0, rerr
		}
		if reloaded {
			keys = fresh
			hs, v, err = openInitiation(keys.statics, pkt, 0)
		}
	}
	if err != nil {
		return nil, nil, 0, reject("handshake-auth", err)
	}
	return keys, hs, v, nil
}

// openInitiation reads message 1 under the static key of version, or,
// with version 0, under each one newest first until one opens it. Only an
// authentication failure moves on to the next: a malformed message is
// malformed under every key.
func openInitiation(statics []registry.StaticKey, pkt []byte, version int) (*radio.ResponderHandshake, int, error) {
	var tried []int
	for _, k := range statics {
		if version != 0 && k.Version != version {
			continue
		}
		hs, err := radio.ReadInitiation(k.KeyPair, pkt, nil)
		if err == nil {
			return hs, k.Version, nil
		}
		if !errors.Is(err, radio.ErrAuth) {
			return nil, 0, err
		}
		tried = append(tried, k.Version)
	}
	return nil, 0, fmt.Errorf("%w: handshake initiation opens under none of the cloud static key versions %v", radio.ErrAuth, tried)
}

// prepareHandshake refuses a handshake over the device's admission
// limit, reads the device, refuses a message 1 no newer than
// its last handshake (closing the claim, so that its copies stop there),
// and only then unwraps the PSK.
func (s *Service) prepareHandshake(ctx context.Context, up relay.Uplink, keys *cloudKeys, hs *radio.ResponderHandshake, version int,
	deviceID, recID string, rec store.Reception) (*handshakeWrite, error) {
	if err := s.admission.admit(deviceID, up.ConnectorID); err != nil {
		s.n.commits.Add(1)
		if cerr := s.db.CloseReception(ctx, recID); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	dev, err := s.deps.Registry.Device(ctx, deviceID)
	if errors.Is(err, registry.ErrNotFound) {
		s.n.commits.Add(1)
		_ = s.db.CloseReception(ctx, recID)
		return nil, reject("unknown-sensor", err)
	}
	if err != nil {
		return nil, err
	}
	if err := checkHandshakeTime(deviceID, dev.LastHandshakeNs, hs); err != nil {
		s.n.commits.Add(1)
		if cerr := s.db.CloseReception(ctx, recID); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	psk, err := s.deps.Registry.PSK(ctx, dev)
	if err != nil {
		return nil, err
	}
	return &handshakeWrite{up: up, keys: keys, version: version, deviceID: deviceID, psk: psk, recID: recID, rec: rec}, nil
}

// checkHandshakeTime refuses a message 1 no newer than the device's last
// accepted handshake. The refusal names the device and both times: an
// operator telling a replay (the same time again) from a sensor whose
// clock went back needs them, and neither is secret.
func checkHandshakeTime(deviceID string, lastNs int64, hs *radio.ResponderHandshake) error {
	last, ts := time.Unix(0, lastNs).UTC(), hs.Timestamp().UTC()
	if err := radio.CheckTimestamp(last, ts); err != nil {
		return reject("replayed-handshake", fmt.Errorf("device %s sent a handshake of %s, its last accepted is of %s: %w",
			deviceID, ts.Format(time.RFC3339Nano), last.Format(time.RFC3339Nano), err))
	}
	return nil
}

// handshakeWrite is a handshake's transaction: what it starts from, and
// what its last attempt leaves for the reply.
type handshakeWrite struct {
	up       relay.Uplink
	keys     *cloudKeys
	version  int // of the cloud static key message 1 opened under
	deviceID string
	psk      [32]byte
	recID    string
	rec      store.Reception

	index  uint32 // the session's receiver index, once created
	out    outcome
	health healthStep // this attempt's fleet-health change
}

// storeHandshake is one attempt of a handshake's transaction: it checks
// the handshake is newer than the device's last, and stores the new
// session with the response to send.
func (s *Service) storeHandshake(tx *firestore.Transaction, h *handshakeWrite) error {
	h.out, h.health = outcome{rec: h.rec}, healthStep{}
	now := s.deps.Now()
	dev, err := s.db.DeviceIn(tx, h.deviceID)
	if err != nil {
		return err
	}
	// A Noise handshake state is single-use, and this attempt may run
	// again on contention, so read message 1 afresh.
	hs, _, err := openInitiation(h.keys.statics, h.up.Packet, h.version)
	if err != nil {
		return err
	}
	if err := checkHandshakeTime(h.deviceID, dev.LastHandshakeNs, hs); err != nil {
		h.out.reject = err
		return s.db.CloseReceptionIn(tx, h.recID)
	}
	index, err := s.freeIndex(tx)
	if err != nil {
		return err
	}
	h.index = index
	resp, sess, err := hs.Respond(h.psk, index, now)
	if err != nil {
		return err
	}
	sess.Limits = s.cfg.Limits
	sealed, err := sealSession(h.keys.envelope, index, h.deviceID, sess)
	if err != nil {
		return err
	}
	if err := s.db.CreateSession(tx, index, store.Session{
		DeviceID: h.deviceID, ProjectID: dev.ProjectID, Sealed: sealed, Created: now,
		ExpireAt: now.Add(s.cfg.Limits.MaxAge + time.Hour),
	}); err != nil {
		return err
	}
	if err := s.db.SetLastHandshake(tx, h.deviceID, hs.Timestamp().UnixNano(), h.version); err != nil {
		return err
	}
	if h.health, err = s.handshakeHealth(dev, h.deviceID, now); err != nil {
		return err
	}
	if err := h.health.storeEvents(tx, s.db); err != nil {
		return err
	}
	change := store.DeviceChange{Health: h.health.change}
	if v, ok := feedback(dev.Pending, heardBack{handshake: true}, now); ok {
		h.out.avoid = lostVia(v)
		change.Verdict = &v
	}
	if err := s.db.UpdateDevice(tx, h.deviceID, change); err != nil {
		return err
	}
	h.out.rec.DeviceID, h.out.rec.ProjectID, h.out.rec.Reply = h.deviceID, dev.ProjectID, resp
	h.out.links, h.out.netStatus = dev.Links, dev.LastNetworkStatus
	return s.db.CommitHandshake(tx, h.recID, h.deviceID, dev.ProjectID, resp)
}

// freeIndex picks a random receiver index not used by a live session. The
// index space is 2^32 and sessions are few, so a second draw is rare and a
// fourth practically never happens.
func (s *Service) freeIndex(tx *firestore.Transaction) (uint32, error) {
	for range 4 {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return 0, err
		}
		index := binary.LittleEndian.Uint32(b[:])
		if index == 0 {
			continue
		}
		free, err := s.db.SessionFree(tx, index)
		if err != nil {
			return 0, err
		}
		if free {
			return index, nil
		}
	}
	return 0, errors.New("no free session index")
}

// envelopeErr classifies a failure to open a connector's envelope: the
// permanent ones become rejections, anything else (Firestore unavailable,
// say) stays an error to retry.
func envelopeErr(err error) error {
	switch {
	case errors.Is(err, relay.ErrMalformed):
		return reject("malformed-envelope", err)
	case errors.Is(err, relay.ErrRetiredKey):
		return reject("retired-connector-key", err)
	case errors.Is(err, relay.ErrSignature):
		return reject("bad-signature", err)
	case errors.Is(err, registry.ErrNotFound):
		return reject("unknown-connector", err)
	case errors.Is(err, registry.ErrRevoked):
		return reject("revoked-connector", err)
	}
	return err
}
