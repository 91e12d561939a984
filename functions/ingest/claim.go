package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sealedsense/sealedsense/shared/relay"
)

// claimResult says what a copy of a packet has to do.
type claimResult int

const (
	owner  claimResult = iota // this copy claimed the packet: process it
	copyOf                    // another copy owns it; reception metadata recorded
	resume                    // our own earlier attempt committed; finish its reply
	done                      // our own earlier attempt finished everything
)

// claim makes the reception record the deduplication point: the first
// authentic copy to create it owns the packet. It runs outside any
// transaction, so copies heard by several connectors never contend on the
// session. Only copies that passed authentication get here, so a forgery
// cannot claim a packet first.
//
// mayCreate is false for a packet the session's window already holds: such
// a packet can only be a copy of one already claimed, or a replay.
func (s *Service) claim(ctx context.Context, ref *firestore.DocumentRef, up relay.Uplink, mayCreate bool) (claimResult, reception, error) {
	now := s.deps.Now()
	rec := reception{
		PacketHash: packetHash(up.Packet), Owner: up.ConnectorID, FirstReceived: up.Received, FirstSeen: now,
		Hearers: []hearer{s.hearer(up)}, ExpireAt: now.Add(24 * time.Hour),
	}
	if live, inWindow := s.live.join(ref.ID, up, s.hearer(up), s.cfg.Window); live {
		if !inWindow {
			return 0, reception{}, reject("replay", fmt.Errorf("copy from %s outside the collection window", up.ConnectorID))
		}
		return copyOf, reception{}, nil
	}
	if mayCreate {
		// Registered before the write, so that copies this instance is
		// handling at the same moment join in memory instead of racing the
		// Create; if another instance wins, they are handed to its record.
		if !s.live.add(ref.ID, &liveClaim{hash: rec.PacketHash, owner: up.ConnectorID, firstReceived: up.Received}) {
			return s.claim(ctx, ref, up, mayCreate) // a concurrent copy registered first
		}
		s.commits.Add(1)
		_, err := ref.Create(ctx, rec)
		if err == nil {
			return owner, rec, nil
		}
		joined := s.live.take(ref.ID)
		if !exists(err) {
			return 0, reception{}, err
		}
		if len(joined) > 0 {
			vals := make([]any, len(joined))
			for i, h := range joined {
				vals[i] = h
			}
			s.commits.Add(1)
			if _, err := ref.Update(ctx, []firestore.Update{{Path: "hearers", Value: firestore.ArrayUnion(vals...)}}); err != nil {
				return 0, reception{}, err
			}
		}
	}
	snap, err := ref.Get(ctx)
	if notFound(err) {
		return 0, reception{}, reject("replay", errors.New("counter already accepted and no longer in the collection window"))
	}
	if err != nil {
		return 0, reception{}, err
	}
	if err := snap.DataTo(&rec); err != nil {
		return 0, reception{}, err
	}
	if !bytes.Equal(rec.PacketHash, packetHash(up.Packet)) {
		return 0, reception{}, reject("replay", errors.New("different bytes under a counter already accepted"))
	}
	if rec.Owner == up.ConnectorID && sameInstant(rec.FirstReceived, up.Received) {
		// Pub/Sub redelivered the copy that claimed the packet.
		switch {
		case !rec.Committed:
			return owner, rec, nil
		case !rec.Done && now.Sub(rec.FirstSeen) > s.cfg.Window+replyTimeout:
			// The attempt that committed died before its reply went out.
			return resume, rec, nil
		default:
			// Done, or its reply is still scheduled: a second one would
			// reach the sensor as a replay.
			return done, rec, nil
		}
	}
	for _, h := range rec.Hearers {
		if h.ConnectorID == up.ConnectorID && sameInstant(h.Received, up.Received) {
			return done, rec, nil // a redelivered copy, already counted
		}
	}
	if gap := up.Received.Sub(rec.FirstReceived).Abs(); gap > s.cfg.Window {
		// A slow connector and a replay look the same: both are dropped.
		s.commits.Add(1)
		if _, err := ref.Update(ctx, []firestore.Update{{Path: "late", Value: firestore.Increment(1)}}); err != nil {
			return 0, reception{}, err
		}
		return 0, reception{}, reject("replay", fmt.Errorf("copy from %s received %v after the first", up.ConnectorID, gap.Round(time.Millisecond)))
	}
	s.commits.Add(1)
	if _, err := ref.Update(ctx, []firestore.Update{{Path: "hearers", Value: firestore.ArrayUnion(s.hearer(up))}}); err != nil {
		return 0, reception{}, err
	}
	return copyOf, rec, nil
}

func notFound(err error) bool { return status.Code(err) == codes.NotFound }
func exists(err error) bool   { return status.Code(err) == codes.AlreadyExists }

// sameInstant compares at Firestore's timestamp precision, microseconds:
// a time read back from a document has lost its nanoseconds.
func sameInstant(a, b time.Time) bool {
	return a.Truncate(time.Microsecond).Equal(b.Truncate(time.Microsecond))
}
