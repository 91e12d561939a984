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
	var out outcome
	var events, fresh []storedEvent
	err = fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		out, events, fresh = outcome{}, nil, nil
		now := s.deps.Now()
		snaps, err := tx.GetAll([]*firestore.DocumentRef{sessRef, recRef})
		if err != nil {
			return err
		}
		if snaps[1].Exists() {
			var rec reception
			if err := snaps[1].DataTo(&rec); err != nil {
				return err
			}
			if !sameBytes(rec, up.Packet) {
				out.reject = reject("replay", errors.New("different bytes under a counter already accepted"))
				return nil
			}
			out, err = s.addCopy(tx, recRef, rec, up, now)
			return err
		}
		if !snaps[0].Exists() {
			out.reject = reject("unknown-session", fmt.Errorf("receiver index %d", hdr.ReceiverIndex))
			return nil
		}
		var sd sessionDoc
		if err := snaps[0].DataTo(&sd); err != nil {
			return err
		}
		sess, err := s.openSession(keys, hdr.ReceiverIndex, sd.Sealed)
		if err != nil {
			return fmt.Errorf("session %d: %w", hdr.ReceiverIndex, err)
		}
		pt, counter, err := sess.Open(nil, up.Packet, now)
		if err != nil {
			out.reject = reject(openReason(err), err)
			return nil
		}
		ul, err := payload.DecodeUplink(pt)
		clear(pt)
		if err != nil {
			// The packet is authentic, so this is a sensor bug; accepting
			// its counter would lose nothing more, but the readings are
			// unreadable either way.
			out.reject = reject("bad-payload", err)
			return nil
		}
		devRef := fs.Collection(registry.DevicesCollection).Doc(sd.DeviceID)
		devSnap, err := tx.Get(devRef)
		if err != nil {
			return err
		}
		var st deviceState
		if err := devSnap.DataTo(&st); err != nil {
			return err
		}
		events, err = s.readingEvents(st.ProjectID, sd.DeviceID, ul.Readings, now)
		if err != nil {
			out.reject = reject("bad-payload", err)
			return nil
		}
		refs := make([]*firestore.DocumentRef, len(events))
		for i, e := range events {
			refs[i] = fs.Collection(eventsCollection).Doc(e.id)
		}
		existing, err := tx.GetAll(refs)
		if err != nil {
			return err
		}

		// The reply: an ACK of this counter, sealed now so that a retry
		// of this transaction never sends two different plaintexts.
		reply, err := payload.Reply{Acks: []uint64{counter}}.Marshal()
		if err != nil {
			return err
		}
		replyPkt, replyCtr, err := sess.Seal(nil, reply, now)
		if err != nil {
			return err
		}
		sealed, err := s.sealSession(keys, hdr.ReceiverIndex, sess)
		if err != nil {
			return err
		}
		if err := tx.Update(sessRef, []firestore.Update{{Path: "sealed", Value: sealed}}); err != nil {
			return err
		}
		ids := make([]string, 0, len(events))
		var reported []firestore.Update
		for i, e := range events {
			ids = append(ids, e.id)
			if existing[i].Exists() {
				continue // a backfilled reading stored before: exactly once
			}
			if err := tx.Create(refs[i], e.doc); err != nil {
				return err
			}
			fresh = append(fresh, e)
			if !e.backfilled {
				reported = append(reported, firestore.Update{FieldPath: firestore.FieldPath{"reported", e.doc.EventType}, Value: e.data})
			}
		}
		upd := append(reported, feedback(st, ul.Replies)...)
		upd = append(upd, firestore.Update{Path: "pendingReply", Value: firestore.Delete})
		if err := tx.Update(devRef, upd); err != nil {
			return err
		}
		out.rec = reception{
			DeviceID: sd.DeviceID, ProjectID: st.ProjectID, PacketHash: packetHash(up.Packet), Owner: up.ConnectorID,
			FirstSeen: now, Hearers: []hearer{s.hearer(up)}, Reply: replyPkt, ReplyCtr: int64(replyCtr), EventIDs: ids,
			ExpireAt: now.Add(24 * time.Hour),
		}
		out.deviceID, out.links, out.deviceType, out.netStatus = sd.DeviceID, st.Links, st.Type, st.LastNetworkStatus
		return tx.Create(recRef, out.rec)
	})
	if err != nil {
		return fmt.Errorf("packet %d/%d: %w", hdr.ReceiverIndex, hdr.Counter, err)
	}
	switch {
	case out.reject != nil:
		return out.reject
	case out.copyOf:
		return nil
	case out.resume:
		return s.resume(ctx, recRef, out.rec)
	}
	if err := s.publishEvents(ctx, out.rec.ProjectID, out.rec.DeviceID, jsonOf(fresh)); err != nil {
		return err
	}
	return s.finish(ctx, recRef, out)
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

// feedback judges the last reply from what the device says it received.
func feedback(st deviceState, received []uint64) []firestore.Update {
	p := st.Pending
	if p == nil || p.Via == "" {
		return nil
	}
	field := "acked"
	if !slices.Contains(received, uint64(p.Counter)) {
		field = "failed"
	}
	return []firestore.Update{{FieldPath: firestore.FieldPath{"links", p.Via, field}, Value: firestore.Increment(1)}}
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
	var shape struct {
		Data map[string]map[string]any `json:"data"`
	}
	if err := json.Unmarshal(js, &shape); err != nil {
		return storedEvent{}, err
	}
	return storedEvent{
		id:   ev.EventID,
		data: shape.Data[ev.EventType],
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
