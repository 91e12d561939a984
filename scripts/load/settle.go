package main

import (
	"fmt"
	"time"
)

// The warm-up leaves a backlog behind: every sensor's handshake, and
// readings taken while the emulators were cold. Measuring while the
// pipeline still drains it reports more stored than offered and the
// latency of old readings, so the window waits until the backlog has
// stopped shrinking.
const (
	settleEvery = 10 * time.Second
	settleLimit = 5 * time.Minute
)

// backlogger is what settle watches: the sensors' unacknowledged
// readings.
type backlogger interface{ Backlog() int }

// settled reports whether a backlog that went from prev to now, with
// steady the backlog of a pipeline that keeps up, has finished draining:
// it is at the steady level, or it no longer shrinks by more than a
// twentieth per check (a pipeline past capacity never drains, and waiting
// for it would not change what is measured).
func settled(prev, now, steady int) bool {
	return now <= steady || now >= prev-prev/20
}

// settle waits until the sensors' backlog is settled, at most
// settleLimit, and says how it ended. steady is a keeping-up pipeline's
// backlog: each sensor holds about two packets' readings, the one it is
// filling and the one awaiting its ACK.
func settle(sim backlogger, prog *progress, sensors, batch int) string {
	prog.phase("draining the warm-up's backlog")
	steady := 2 * sensors * batch
	prev := sim.Backlog()
	start := time.Now()
	for time.Since(start) < settleLimit {
		if prev <= steady {
			break
		}
		time.Sleep(settleEvery)
		now := sim.Backlog()
		if settled(prev, now, steady) {
			prev = now
			break
		}
		prev = now
	}
	return fmt.Sprintf("backlog %d readings after %v of draining (steady level %d)", prev, time.Since(start).Round(time.Second), steady)
}
