package rollout

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// An operator may pause a running rollout, resume a paused one, advance a
// running one past its gate (a stage that selects no device, or no device
// left to compare with), and abort one that is running or paused. Each
// action returns the transition to log, or an error wrapping ErrTransition
// when the status does not allow it, ErrInvalid when an input is invalid.

// Pause holds a running rollout where it is.
func Pause(st State, reason string) (State, Transition, error) {
	if err := allowed("pause", st, reason, Running); err != nil {
		return st, Transition{}, err
	}
	next := st
	next.Status, next.PausedReason = Paused, orDefault(reason, "paused by an operator")
	return next, transition(st, next, next.PausedReason, false), nil
}

// Resume runs a paused rollout again; its stage soaks anew from now.
func Resume(st State, plan Plan, now time.Time) (State, Transition, error) {
	if err := allowed("resume", st, "", Paused); err != nil {
		return st, Transition{}, err
	}
	next := st
	next.Status, next.PausedReason, next.StageSince = Running, "", now
	if err := checkPosition(next, plan, now); err != nil {
		return st, Transition{}, fmt.Errorf("resume: %w", err)
	}
	return next, transition(st, next, "resumed by an operator", false), nil
}

// Advance moves a running rollout to its next stage, or completes it from
// the last, whatever its soak and health.
func Advance(st State, plan Plan, now time.Time, reason string) (State, Transition, error) {
	if err := allowed("advance", st, reason, Running); err != nil {
		return st, Transition{}, err
	}
	if err := checkPosition(st, plan, now); err != nil {
		return st, Transition{}, fmt.Errorf("advance: %w", err)
	}
	next, t := advance(st, plan, now, orDefault(reason, "advanced by an operator"))
	return next, t, nil
}

// Abort ends a running or paused rollout for good.
func Abort(st State, reason string) (State, Transition, error) {
	if err := allowed("abort", st, reason, Running, Paused); err != nil {
		return st, Transition{}, err
	}
	next := st
	next.Status = Aborted
	return next, transition(st, next, orDefault(reason, "aborted by an operator"), false), nil
}

// allowed says why action cannot apply to st with reason, or nil when st
// has one of the statuses from.
func allowed(action string, st State, reason string, from ...Status) error {
	if len(reason) > MaxReason || !utf8.ValidString(reason) {
		return invalid("%s: a reason of %d bytes, want at most %d of UTF-8", action, len(reason), MaxReason)
	}
	switch st.Status {
	case Running, Paused, Aborted, Completed:
	default:
		return invalid("%s: status %q", action, st.Status)
	}
	if st.Stage < 0 {
		return invalid("%s: stage %d", action, st.Stage)
	}
	for _, s := range from {
		if st.Status == s {
			return nil
		}
	}
	return fmt.Errorf("%w: cannot %s a rollout that is %s", ErrTransition, action, st.Status)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
