package stream

import (
	"context"
	"sync"
	"time"

	"github.com/sealedsense/sealedsense/functions/api/stream/cursor"
	"github.com/sealedsense/sealedsense/functions/api/stream/param"
)

// sub is a stream attached to a feed.
type sub struct {
	ch      chan *item    // bounded: Buffer events
	dropped chan struct{} // closed when the feed gives up on a full buffer
	filter  param.Filter
	after   cursor.Position // the feed skips events at or before it
}

// feed follows one project's events on this instance and hands them to
// the project's streams here.
type feed struct {
	s       *Server
	project string
	wake    chan struct{} // the listener's doorbell; holds at most one ring
	cancel  context.CancelFunc

	// Guarded by s.mu: how many streams use the feed (attached or
	// catching up), and since when none has.
	users     int
	idleSince time.Time

	mu sync.Mutex
	// pos: every event at or before it has been handed out.
	pos cursor.Position
	// ring holds the recent events: all of those in (ringStart, pos].
	ring      []*item
	ringStart cursor.Position
	subs      map[*sub]struct{}
}

// acquire returns the project's feed, started if need be, counted as used
// until release.
// After Close it returns nil: no feed may start once Close waits for them.
func (s *Server) acquire(project string) *feed {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return nil
	}
	f := s.feeds[project]
	if f == nil {
		ctx, cancel := context.WithCancel(s.ctx)
		// The feed starts at "everything stored SettleLag ago": a live
		// stream begins there, and anything older is a resume's to read.
		// Positions are compared with Firestore's clock: the real one,
		// never the injectable Now, which only dates pings and resumes.
		start := cursor.Position{At: time.Now().Add(-s.cfg.SettleLag).Truncate(time.Microsecond)}
		f = &feed{s: s, project: project, wake: make(chan struct{}, 1), cancel: cancel,
			pos: start, ringStart: start, subs: map[*sub]struct{}{}}
		s.feeds[project] = f
		s.feedWG.Add(2)
		go func() { defer s.feedWG.Done(); f.run(ctx) }()
		go func() { defer s.feedWG.Done(); f.listen(ctx) }()
	}
	f.users++
	return f
}

func (s *Server) release(f *feed) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.users--; f.users == 0 {
		f.idleSince = time.Now()
	}
}

// stopIfIdle ends the feed if no stream has used it for FeedIdle.
func (f *feed) stopIfIdle() bool {
	s := f.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.users > 0 || time.Since(f.idleSince) < s.cfg.FeedIdle {
		return false
	}
	delete(s.feeds, f.project)
	f.cancel()
	return true
}

// listen rings the doorbell whenever the project's newest event changes.
// It reads no events itself: the poll that follows does, in order, so a
// listener that misses a change or fails costs latency, never an event.
func (f *feed) listen(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		err := f.s.src.WatchNewestEvent(ctx, f.project, func() {
			backoff = time.Second
			select {
			case f.wake <- struct{}{}:
			default:
			}
		})
		if ctx.Err() == nil {
			f.s.log.Warn("stream: listener failed; polling until it is back",
				"project", f.project, "error", err.Error(), "pollInterval", f.s.cfg.PollInterval.String())
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// run polls until the feed stops.
func (f *feed) run(ctx context.Context) {
	backoff := time.Second
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			f.closeSubs()
			return
		case <-f.wake:
		case <-timer.C:
		}
		if f.stopIfIdle() {
			f.closeSubs()
			return
		}
		next, err := f.poll(ctx)
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			f.s.log.Error("stream: poll failed; retrying", "project", f.project, "error", err.Error())
			next = backoff
			backoff = min(2*backoff, 30*time.Second)
		} else {
			backoff = time.Second
		}
		if next > 0 {
			// At a high event rate the doorbell rings all the time; a
			// short gap between polls batches events and bounds the
			// re-reading of unsettled ones, at a small cost in latency.
			select {
			case <-ctx.Done():
			case <-time.After(minPollGap):
			}
			next = max(next-minPollGap, 0)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
	}
}

// minPollGap spaces a feed's polls, except after a full page.
const minPollGap = 100 * time.Millisecond

// closeSubs lets attached streams see the end of the feed: its context is
// the server's, so they end on the server's end as well.
func (f *feed) closeSubs() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.subs)
}

// poll reads the events after the feed's position, hands out those that
// have settled, and says when to poll again.
func (f *feed) poll(ctx context.Context) (time.Duration, error) {
	s := f.s
	s.polls.Add(1)
	f.mu.Lock()
	from := f.pos
	needDevices := false
	for sb := range f.subs {
		needDevices = needDevices || sb.filter.NeedsDevice()
	}
	f.mu.Unlock()

	start := time.Now()
	items, err := s.page(ctx, f.project, from, cursor.Position{}, s.cfg.PageSize)
	if err != nil {
		return 0, err
	}
	horizon := start.Add(-s.cfg.SettleLag)
	settled := 0
	for settled < len(items) && items[settled].pos.At.Before(horizon) {
		settled++
	}
	if needDevices && settled > 0 {
		if err := s.resolve(ctx, f.project, items[:settled]); err != nil {
			return 0, err
		}
	}
	next := s.cfg.PollInterval
	to := from
	if settled > 0 {
		to = items[settled-1].pos
	}
	switch {
	case settled == len(items) && len(items) == s.cfg.PageSize:
		next = 0 // a full page: there may be more right behind it
	case settled < len(items):
		// The query returned everything visible before the horizon, in
		// order, before the first unsettled event.
		to = to.Max(cursor.Position{At: horizon.Truncate(time.Microsecond)})
		next = max(time.Until(items[settled].pos.At.Add(s.cfg.SettleLag)), 0) + time.Millisecond
	default:
		to = to.Max(cursor.Position{At: horizon.Truncate(time.Microsecond)})
	}
	f.publish(items[:settled], to)
	return next, nil
}

// publish hands settled events to the attached streams and moves the
// position to to.
func (f *feed) publish(items []*item, to cursor.Position) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, it := range items {
		for sb := range f.subs {
			f.offer(sb, it)
		}
	}
	f.ring = append(f.ring, items...)
	if cut := len(f.ring) - f.s.cfg.RingSize; cut > 0 {
		f.ringStart = f.ring[cut-1].pos
		n := copy(f.ring, f.ring[cut:])
		clear(f.ring[n:])
		f.ring = f.ring[:n]
	}
	f.pos = f.pos.Max(to)
}

// offer gives it to sb if sb may want it. Matching here is only a first
// cut (what the event and a known device decide); the stream decides the
// rest. A full buffer drops the stream: waiting for it would hold up every
// other stream of the project and grow memory. Called with f.mu held.
func (f *feed) offer(sb *sub, it *item) {
	if it.pos.Compare(sb.after) <= 0 || !maybe(sb.filter, it) {
		return
	}
	select {
	case sb.ch <- it:
		f.s.delivered.Add(1)
	default:
		close(sb.dropped)
		delete(f.subs, sb)
		f.s.dropped.Add(1)
	}
}

// maybe is the part of a filter that can be decided without reading
// anything.
func maybe(fl param.Filter, it *item) bool {
	if !fl.MatchEvent(it.deviceID, it.eventType) {
		return false
	}
	if d := it.dev.Load(); d != nil && fl.NeedsDevice() {
		return fl.MatchDevice(d.typ, d.labels)
	}
	return true
}

// attach subscribes sb after position cur when the feed can take over
// from there with no gap: cur is at or past the feed's position, or the
// ring still holds every event after cur and they fit sb's buffer. If it
// cannot, it returns false and the position to catch up to first.
func (f *feed) attach(sb *sub, cur cursor.Position) (bool, cursor.Position) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cur.IsZero() || cur.Compare(f.pos) >= 0 {
		sb.after = cur.Max(f.pos)
		f.subs[sb] = struct{}{}
		return true, sb.after
	}
	if cur.Compare(f.ringStart) < 0 {
		return false, f.pos
	}
	var backlog []*item
	for _, it := range f.ring {
		if it.pos.Compare(cur) > 0 && maybe(sb.filter, it) {
			backlog = append(backlog, it)
		}
	}
	if len(backlog) > cap(sb.ch) {
		return false, f.pos
	}
	for _, it := range backlog {
		sb.ch <- it
	}
	sb.after = f.pos
	f.subs[sb] = struct{}{}
	return true, cur
}

// detach unsubscribes sb.
func (f *feed) detach(sb *sub) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.subs, sb)
}

// token is the position a ping of sb reports: past the feed's position
// when sb has nothing waiting, since every event up to there has then
// been written or did not match.
func (f *feed) token(sb *sub, written cursor.Position) cursor.Position {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.subs[sb]; ok && len(sb.ch) == 0 {
		return written.Max(f.pos)
	}
	return written
}
