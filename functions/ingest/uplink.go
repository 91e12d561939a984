package ingest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sealedsense/sealedsense/shared/radio"
	"github.com/sealedsense/sealedsense/shared/registry"
	"github.com/sealedsense/sealedsense/shared/relay"
)

func (s *Service) handleUplink(ctx context.Context, data []byte) error {
	up, err := relay.OpenUplink(ctx, data, s.connector)
	switch {
	case errors.Is(err, relay.ErrMalformed):
		return reject("malformed-envelope", err)
	case errors.Is(err, relay.ErrSignature):
		return reject("bad-signature", err)
	case errors.Is(err, registry.ErrNotFound):
		return reject("unknown-connector", err)
	case errors.Is(err, registry.ErrRevoked):
		return reject("revoked-connector", err)
	case err != nil:
		return err
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

func notFound(err error) bool { return status.Code(err) == codes.NotFound }

func (s *Service) hearer(up relay.Uplink) hearer {
	return hearer{ConnectorID: up.ConnectorID, RSSI: up.RSSI, SNR: up.SNR, Received: up.Received}
}

// outcome is what a packet's transaction decided.
type outcome struct {
	reject     error     // a rejection, already wrapped
	copyOf     bool      // another connector's copy: metadata added, nothing else to do
	resume     bool      // our own earlier attempt committed; finish its reply
	rec        reception // the reception to finish
	deviceID   string
	links      map[string]link
	netStatus  time.Time
	deviceType string
}

// addCopy records another connector's copy of a packet already processed:
// inside the window it adds the reception metadata, after it the copy is
// dropped and counted (a slow connector and a replay look the same).
func (s *Service) addCopy(tx *firestore.Transaction, ref *firestore.DocumentRef, rec reception, up relay.Uplink, now time.Time) (outcome, error) {
	if rec.Owner == up.ConnectorID {
		for _, h := range rec.Hearers {
			if h.ConnectorID == up.ConnectorID && h.Received.Equal(up.Received) && !rec.Done {
				// Pub/Sub redelivered the copy we processed: finish the job.
				return outcome{resume: true, rec: rec}, nil
			}
		}
	}
	for _, h := range rec.Hearers {
		if h.ConnectorID == up.ConnectorID {
			return outcome{copyOf: true}, nil // a redelivery of a copy already counted
		}
	}
	if now.Sub(rec.FirstSeen) > s.cfg.Window {
		if err := tx.Update(ref, []firestore.Update{{Path: "late", Value: firestore.Increment(1)}}); err != nil {
			return outcome{}, err
		}
		return outcome{reject: reject("replay", fmt.Errorf("copy from %s arrived %v after the first", up.ConnectorID, now.Sub(rec.FirstSeen).Round(time.Millisecond)))}, nil
	}
	if err := tx.Update(ref, []firestore.Update{{Path: "hearers", Value: firestore.ArrayUnion(s.hearer(up))}}); err != nil {
		return outcome{}, err
	}
	return outcome{copyOf: true}, nil
}

func (s *Service) handshake(ctx context.Context, up relay.Uplink) error {
	keys, err := s.cloud(ctx)
	if err != nil {
		return err
	}
	// Read once outside the transaction to find the device; the transaction
	// reads message 1 again because a Noise handshake state is single-use.
	hs, err := radio.ReadInitiation(keys.static, up.Packet, nil)
	if err != nil {
		return reject("handshake-auth", err)
	}
	dev, err := s.deps.Registry.DeviceByPublicKey(ctx, hs.PeerStatic())
	if errors.Is(err, registry.ErrNotFound) {
		return reject("unknown-sensor", err)
	}
	if err != nil {
		return err
	}
	psk, err := s.deps.Registry.PSK(ctx, dev)
	if err != nil {
		return err
	}
	fs := s.deps.Firestore
	recRef := fs.Collection(receptionsCollection).Doc(handshakeReceptionID(up.Packet))
	devRef := fs.Collection(registry.DevicesCollection).Doc(dev.ID)
	var out outcome
	err = fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		out = outcome{}
		now := s.deps.Now()
		snap, err := tx.Get(recRef)
		switch {
		case err == nil:
			var rec reception
			if err := snap.DataTo(&rec); err != nil {
				return err
			}
			out, err = s.addCopy(tx, recRef, rec, up, now)
			return err
		case !notFound(err):
			return err
		}
		devSnap, err := tx.Get(devRef)
		if err != nil {
			return err
		}
		var st deviceState
		if err := devSnap.DataTo(&st); err != nil {
			return err
		}
		hs, err := radio.ReadInitiation(keys.static, up.Packet, nil)
		if err != nil {
			return err
		}
		if err := radio.CheckTimestamp(time.Unix(0, st.LastHandshakeNs), hs.Timestamp()); err != nil {
			out.reject = reject("replayed-handshake", err)
			return nil
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
		out.rec = reception{
			DeviceID: dev.ID, ProjectID: st.ProjectID, PacketHash: packetHash(up.Packet), Owner: up.ConnectorID,
			FirstSeen: now, Hearers: []hearer{s.hearer(up)}, Reply: resp, ExpireAt: now.Add(24 * time.Hour),
		}
		out.deviceID, out.links, out.deviceType, out.netStatus = dev.ID, st.Links, st.Type, st.LastNetworkStatus
		return tx.Create(recRef, out.rec)
	})
	if err != nil {
		return fmt.Errorf("handshake of %s: %w", dev.ID, err)
	}
	switch {
	case out.reject != nil:
		return out.reject
	case out.copyOf:
		return nil
	}
	if out.resume {
		return s.resume(ctx, recRef, out.rec)
	}
	s.log.Info("handshake accepted", "deviceId", dev.ID, "connectorId", up.ConnectorID)
	return s.finish(ctx, recRef, out)
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

// sameBytes reports whether a copy is byte-identical to the processed packet;
// anything else under the same (session, counter) is a forgery or replay.
func sameBytes(rec reception, pkt []byte) bool { return bytes.Equal(rec.PacketHash, packetHash(pkt)) }
