package rollout

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Status is where a rollout stands. Aborted and Completed are final.
type Status string

// Statuses, as stored.
const (
	Running   Status = "RUNNING"
	Paused    Status = "PAUSED"
	Aborted   Status = "ABORTED"
	Completed Status = "COMPLETED"
)

// MaxReason bounds an operator's reason, in bytes.
const MaxReason = 1024

// ErrTransition is wrapped by the error of an operator action the
// rollout's status does not allow, such as resuming an aborted rollout.
var ErrTransition = errors.New("rollout: not allowed")

// State is a rollout's position in its plan.
type State struct {
	// Stage is the index of the current stage in the plan.
	Stage  int
	Status Status
	// PausedReason says why the rollout is paused; an abort leaves it as
	// it was, so an aborted rollout still shows why it had paused.
	PausedReason string
	// StageSince is when the stage began or the rollout last resumed: its
	// soak counts from then, as health seen before a pause was not enough.
	StageSince time.Time
}

// Transition is a change of state, to log; Alert marks one nobody asked
// for (an automatic pause), which someone must hear about.
type Transition struct {
	From, To           Status
	FromStage, ToStage int
	Reason             string
	Alert              bool
}

func transition(from, to State, reason string, alert bool) Transition {
	return Transition{From: from.Status, To: to.Status, FromStage: from.Stage, ToStage: to.Stage, Reason: reason, Alert: alert}
}

// Start is a rollout of plan beginning at its first stage at now.
func Start(plan Plan, now time.Time) (State, Transition, error) {
	if err := plan.Validate(); err != nil {
		return State{}, Transition{}, err
	}
	if now.IsZero() {
		return State{}, Transition{}, invalid("start at the zero time")
	}
	st := State{Stage: 0, Status: Running, StageSince: now}
	return st, transition(State{}, st, "started", false), nil
}

// Step moves a running rollout on what its stage showed since the last
// step: any device that refused the release or rolled back, or a Fail
// verdict, pauses it; a Wait keeps it where it is; an OK advances it once
// the stage has soaked, to the next stage or, from the last, to Completed.
// It advances one stage at a time, as a verdict judges one stage. Input it
// cannot trust pauses the rollout too, never advances it. A rollout that
// is not running is left as it is.
func Step(st State, plan Plan, now time.Time, v Verdict, refusals int) (State, []Transition) {
	switch st.Status {
	case Paused, Aborted, Completed:
		return st, nil
	case Running:
	default:
		return autoPause(st, fmt.Sprintf("cannot step: status %q", st.Status))
	}
	if err := checkStep(st, plan, now, v, refusals); err != nil {
		return autoPause(st, "cannot step: "+err.Error())
	}
	var why []string
	if refusals > 0 {
		why = append(why, fmt.Sprintf("%d devices refused the release or rolled back", refusals))
	}
	if v.Outcome == Fail {
		why = append(why, "unhealthy: "+v.Reason)
	}
	if len(why) > 0 {
		return autoPause(st, strings.Join(why, "; "))
	}
	soaked := now.Sub(st.StageSince)
	if v.Outcome != OK || soaked < plan[st.Stage].Soak {
		return st, nil
	}
	next, t := advance(st, plan, now, fmt.Sprintf("stage %d healthy for %v: %s", st.Stage, soaked, v.Reason))
	return next, []Transition{t}
}

func checkStep(st State, plan Plan, now time.Time, v Verdict, refusals int) error {
	if err := checkPosition(st, plan, now); err != nil {
		return err
	}
	if refusals < 0 {
		return invalid("%d refusals", refusals)
	}
	if v.Outcome > Fail {
		return invalid("verdict %v", v.Outcome)
	}
	return nil
}

// checkPosition says why st cannot run in plan at now, or nil.
func checkPosition(st State, plan Plan, now time.Time) error {
	if err := plan.Validate(); err != nil {
		return err
	}
	if st.Stage < 0 || st.Stage >= len(plan) {
		return invalid("stage %d of a plan of %d", st.Stage, len(plan))
	}
	if st.StageSince.IsZero() || now.IsZero() {
		return invalid("stage since %v, now %v: want real times", st.StageSince, now)
	}
	return nil
}

func autoPause(st State, reason string) (State, []Transition) {
	next := st
	next.Status, next.PausedReason = Paused, reason
	return next, []Transition{transition(st, next, reason, true)}
}

// advance moves st to the next stage of plan, or completes it from the
// last.
func advance(st State, plan Plan, now time.Time, reason string) (State, Transition) {
	next := st
	if st.Stage == len(plan)-1 {
		next.Status = Completed
	} else {
		next.Stage, next.StageSince = st.Stage+1, now
	}
	return next, transition(st, next, reason, false)
}
