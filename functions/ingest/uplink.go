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
)

func (s *Service) handleUplink(ctx context.Context, data []byte) error {
	up, err := relay.OpenUplink(ctx, data, s.connector)
	if err != nil {
		return envelopeErr(err)
	}
	typ, err := radio.Type(up.Packet)
	if err != nil {
		return reject("malformed-packet", err)
	}
	switch typ {
	case radio.TypeInitiation:
		return s.handshake(ctx, up)
	case radio.TypeTransport:
		return s.transport(ctx, up)
	default:
		return reject("unexpected-packet-type", fmt.Errorf("type %d on the uplink", typ))
	}
}

func (s *Service) hearer(up relay.Uplink) hearer {
	return hearer{ConnectorID: up.ConnectorID, RSSI: up.RSSI, SNR: up.SNR, Received: up.Received}
}

// outcome is what a packet's transaction decided, for the steps after it.
type outcome struct {
	reject    error // a rejection, already wrapped
	rec       reception
	links     map[string]link
	netStatus time.Time
	// polls counts the reply's waits for expected copies; every
	// pollStore-th one, and the last, reads the reception record.
	polls int
}

func (s *Service) handshake(ctx context.Context, up relay.Uplink) error {
	keys, err := s.cloud(ctx)
	if err != nil {
		return err
	}
	hs, err := radio.ReadInitiation(keys.static, up.Packet, nil)
	if err != nil {
		return reject("handshake-auth", err)
	}
	// Claim first: the copies from other connectors then cost one write
	// each and land well inside the collection window.
	fs := s.deps.Firestore
	recRef := fs.Collection(receptionsCollection).Doc(handshakeReceptionID(up.Packet))
	res, rec, err := s.claim(ctx, recRef, up, true)
	if err != nil || res == copyOf || res == done {
		return err
	}
	if res == resume {
		return s.resume(ctx, recRef, rec)
	}
	dev, err := s.deps.Registry.DeviceByPublicKey(ctx, hs.PeerStatic())
	if err != nil {
		s.live.take(recRef.ID)
	}
	if errors.Is(err, registry.ErrNotFound) {
		s.commits.Add(1)
		_, _ = recRef.Update(ctx, []firestore.Update{{Path: "committed", Value: true}, {Path: "done", Value: true}})
		return reject("unknown-sensor", err)
	}
	if err != nil {
		return err
	}
	psk, err := s.deps.Registry.PSK(ctx, dev)
	if err != nil {
		s.live.take(recRef.ID)
		return err
	}
	devRef := fs.Collection(registry.DevicesCollection).Doc(dev.ID)
	var out outcome
	s.commits.Add(1)
	err = fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		out = outcome{rec: rec}
		now := s.deps.Now()
		devSnap, err := tx.Get(devRef)
		if err != nil {
			return err
		}
		var st deviceState
		if err := devSnap.DataTo(&st); err != nil {
			return err
		}
		// A Noise handshake state is single-use, and this closure may run
		// again on contention, so read message 1 afresh.
		hs, err := radio.ReadInitiation(keys.static, up.Packet, nil)
		if err != nil {
			return err
		}
		if err := radio.CheckTimestamp(time.Unix(0, st.LastHandshakeNs), hs.Timestamp()); err != nil {
			out.reject = reject("replayed-handshake", err)
			return tx.Update(recRef, []firestore.Update{{Path: "committed", Value: true}, {Path: "done", Value: true}})
		}
		index, sessRef, err := s.freeIndex(tx)
		if err != nil {
			return err
		}
		resp, sess, err := hs.Respond(psk, index, now)
		if err != nil {
			return err
		}
		sess.Limits = s.cfg.Limits
		sealed, err := s.sealSession(keys, index, sess)
		if err != nil {
			return err
		}
		if err := tx.Create(sessRef, sessionDoc{
			DeviceID: dev.ID, ProjectID: st.ProjectID, Sealed: sealed, Created: now,
			ExpireAt: now.Add(s.cfg.Limits.MaxAge + time.Hour),
		}); err != nil {
			return err
		}
		if err := tx.Update(devRef, []firestore.Update{{Path: "lastHandshakeNs", Value: hs.Timestamp().UnixNano()}}); err != nil {
			return err
		}
		out.rec.DeviceID, out.rec.ProjectID, out.rec.Reply = dev.ID, st.ProjectID, resp
		out.links, out.netStatus = st.Links, st.LastNetworkStatus
		return tx.Update(recRef, []firestore.Update{
			{Path: "deviceId", Value: dev.ID}, {Path: "projectId", Value: st.ProjectID},
			{Path: "reply", Value: resp}, {Path: "committed", Value: true},
		})
	})
	if err != nil || out.reject != nil {
		s.live.take(recRef.ID) // no reply will be sent for it here
	}
	if err != nil {
		return fmt.Errorf("handshake of %s: %w", dev.ID, err)
	}
	if out.reject != nil {
		return out.reject
	}
	s.log.Info("handshake accepted", "deviceId", dev.ID, "connectorId", up.ConnectorID)
	s.scheduleReply(recRef, out)
	return nil
}

// freeIndex picks a random receiver index not used by a live session. The
// index space is 2^32 and sessions are few, so a second draw is rare and a
// fourth practically never happens.
func (s *Service) freeIndex(tx *firestore.Transaction) (uint32, *firestore.DocumentRef, error) {
	for range 4 {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return 0, nil, err
		}
		index := binary.LittleEndian.Uint32(b[:])
		if index == 0 {
			continue
		}
		ref := s.deps.Firestore.Collection(sessionsCollection).Doc(sessionID(index))
		if _, err := tx.Get(ref); notFound(err) {
			return index, ref, nil
		} else if err != nil {
			return 0, nil, err
		}
	}
	return 0, nil, errors.New("no free session index")
}

func (s *Service) sealSession(keys *cloudKeys, index uint32, sess *radio.Session) ([]byte, error) {
	blob, err := sess.MarshalBinary()
	if err != nil {
		return nil, err
	}
	defer clear(blob)
	return keys.envelope.Seal(blob, sessionAAD(index))
}

func (s *Service) openSession(keys *cloudKeys, index uint32, sealed []byte) (*radio.Session, error) {
	blob, err := keys.envelope.Open(sealed, sessionAAD(index))
	if err != nil {
		return nil, err
	}
	defer blob.Clear()
	var sess radio.Session
	if err := sess.UnmarshalBinary(blob); err != nil {
		return nil, err
	}
	sess.Limits = s.cfg.Limits
	return &sess, nil
}

// envelopeErr classifies a failure to open a connector's envelope: the
// permanent ones become rejections, anything else (Firestore unavailable,
// say) stays an error to retry.
func envelopeErr(err error) error {
	switch {
	case errors.Is(err, relay.ErrMalformed):
		return reject("malformed-envelope", err)
	case errors.Is(err, relay.ErrSignature):
		return reject("bad-signature", err)
	case errors.Is(err, registry.ErrNotFound):
		return reject("unknown-connector", err)
	case errors.Is(err, registry.ErrRevoked):
		return reject("revoked-connector", err)
	}
	return err
}
