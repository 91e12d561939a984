package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/sealedsense/sealedsense/shared/expiring"
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
	TakeOverReception(ctx context.Context, id, instance string, staleBefore, now time.Time) (store.Reception, bool, error)
}

// claimer deduplicates the copies of a packet that several connectors
// heard: in memory for copies that reach this instance while it holds the
// packet, through the reception record for the others.
type claimer struct {
	db       receptionStore
	live     liveClaims
	window   time.Duration // the collection window
	now      func() time.Time
	commits  *atomic.Uint64
	instance string // this instance's id, which its claims record
	// recent are the transport packets this instance answered lately,
	// by reception id, so that their late copies and redeliveries are
	// told from replays.
	recent *expiring.Cache[string, answeredPacket]
	// ownerPoll is how often a redelivery of a packet another instance is
	// processing reads its record, waiting for the commit (default
	// ownerPollEvery).
	ownerPoll time.Duration
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
		PacketHash: store.PacketHash(up.Packet), Owner: up.ConnectorID, Instance: c.instance, FirstReceived: up.Received, FirstSeen: now,
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

// own makes up the owner of its transport packet on this instance, or
// joins it, in memory, to the copy that is. Transport packets claim
// nothing in Firestore: their transaction, which advances the session's
// replay window, is the deduplication point, and copies that reach
// another instance meet it there.
func (c *claimer) own(id string, up relay.Uplink) (bool, error) {
	for {
		if live, inWindow := c.live.join(id, up, hearerOf(up), c.window); live {
			if !inWindow {
				return false, reject("replay", fmt.Errorf("copy from %s outside the collection window", up.ConnectorID))
			}
			return false, nil
		}
		if c.live.add(id, &liveClaim{hash: store.PacketHash(up.Packet), owner: up.ConnectorID, firstReceived: up.Received}) {
			return true, nil
		}
	}
}

// answeredPacket is what a packet answered here leaves to recognise its
// copies by.
type answeredPacket struct {
	hash          []byte
	firstReceived time.Time
}

// Recently answered packets are remembered for longer than Pub/Sub takes
// to redeliver an unacknowledged push, and at most this many.
const (
	answeredTTL = 10 * time.Minute
	maxAnswered = 100000
)

// answered remembers that the packet up owned was answered.
func (c *claimer) answered(id string, up relay.Uplink) {
	c.recent.Put(id, answeredPacket{hash: store.PacketHash(up.Packet), firstReceived: up.Received})
}

// afterAnswer settles a copy of a packet its session already accepted. A
// copy of a packet answered here, received within the collection window
// of its first, is a copy that came late or a redelivery: acknowledged
// quietly. A copy of the session's last packet, within the same window,
// that another instance answered is told by the device's live session
// (errAnsweredElsewhere). Anything else is a replay, or a copy of an
// older packet that came too late, which look the same.
func (c *claimer) afterAnswer(id string, up relay.Uplink, counter uint64, live *store.LiveSession) error {
	a, ok := c.recent.Get(id)
	if !ok && c.copyOfLast(up, counter, live) {
		return errAnsweredElsewhere
	}
	if !ok {
		return reject("replay", errors.New("counter already accepted"))
	}
	if !bytes.Equal(a.hash, store.PacketHash(up.Packet)) {
		return reject("replay", errors.New("different bytes under a counter already accepted"))
	}
	if gap := up.Received.Sub(a.firstReceived).Abs(); gap > c.window {
		return reject("replay", fmt.Errorf("copy from %s received %v after the first", up.ConnectorID, gap.Round(time.Millisecond)))
	}
	return nil
}

// errAnsweredElsewhere is a copy of a packet another instance answered:
// on Cloud Run, a packet's copies from several connectors reach whichever
// instances Pub/Sub pushes them to. It is acknowledged quietly, and
// counted.
var errAnsweredElsewhere = errors.New("ingest: a copy of a packet another instance answered")

// copyOfLast reports whether up is a copy of live's last accepted
// packet, received within the collection window of its first copy.
func (c *claimer) copyOfLast(up relay.Uplink, counter uint64, live *store.LiveSession) bool {
	if live == nil || live.Last == nil || live.Last.Counter != int64(counter) {
		return false
	}
	return bytes.Equal(live.Last.Hash, store.PacketHash(up.Packet)) && up.Received.Sub(live.Last.FirstReceived).Abs() <= c.window
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
		return c.redelivered(ctx, id, rec)
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
	if rec.Owner == up.ConnectorID || slices.ContainsFunc(rec.Hearers, func(h store.Hearer) bool { return h.ConnectorID == up.ConnectorID }) {
		// A second copy from a connector that forwarded the packet twice:
		// its first is kept.
		return done, rec, nil
	}
	c.commits.Add(1)
	if err := c.db.AddHearers(ctx, id, hearerOf(up)); err != nil {
		return 0, store.Reception{}, err
	}
	return copyOf, rec, nil
}

// claimLease is how long an instance's claim of a packet it has not
// committed stands against the other instances: longer than a push
// request may run (ingest's timeout is 60s), after which the attempt that
// made it has certainly ended. A redelivery on another instance waits for
// its commit until then, and takes the packet over after.
const claimLease = 90 * time.Second

// ownerPollEvery and ownerWait pace a redelivery's wait for another
// instance's commit: it reads the record after ownerPollEvery, then at
// doubling intervals (up to 16 times that), and after ownerWait without a
// commit fails, so that Pub/Sub delivers it again later rather than
// holding a push for long. A commit usually lands within the first polls;
// the doubling keeps a stuck one to about ten reads, not a hundred.
const (
	ownerPollEvery = 50 * time.Millisecond
	ownerWait      = 5 * time.Second
)

// errOwnerBusy is a redelivery of a packet another instance has claimed
// and not committed yet: Pub/Sub retries it.
var errOwnerBusy = errors.New("packet claimed by another instance, not committed yet")

// redelivered settles a redelivery, by Pub/Sub, of the copy that claimed
// rec, so that exactly one attempt at a time processes a packet. An
// uncommitted claim of this instance's is its own earlier attempt, which
// failed (one in progress holds the live claim, which the copy would have
// joined): this copy tries again. One of another instance's is waited
// for while its lease runs, and taken over, by one redelivery only, once
// it has run out.
func (c *claimer) redelivered(ctx context.Context, id string, rec store.Reception) (claimResult, store.Reception, error) {
	deadline := c.now().Add(ownerWait)
	for polls := 0; ; polls++ {
		now := c.now()
		if rec.Committed {
			return committedRedelivery(rec, now, c.window), rec, nil
		}
		if rec.Instance == c.instance {
			return owner, rec, nil
		}
		if now.Sub(rec.FirstSeen) > claimLease {
			c.commits.Add(1)
			taken, ok, err := c.db.TakeOverReception(ctx, id, c.instance, now.Add(-claimLease), now)
			if err != nil {
				return 0, store.Reception{}, err
			}
			if ok {
				return owner, taken, nil
			}
			if taken.Committed {
				return committedRedelivery(taken, now, c.window), taken, nil
			}
			// Another redelivery took it over first: wait for its commit.
		}
		if !now.Before(deadline) {
			return 0, store.Reception{}, errOwnerBusy
		}
		if err := c.pause(ctx, polls); err != nil {
			return 0, store.Reception{}, err
		}
		var err error
		if rec, err = c.db.Reception(ctx, id); err != nil {
			return 0, store.Reception{}, err
		}
	}
}

// pause waits before the record's next read (ownerPoll, doubled per
// earlier poll up to 16 times), or until ctx ends.
func (c *claimer) pause(ctx context.Context, polls int) error {
	d := c.ownerPoll
	if d <= 0 {
		d = ownerPollEvery
	}
	d <<= min(polls, 4)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// committedRedelivery says what to do with a redelivery of the copy that
// claimed rec, once the packet's transaction has committed.
func committedRedelivery(rec store.Reception, now time.Time, window time.Duration) claimResult {
	switch {
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
