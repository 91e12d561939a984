package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/expiring"
	"github.com/sealedsense/sealedsense/shared/relay"
	"github.com/sealedsense/sealedsense/shared/store"
)

// fakeReceptions is the reception store in memory, counting writes.
type fakeReceptions struct {
	mu     sync.Mutex
	recs   map[string]store.Reception
	writes int
}

func (f *fakeReceptions) CreateReception(_ context.Context, id string, r store.Reception) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	if _, ok := f.recs[id]; ok {
		return fmt.Errorf("claim %s: %w", id, store.ErrExists)
	}
	f.recs[id] = r
	return nil
}

func (f *fakeReceptions) Reception(_ context.Context, id string) (store.Reception, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.recs[id]
	if !ok {
		return r, fmt.Errorf("reception %s: %w", id, store.ErrNotFound)
	}
	return r, nil
}

func (f *fakeReceptions) AddHearers(_ context.Context, id string, hs ...store.Hearer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	r := f.recs[id]
	r.Hearers = append(r.Hearers, hs...)
	f.recs[id] = r
	return nil
}

func (f *fakeReceptions) CountLateCopy(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	r := f.recs[id]
	r.Late++
	f.recs[id] = r
	return nil
}

func (f *fakeReceptions) TakeOverReception(_ context.Context, id, instance string, staleBefore, now time.Time) (store.Reception, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	r := f.recs[id]
	if r.Committed || !r.FirstSeen.Before(staleBefore) {
		return r, false, nil
	}
	r.Instance, r.FirstSeen = instance, now
	f.recs[id] = r
	return r, true, nil
}

func (f *fakeReceptions) update(id string, change func(*store.Reception)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.recs[id]
	change(&r)
	f.recs[id] = r
}

const window = 200 * time.Millisecond

func newClaimer(db receptionStore, now time.Time) *claimer {
	clock := func() time.Time { return now }
	return &claimer{db: db, window: window, now: clock, commits: new(atomic.Uint64), instance: "this",
		recent: expiring.New[string, answeredPacket](10, answeredTTL, clock)}
}

func copyFrom(id string, received time.Time) relay.Uplink {
	return relay.Uplink{ConnectorID: id, Received: received, RSSI: -80, Packet: []byte("packet")}
}

func TestClaim(t *testing.T) {
	t.Parallel()
	const id = "p-1-1"
	first := copyFrom("a", t0)
	tests := []struct {
		name      string
		setup     func(f *fakeReceptions)
		up        relay.Uplink
		mayCreate bool
		want      claimResult
		rejected  bool
		commits   uint64 // the load figure: the failed Create counts
	}{
		{"another connector's copy in the window", nil, copyFrom("b", t0.Add(window)), true, copyOf, false, 2},
		{"a copy after the window", nil, copyFrom("b", t0.Add(window+time.Millisecond)), true, 0, true, 2},
		{"a copy counted before", func(f *fakeReceptions) {
			f.update(id, func(r *store.Reception) {
				r.Hearers = append(r.Hearers, hearerOf(copyFrom("b", t0.Add(time.Millisecond))))
			})
		}, copyFrom("b", t0.Add(time.Millisecond)), true, done, false, 1},
		{"different bytes under the same counter", nil,
			relay.Uplink{ConnectorID: "b", Received: t0, Packet: []byte("forged")}, true, 0, true, 1},
		{"a second copy from a connector counted before", func(f *fakeReceptions) {
			f.update(id, func(r *store.Reception) {
				r.Hearers = append(r.Hearers, hearerOf(copyFrom("b", t0.Add(time.Millisecond))))
			})
		}, copyFrom("b", t0.Add(3*time.Millisecond)), true, done, false, 1},
		{"the owner's copy redelivered to its instance after a failure before its commit", nil, first, false, owner, false, 0},
		{"the owner's copy redelivered while its reply is scheduled", func(f *fakeReceptions) {
			f.update(id, func(r *store.Reception) { r.Committed = true })
		}, first, false, done, false, 0},
		{"the owner's copy redelivered after it finished", func(f *fakeReceptions) {
			f.update(id, func(r *store.Reception) { r.Committed, r.Done = true, true })
		}, first, false, done, false, 0},
		{"the owner's copy redelivered after its reply died", func(f *fakeReceptions) {
			f.update(id, func(r *store.Reception) { r.Committed, r.FirstSeen = true, t0.Add(-window-replyTimeout-time.Second) })
		}, first, false, resume, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeReceptions{recs: map[string]store.Reception{}}
			// The owner's instance claims the packet; the copy reaches
			// another instance, which knows it only from the record.
			if res, _, err := newClaimer(f, t0).claim(context.Background(), id, first, true); err != nil || res != owner {
				t.Fatalf("first copy: %v, %v", res, err)
			}
			if tc.setup != nil {
				tc.setup(f)
			}
			c := newClaimer(f, t0)
			res, _, err := c.claim(context.Background(), id, tc.up, tc.mayCreate)
			var rej *rejection
			if tc.rejected != errors.As(err, &rej) || (err != nil && !tc.rejected) {
				t.Fatalf("claim error %v, want rejected %v", err, tc.rejected)
			}
			if tc.rejected && rej.reason != "replay" {
				t.Fatalf("rejected as %q, want replay", rej.reason)
			}
			if !tc.rejected && res != tc.want {
				t.Fatalf("claim = %v, want %v", res, tc.want)
			}
			if got := c.commits.Load(); got != tc.commits {
				t.Fatalf("%d commits, want %d", got, tc.commits)
			}
		})
	}
}

func TestClaimJoinsInMemory(t *testing.T) {
	t.Parallel()
	const id = "h-00"
	f := &fakeReceptions{recs: map[string]store.Reception{}}
	c := newClaimer(f, t0)
	ctx := context.Background()
	if res, _, err := c.claim(ctx, id, copyFrom("a", t0), true); err != nil || res != owner {
		t.Fatalf("first copy: %v, %v", res, err)
	}
	held := c.hold(id)
	for _, up := range []relay.Uplink{copyFrom("b", t0.Add(time.Millisecond)), copyFrom("b", t0.Add(time.Millisecond)), copyFrom("a", t0)} {
		if res, _, err := c.claim(ctx, id, up, true); err != nil || res != copyOf {
			t.Fatalf("copy from %s: %v, %v", up.ConnectorID, res, err)
		}
	}
	if _, _, err := c.claim(ctx, id, copyFrom("c", t0.Add(time.Second)), true); err == nil {
		t.Fatal("a copy after the window joined")
	}
	if got := c.commits.Load(); f.writes != 1 || got != 1 {
		t.Fatalf("%d writes, %d commits; want only the claim: copies on the owner's instance join in memory", f.writes, got)
	}
	if got := c.joined(id); len(got) != 1 || got[0].ConnectorID != "b" {
		t.Fatalf("joined %+v, want b's copy once", got)
	}
	held.keep()
	held.release()
	if got := c.joined(id); len(got) != 1 {
		t.Fatal("a kept claim was released")
	}
	c.hold(id).release()
	if got := c.take(id); got != nil {
		t.Fatalf("a released claim still held %+v", got)
	}
}

// TestClaimLostRace: when another instance created the record first, the
// copies that joined this instance's claim in memory are added to it.
func TestClaimLostRace(t *testing.T) {
	t.Parallel()
	const id = "p-2-2"
	f := &fakeReceptions{recs: map[string]store.Reception{id: {
		PacketHash: store.PacketHash([]byte("packet")), Owner: "x", FirstReceived: t0, FirstSeen: t0,
		Hearers: []store.Hearer{hearerOf(copyFrom("x", t0))},
	}}}
	res, _, err := newClaimer(f, t0).claim(context.Background(), id, copyFrom("a", t0.Add(time.Millisecond)), true)
	if err != nil || res != copyOf {
		t.Fatalf("claim = %v, %v; want copyOf", res, err)
	}
	if r, _ := f.Reception(context.Background(), id); len(r.Hearers) != 2 || r.Owner != "x" {
		t.Fatalf("record after the lost race: %+v", r)
	}
}

// ticking is a clock that advances by step at every reading, so that a
// claimer's waits end at once.
func ticking(step time.Duration) func() time.Time {
	var mu sync.Mutex
	now := t0
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(step)
		return now
	}
}

// TestClaimRedeliveredElsewhere: Pub/Sub delivers the owner's copy again,
// to another instance, before the packet's transaction committed. Only
// one instance at a time processes a packet: the other waits for the
// commit, and takes the packet over only once the claim's lease ran out.
func TestClaimRedeliveredElsewhere(t *testing.T) {
	t.Parallel()
	const id = "p-3-3"
	first := copyFrom("a", t0)
	tests := []struct {
		name    string
		setup   func(f *fakeReceptions)
		during  func(f *fakeReceptions) // while the other instance waits
		want    claimResult
		busy    bool // errOwnerBusy: retried later
		commits uint64
	}{
		{"the first instance commits during the wait", nil,
			func(f *fakeReceptions) { f.update(id, func(r *store.Reception) { r.Committed = true }) }, done, false, 0},
		{"the first instance refuses the packet during the wait", nil,
			func(f *fakeReceptions) { f.update(id, func(r *store.Reception) { r.Committed, r.Done = true, true }) }, done, false, 0},
		{"the first instance never commits within the wait", nil, nil, 0, true, 0},
		{"the claim's lease ran out", func(f *fakeReceptions) {
			f.update(id, func(r *store.Reception) { r.FirstSeen = t0.Add(-claimLease - time.Second) })
		}, nil, owner, false, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeReceptions{recs: map[string]store.Reception{}}
			if res, _, err := newClaimer(f, t0).claim(context.Background(), id, first, true); err != nil || res != owner {
				t.Fatalf("first copy: %v, %v", res, err)
			}
			if tc.setup != nil {
				tc.setup(f)
			}
			other := &claimer{db: f, window: window, now: ticking(20 * time.Millisecond), commits: new(atomic.Uint64),
				instance: "other", ownerPoll: time.Millisecond}
			if tc.during != nil {
				time.AfterFunc(5*time.Millisecond, func() { tc.during(f) })
			}
			res, rec, err := other.claim(context.Background(), id, first, true)
			if tc.busy {
				if !errors.Is(err, errOwnerBusy) {
					t.Fatalf("claim = %v, %v; want errOwnerBusy", res, err)
				}
				return
			}
			if err != nil || res != tc.want {
				t.Fatalf("claim = %v, %v; want %v", res, err, tc.want)
			}
			// The failed Create counts as a commit too.
			if got := other.commits.Load(); got != tc.commits+1 {
				t.Fatalf("%d commits, want %d", got, tc.commits+1)
			}
			if res == owner && rec.Instance != "other" {
				t.Fatalf("taken over, but the record names instance %q", rec.Instance)
			}
		})
	}
}

// TestClaimTakeOverOnce: two redeliveries find the same expired claim at
// once; exactly one takes it over.
func TestClaimTakeOverOnce(t *testing.T) {
	t.Parallel()
	const id = "p-4-4"
	f := &fakeReceptions{recs: map[string]store.Reception{}}
	first := copyFrom("a", t0)
	if res, _, err := newClaimer(f, t0).claim(context.Background(), id, first, true); err != nil || res != owner {
		t.Fatalf("first copy: %v, %v", res, err)
	}
	f.update(id, func(r *store.Reception) { r.FirstSeen = t0.Add(-claimLease - time.Second) })
	var owners atomic.Int32
	var wg sync.WaitGroup
	for i := range 2 {
		c := &claimer{db: f, window: window, now: ticking(20 * time.Millisecond), commits: new(atomic.Uint64),
			instance: fmt.Sprint("other-", i), ownerPoll: time.Millisecond}
		wg.Go(func() {
			res, _, err := c.claim(context.Background(), id, first, true)
			switch {
			case err == nil && res == owner:
				owners.Add(1)
			case !errors.Is(err, errOwnerBusy):
				t.Errorf("the second redelivery: %v, %v; want it to wait for the first", res, err)
			}
		})
	}
	wg.Wait()
	if n := owners.Load(); n != 1 {
		t.Fatalf("%d owners, want exactly 1", n)
	}
}

// TestTransportCopies: a data packet's copies settle in memory, without a
// store: the first owns it, copies within the window join it, and once it
// is answered its redelivery and its late copies within the window are
// acknowledged quietly, while other bytes under its counter, a copy
// received after the window and a counter this instance never answered
// are replays.
func TestTransportCopies(t *testing.T) {
	t.Parallel()
	const id = "7/1"
	first := copyFrom("a", t0)
	c := newClaimer(nil, t0)
	if owns, err := c.own(id, first); !owns || err != nil {
		t.Fatalf("first copy: owns %v, %v", owns, err)
	}
	if owns, err := c.own(id, copyFrom("b", t0.Add(50*time.Millisecond))); owns || err != nil {
		t.Fatalf("a copy within the window: owns %v, %v", owns, err)
	}
	if owns, err := c.own(id, copyFrom("c", t0.Add(window+time.Millisecond))); owns || !isReject(err, "replay") {
		t.Fatalf("a copy after the window: owns %v, %v", owns, err)
	}
	if joined := c.take(id); len(joined) != 1 || joined[0].ConnectorID != "b" {
		t.Fatalf("joined %+v, want b's copy", joined)
	}
	c.answered(id, first)
	other := copyFrom("b", t0)
	other.Packet = []byte("other bytes")
	// Counter 2 was answered by another instance: the device's live
	// session names it as its last packet.
	elsewhere := &store.LiveSession{Last: &store.AcceptedPacket{Counter: 2, Hash: store.PacketHash(first.Packet), FirstReceived: t0}}
	tests := []struct {
		name      string
		id        string
		counter   uint64
		up        relay.Uplink
		live      *store.LiveSession
		replay    bool
		elsewhere bool
	}{
		{"the owner's copy redelivered", id, 1, first, nil, false, false},
		{"a copy that came after the answer, within the window", id, 1, copyFrom("b", t0.Add(100*time.Millisecond)), nil, false, false},
		{"a copy received after the window", id, 1, copyFrom("b", t0.Add(window+time.Millisecond)), nil, true, false},
		{"other bytes under the counter", id, 1, other, nil, true, false},
		{"a counter answered long ago", "7/2", 2, first, nil, true, false},
		{"a copy of the last packet, answered by another instance", "7/2", 2, copyFrom("b", t0.Add(50*time.Millisecond)), elsewhere, false, true},
		{"the last packet's counter, other bytes", "7/2", 2, other, elsewhere, true, false},
		{"the last packet's copy, after the window", "7/2", 2, copyFrom("b", t0.Add(window+time.Millisecond)), elsewhere, true, false},
		{"another counter than the last packet's", "7/3", 3, first, elsewhere, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := c.afterAnswer(tc.id, tc.up, tc.counter, tc.live)
			if tc.elsewhere != errors.Is(err, errAnsweredElsewhere) {
				t.Fatalf("afterAnswer: %v, want answered elsewhere %v", err, tc.elsewhere)
			}
			if tc.replay != isReject(err, "replay") || (!tc.replay && !tc.elsewhere && err != nil) {
				t.Fatalf("afterAnswer: %v, want replay %v", err, tc.replay)
			}
		})
	}
}

func isReject(err error, reason string) bool {
	var rej *rejection
	return errors.As(err, &rej) && rej.reason == reason
}
