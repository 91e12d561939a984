package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/sealedsense/sealedsense/shared/relay"
	"github.com/sealedsense/sealedsense/shared/store"
)

// claimResult says what a copy of a packet has to do.
type claimResult int

const (
	owner  claimResult = iota // this copy claimed the packet: process it
	copyOf                    // another copy owns it; reception metadata recorded
	resume                    // our own earlier attempt committed; finish its reply
	done                      // our own earlier attempt finished everything
)

// receptionStore is where claims are recorded.
type receptionStore interface {
	CreateReception(ctx context.Context, id string, r store.Reception) error
	Reception(ctx context.Context, id string) (store.Reception, error)
	AddHearers(ctx context.Context, id string, hs ...store.Hearer) error
	CountLateCopy(ctx context.Context, id string) error
}

// claimer deduplicates the copies of a packet that several connectors
// heard: in memory for copies that reach this instance while it holds the
// packet, through the reception record for the others.
type claimer struct {
	db      receptionStore
	live    liveClaims
	window  time.Duration // the collection window
	now     func() time.Time
	commits *atomic.Uint64
}

// claim makes the reception record the deduplication point: the first
// authentic copy to create it owns the packet. It runs outside any
// transaction, so copies heard by several connectors never contend on the
// session. Only copies that passed authentication get here, so a forgery
// cannot claim a packet first.
//
// mayCreate is false for a packet the session's window already holds: such
// a packet can only be a copy of one already claimed, or a replay.
func (c *claimer) claim(ctx context.Context, id string, up relay.Uplink, mayCreate bool) (claimResult, store.Reception, error) {
	now := c.now()
	rec := store.Reception{
		PacketHash: store.PacketHash(up.Packet), Owner: up.ConnectorID, FirstReceived: up.Received, FirstSeen: now,
		Hearers: []store.Hearer{hearerOf(up)}, ExpireAt: now.Add(24 * time.Hour),
	}
	if live, inWindow := c.live.join(id, up, hearerOf(up), c.window); live {
		if !inWindow {
			return 0, store.Reception{}, reject("replay", fmt.Errorf("copy from %s outside the collection window", up.ConnectorID))
		}
		return copyOf, store.Reception{}, nil
	}
	if mayCreate {
		// Registered before the write, so that copies this instance is
		// handling at the same moment join in memory instead of racing the
		// Create; if another instance wins, they are handed to its record.
		if !c.live.add(id, &liveClaim{hash: rec.PacketHash, owner: up.ConnectorID, firstReceived: up.Received}) {
			return c.claim(ctx, id, up, mayCreate) // a concurrent copy registered first
		}
		created, err := c.create(ctx, id, rec)
		if err != nil {
			return 0, store.Reception{}, err
		}
		if created {
			return owner, rec, nil
		}
	}
	return c.join(ctx, id, up, now)
}

// create writes the claim. It reports false if another copy's claim was
// there first, to which it hands the copies that joined this one.
func (c *claimer) create(ctx context.Context, id string, rec store.Reception) (bool, error) {
	c.commits.Add(1)
	err := c.db.CreateReception(ctx, id, rec)
	if err == nil {
		return true, nil
	}
	joined := c.live.take(id)
	if !store.IsExists(err) {
		return false, err
	}
	if len(joined) > 0 {
		c.commits.Add(1)
		if err := c.db.AddHearers(ctx, id, joined...); err != nil {
			return false, err
		}
	}
	return false, nil
}

// join settles a copy of a packet claimed before, from its record.
func (c *claimer) join(ctx context.Context, id string, up relay.Uplink, now time.Time) (claimResult, store.Reception, error) {
	rec, err := c.db.Reception(ctx, id)
	if store.IsNotFound(err) {
		return 0, store.Reception{}, reject("replay", errors.New("counter already accepted and no longer in the collection window"))
	}
	if err != nil {
		return 0, store.Reception{}, err
	}
	if !bytes.Equal(rec.PacketHash, store.PacketHash(up.Packet)) {
		return 0, store.Reception{}, reject("replay", errors.New("different bytes under a counter already accepted"))
	}
	if rec.Owner == up.ConnectorID && sameInstant(rec.FirstReceived, up.Received) {
		return redelivered(rec, now, c.window), rec, nil
	}
	for _, h := range rec.Hearers {
		if h.ConnectorID == up.ConnectorID && sameInstant(h.Received, up.Received) {
			return done, rec, nil // a redelivered copy, already counted
		}
	}
	if gap := up.Received.Sub(rec.FirstReceived).Abs(); gap > c.window {
		// A slow connector and a replay look the same: both are dropped.
		c.commits.Add(1)
		if err := c.db.CountLateCopy(ctx, id); err != nil {
			return 0, store.Reception{}, err
		}
		return 0, store.Reception{}, reject("replay", fmt.Errorf("copy from %s received %v after the first", up.ConnectorID, gap.Round(time.Millisecond)))
	}
	c.commits.Add(1)
	if err := c.db.AddHearers(ctx, id, hearerOf(up)); err != nil {
		return 0, store.Reception{}, err
	}
	return copyOf, rec, nil
}

// redelivered says what to do with a redelivery, by Pub/Sub, of the copy
// that claimed rec.
func redelivered(rec store.Reception, now time.Time, window time.Duration) claimResult {
	switch {
	case !rec.Committed:
		return owner
	case !rec.Done && now.Sub(rec.FirstSeen) > window+replyTimeout:
		// The attempt that committed died before its reply went out.
		return resume
	default:
		// Done, or its reply is still scheduled: a second one would
		// reach the sensor as a replay.
		return done
	}
}

// hold is the owner's hold on a packet's live claim, to release with
// defer.
func (c *claimer) hold(id string) *heldClaim { return &heldClaim{live: &c.live, id: id} }

// joined returns the copies that joined a packet in memory so far.
func (c *claimer) joined(id string) []store.Hearer { return c.live.peek(id) }

// take ends a packet's live claim and returns the copies that joined it.
func (c *claimer) take(id string) []store.Hearer { return c.live.take(id) }

func hearerOf(up relay.Uplink) store.Hearer {
	return store.Hearer{ConnectorID: up.ConnectorID, RSSI: up.RSSI, SNR: up.SNR, Received: up.Received}
}

// sameInstant compares at Firestore's timestamp precision, microseconds:
// a time read back from a document has lost its nanoseconds.
func sameInstant(a, b time.Time) bool {
	return a.Truncate(time.Microsecond).Equal(b.Truncate(time.Microsecond))
}
