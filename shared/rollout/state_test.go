package rollout_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/rollout"
)

// t0 is an arbitrary start for every scenario.
var t0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

// at is a rollout in status at stage, which began at t0.
func at(status rollout.Status, stage int) rollout.State {
	st := rollout.State{Stage: stage, Status: status, StageSince: t0}
	if status == rollout.Paused {
		st.PausedReason = "looked odd"
	}
	return st
}

// tr is a transition without its reason, which cases check apart.
type tr struct {
	from, to           rollout.Status
	fromStage, toStage int
	alert              bool
}

// checkTransitions compares ts with want, and that each reason names
// every string of reasons.
func checkTransitions(t *testing.T, ts []rollout.Transition, want []tr, reasons []string) {
	t.Helper()
	var got []tr
	for _, x := range ts {
		got = append(got, tr{x.From, x.To, x.FromStage, x.ToStage, x.Alert})
		for _, r := range reasons {
			if !strings.Contains(x.Reason, r) {
				t.Errorf("transition reason %q does not name %q", x.Reason, r)
			}
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("transitions %+v, want %+v", got, want)
	}
}

func TestStart(t *testing.T) {
	st, x, err := rollout.Start(rollout.DefaultPlan(), t0)
	if want := (rollout.State{Stage: 0, Status: rollout.Running, StageSince: t0}); err != nil || st != want {
		t.Fatalf("Start = %+v, %v, want %+v", st, err, want)
	}
	checkTransitions(t, []rollout.Transition{x}, []tr{{"", rollout.Running, 0, 0, false}}, []string{"started"})
	for name, c := range map[string]struct {
		plan rollout.Plan
		now  time.Time
	}{"no plan": {nil, t0}, "invalid plan": {rollout.Plan{{Percent: 50}}, t0}, "zero time": {rollout.DefaultPlan(), time.Time{}}} {
		t.Run(name, func(t *testing.T) {
			if st, _, err := rollout.Start(c.plan, c.now); !errors.Is(err, rollout.ErrInvalid) {
				t.Errorf("Start(%+v, %v) = %+v, %v, want ErrInvalid", c.plan, c.now, st, err)
			}
		})
	}
}

func TestStep(t *testing.T) {
	plan := rollout.DefaultPlan() // soaks 1h, 6h, 0
	ok := rollout.Verdict{Outcome: rollout.OK, Reason: "fine"}
	fail := rollout.Verdict{Outcome: rollout.Fail, Reason: "ACK rate: 90%"}
	wait := rollout.Verdict{Outcome: rollout.Wait, Reason: "3 updated devices observed, 10 needed"}
	paused := func(st rollout.State, reason string) rollout.State {
		st.Status, st.PausedReason = rollout.Paused, reason
		return st
	}
	cases := []struct {
		name     string
		st       rollout.State
		plan     rollout.Plan
		now      time.Time
		v        rollout.Verdict
		refusals int
		want     rollout.State // PausedReason compared by reasons
		trs      []tr
		reasons  []string
	}{
		{"wait holds", at(rollout.Running, 0), plan, t0.Add(2 * time.Hour), wait, 0, at(rollout.Running, 0), nil, nil},
		{"no verdict holds", at(rollout.Running, 0), plan, t0.Add(2 * time.Hour), rollout.Verdict{}, 0, at(rollout.Running, 0), nil, nil},
		{"ok before the soak holds", at(rollout.Running, 0), plan, t0.Add(59 * time.Minute), ok, 0, at(rollout.Running, 0), nil, nil},
		{"ok before the stage began holds", at(rollout.Running, 2), plan, t0.Add(-time.Second), ok, 0, at(rollout.Running, 2), nil, nil},
		{"ok after the soak advances", at(rollout.Running, 0), plan, t0.Add(time.Hour), ok, 0,
			rollout.State{Stage: 1, Status: rollout.Running, StageSince: t0.Add(time.Hour)},
			[]tr{{rollout.Running, rollout.Running, 0, 1, false}}, []string{"stage 0 healthy for 1h0m0s", "fine"}},
		{"ok advances to the last stage", at(rollout.Running, 1), plan, t0.Add(7 * time.Hour), ok, 0,
			rollout.State{Stage: 2, Status: rollout.Running, StageSince: t0.Add(7 * time.Hour)},
			[]tr{{rollout.Running, rollout.Running, 1, 2, false}}, []string{"stage 1"}},
		{"ok at the last stage completes", at(rollout.Running, 2), plan, t0, ok, 0,
			rollout.State{Stage: 2, Status: rollout.Completed, StageSince: t0},
			[]tr{{rollout.Running, rollout.Completed, 2, 2, false}}, []string{"stage 2 healthy"}},
		{"fail pauses", at(rollout.Running, 1), plan, t0.Add(7 * time.Hour), fail, 0, paused(at(rollout.Running, 1), "unhealthy: ACK rate: 90%"),
			[]tr{{rollout.Running, rollout.Paused, 1, 1, true}}, []string{"unhealthy: ACK rate: 90%"}},
		{"a refusal pauses a healthy stage", at(rollout.Running, 0), plan, t0.Add(2 * time.Hour), ok, 1, paused(at(rollout.Running, 0), "1 devices refused the release or rolled back"),
			[]tr{{rollout.Running, rollout.Paused, 0, 0, true}}, []string{"1 devices refused"}},
		{"a refusal pauses a waiting stage", at(rollout.Running, 0), plan, t0, wait, 3, paused(at(rollout.Running, 0), "3 devices refused the release or rolled back"),
			[]tr{{rollout.Running, rollout.Paused, 0, 0, true}}, []string{"3 devices refused"}},
		{"refusals and a failure are both told", at(rollout.Running, 2), plan, t0, fail, 2,
			paused(at(rollout.Running, 2), "2 devices refused the release or rolled back; unhealthy: ACK rate: 90%"),
			[]tr{{rollout.Running, rollout.Paused, 2, 2, true}}, []string{"2 devices refused", "ACK rate"}},
		{"paused stays paused", at(rollout.Paused, 1), plan, t0.Add(time.Hour), ok, 5, at(rollout.Paused, 1), nil, nil},
		{"aborted stays aborted", at(rollout.Aborted, 1), plan, t0.Add(time.Hour), ok, 0, at(rollout.Aborted, 1), nil, nil},
		{"completed is not advanced", at(rollout.Completed, 2), plan, t0.Add(time.Hour), ok, 0, at(rollout.Completed, 2), nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ts := rollout.Step(tc.st, tc.plan, tc.now, tc.v, tc.refusals)
			if got != tc.want {
				t.Errorf("Step(%+v, at %v, %v, %d refusals) = %+v, want %+v", tc.st, tc.now, tc.v, tc.refusals, got, tc.want)
			}
			checkTransitions(t, ts, tc.trs, tc.reasons)
		})
	}
}

// TestStepDistrust: input Step cannot trust pauses a running rollout, with
// an alert naming the input, and never advances it.
func TestStepDistrust(t *testing.T) {
	plan := rollout.DefaultPlan()
	ok := rollout.Verdict{Outcome: rollout.OK}
	later := t0.Add(24 * time.Hour)
	cases := []struct {
		name     string
		st       rollout.State
		plan     rollout.Plan
		now      time.Time
		v        rollout.Verdict
		refusals int
		reason   string
	}{
		{"unknown status", rollout.State{Status: "DONE", StageSince: t0}, plan, later, ok, 0, `status "DONE"`},
		{"zero state", rollout.State{}, plan, later, ok, 0, `status ""`},
		{"stage past the plan", at(rollout.Running, 3), plan, later, ok, 0, "stage 3 of a plan of 3"},
		{"negative stage", at(rollout.Running, -1), plan, later, ok, 0, "stage -1"},
		{"no plan", at(rollout.Running, 0), nil, later, ok, 0, "plan of 0 stages"},
		{"invalid plan", at(rollout.Running, 0), rollout.Plan{{Percent: 10}}, later, ok, 0, "last stage at 10%"},
		{"zero stage start", rollout.State{Status: rollout.Running}, plan, later, ok, 0, "want real times"},
		{"zero now", at(rollout.Running, 0), plan, time.Time{}, ok, 0, "want real times"},
		{"negative refusals", at(rollout.Running, 0), plan, later, ok, -1, "-1 refusals"},
		{"unknown verdict", at(rollout.Running, 0), plan, later, rollout.Verdict{Outcome: 7}, 0, "Outcome(7)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ts := rollout.Step(tc.st, tc.plan, tc.now, tc.v, tc.refusals)
			want := tc.st
			want.Status, want.PausedReason = rollout.Paused, got.PausedReason
			if got != want || !strings.Contains(got.PausedReason, tc.reason) {
				t.Errorf("Step(%+v, %v, %v, %d) = %+v, want %+v paused naming %q", tc.st, tc.now, tc.v, tc.refusals, got, want, tc.reason)
			}
			checkTransitions(t, ts, []tr{{tc.st.Status, rollout.Paused, tc.st.Stage, tc.st.Stage, true}}, []string{tc.reason})
		})
	}
}

// TestOperator tries every operator action on every status: the allowed
// ones move the rollout, the others are refused with ErrTransition and
// leave it as it was.
func TestOperator(t *testing.T) {
	plan := rollout.DefaultPlan()
	now := t0.Add(3 * time.Hour)
	type action func(rollout.State) (rollout.State, rollout.Transition, error)
	actions := map[string]action{
		"pause": func(st rollout.State) (rollout.State, rollout.Transition, error) { return rollout.Pause(st, "") },
		"resume": func(st rollout.State) (rollout.State, rollout.Transition, error) {
			return rollout.Resume(st, plan, now)
		},
		"advance": func(st rollout.State) (rollout.State, rollout.Transition, error) {
			return rollout.Advance(st, plan, now, "")
		},
		"abort": func(st rollout.State) (rollout.State, rollout.Transition, error) { return rollout.Abort(st, "") },
	}
	running, paused := at(rollout.Running, 1), at(rollout.Paused, 1)
	allowed := map[string]struct {
		want    rollout.State
		reason  string
		toStage int
	}{
		"pause RUNNING":   {rollout.State{Stage: 1, Status: rollout.Paused, PausedReason: "paused by an operator", StageSince: t0}, "paused by an operator", 1},
		"resume PAUSED":   {rollout.State{Stage: 1, Status: rollout.Running, StageSince: now}, "resumed by an operator", 1},
		"advance RUNNING": {rollout.State{Stage: 2, Status: rollout.Running, StageSince: now}, "advanced by an operator", 2},
		"abort RUNNING":   {rollout.State{Stage: 1, Status: rollout.Aborted, StageSince: t0}, "aborted by an operator", 1},
		"abort PAUSED":    {rollout.State{Stage: 1, Status: rollout.Aborted, PausedReason: "looked odd", StageSince: t0}, "aborted by an operator", 1},
	}
	for name, act := range actions {
		for _, st := range []rollout.State{running, paused, at(rollout.Aborted, 1), at(rollout.Completed, 2)} {
			key := fmt.Sprintf("%s %s", name, st.Status)
			t.Run(key, func(t *testing.T) {
				got, x, err := act(st)
				w, ok := allowed[key]
				if !ok {
					if !errors.Is(err, rollout.ErrTransition) || got != st || !strings.Contains(err.Error(), string(st.Status)) {
						t.Errorf("%s = %+v, %v, want %+v unchanged and ErrTransition naming %s", key, got, err, st, st.Status)
					}
					return
				}
				if err != nil || got != w.want {
					t.Fatalf("%s = %+v, %v, want %+v", key, got, err, w.want)
				}
				checkTransitions(t, []rollout.Transition{x}, []tr{{st.Status, w.want.Status, st.Stage, w.toStage, false}}, []string{w.reason})
			})
		}
	}
}

// TestOperatorInput: reasons are kept, the last stage advances to
// Completed, and invalid input is refused with ErrInvalid, leaving the
// rollout as it was.
func TestOperatorInput(t *testing.T) {
	plan := rollout.DefaultPlan()
	now := t0.Add(time.Hour)
	long := strings.Repeat("x", rollout.MaxReason+1)
	running, paused := at(rollout.Running, 1), at(rollout.Paused, 1)
	cases := []struct {
		name   string
		st     rollout.State
		do     func(rollout.State) (rollout.State, rollout.Transition, error)
		want   rollout.State // zero when refused
		reason string        // named by the transition, or by the error
	}{
		{"pause with a reason", running, func(s rollout.State) (rollout.State, rollout.Transition, error) {
			return rollout.Pause(s, "customer call")
		},
			rollout.State{Stage: 1, Status: rollout.Paused, PausedReason: "customer call", StageSince: t0}, "customer call"},
		{"abort with a reason", paused, func(s rollout.State) (rollout.State, rollout.Transition, error) { return rollout.Abort(s, "bad build") },
			rollout.State{Stage: 1, Status: rollout.Aborted, PausedReason: "looked odd", StageSince: t0}, "bad build"},
		{"advance the last stage", at(rollout.Running, 2), func(s rollout.State) (rollout.State, rollout.Transition, error) {
			return rollout.Advance(s, plan, now, "every device is updated")
		}, rollout.State{Stage: 2, Status: rollout.Completed, StageSince: t0}, "every device is updated"},
		{"pause with a long reason", running, func(s rollout.State) (rollout.State, rollout.Transition, error) { return rollout.Pause(s, long) }, rollout.State{}, "reason of 1025 bytes"},
		{"abort with a reason not UTF-8", running, func(s rollout.State) (rollout.State, rollout.Transition, error) { return rollout.Abort(s, "\xff") }, rollout.State{}, "UTF-8"},
		{"advance with a long reason", running, func(s rollout.State) (rollout.State, rollout.Transition, error) {
			return rollout.Advance(s, plan, now, long)
		}, rollout.State{}, "reason"},
		{"pause an unknown status", rollout.State{Status: "DONE"}, func(s rollout.State) (rollout.State, rollout.Transition, error) { return rollout.Pause(s, "") }, rollout.State{}, `status "DONE"`},
		{"abort a negative stage", at(rollout.Running, -1), func(s rollout.State) (rollout.State, rollout.Transition, error) { return rollout.Abort(s, "") }, rollout.State{}, "stage -1"},
		{"resume past the plan", at(rollout.Paused, 3), func(s rollout.State) (rollout.State, rollout.Transition, error) { return rollout.Resume(s, plan, now) }, rollout.State{}, "stage 3 of a plan of 3"},
		{"resume with an invalid plan", paused, func(s rollout.State) (rollout.State, rollout.Transition, error) { return rollout.Resume(s, nil, now) }, rollout.State{}, "plan of 0"},
		{"resume at the zero time", paused, func(s rollout.State) (rollout.State, rollout.Transition, error) {
			return rollout.Resume(s, plan, time.Time{})
		}, rollout.State{}, "real times"},
		{"advance past the plan", at(rollout.Running, 3), func(s rollout.State) (rollout.State, rollout.Transition, error) {
			return rollout.Advance(s, plan, now, "")
		}, rollout.State{}, "stage 3"},
		{"advance at the zero time", running, func(s rollout.State) (rollout.State, rollout.Transition, error) {
			return rollout.Advance(s, plan, time.Time{}, "")
		}, rollout.State{}, "real times"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, x, err := tc.do(tc.st)
			if tc.want == (rollout.State{}) {
				if !errors.Is(err, rollout.ErrInvalid) || got != tc.st || !strings.Contains(err.Error(), tc.reason) {
					t.Errorf("got %+v, %v, want %+v unchanged and ErrInvalid naming %q", got, err, tc.st, tc.reason)
				}
				return
			}
			if err != nil || got != tc.want || x.Reason != tc.reason {
				t.Errorf("got %+v, %v, reason %q, want %+v, reason %q", got, err, x.Reason, tc.want, tc.reason)
			}
		})
	}
}

// TestRollout runs a rollout through its plan as a sweep would, with a
// pause and a resume that restarts the stage's soak.
func TestRollout(t *testing.T) {
	plan := rollout.DefaultPlan()
	ok := rollout.Verdict{Outcome: rollout.OK, Reason: "fine"}
	st, _, err := rollout.Start(plan, t0)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		after    time.Duration
		v        rollout.Verdict
		refusals int
		want     string // stage/status after the step
	}{
		{30 * time.Minute, ok, 0, "0 RUNNING"},
		{time.Hour, ok, 0, "1 RUNNING"},
		{2 * time.Hour, ok, 1, "1 PAUSED"},
		{0, rollout.Verdict{}, 0, "resume"},
		{8 * time.Hour, ok, 0, "1 RUNNING"}, // 7h into the stage, but 5h59m after the resume
		{8*time.Hour + time.Minute, ok, 0, "2 RUNNING"},
		{9 * time.Hour, rollout.Verdict{}, 0, "2 RUNNING"},
		{9 * time.Hour, ok, 0, "2 COMPLETED"},
		{10 * time.Hour, ok, 3, "2 COMPLETED"},
	}
	for i, s := range steps {
		now := t0.Add(s.after)
		if s.want == "resume" {
			if st, _, err = rollout.Resume(st, plan, t0.Add(2*time.Hour+time.Minute)); err != nil {
				t.Fatalf("step %d: resume: %v", i, err)
			}
			continue
		}
		st, _ = rollout.Step(st, plan, now, s.v, s.refusals)
		if got := fmt.Sprint(st.Stage, " ", st.Status); got != s.want {
			t.Fatalf("step %d at +%v: %s (%+v), want %s", i, s.after, got, st, s.want)
		}
	}
}
