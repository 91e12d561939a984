// Package operator is the operators' side of software rollouts: start one,
// move it (pause, resume, advance, abort) and read it, for the operators'
// command and for the internal Operator function, whose only callers are
// the operators Cloud Run's IAM lets in. Customers never reach it: they see
// their devices' softwareUpdateStatus events and reported softwareVersion.
package operator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sealedsense/sealedsense/shared/rollout"
	"github.com/sealedsense/sealedsense/shared/store"
)

// Rollouts starts and moves rollouts; the ingest sweep does the rest
// (assigning stages, judging them, pausing on a refusal).
type Rollouts struct {
	DB  *store.DB
	Now func() time.Time
	Log *slog.Logger
}

// Actions an operator may take on a rollout.
const (
	Pause   = "pause"
	Resume  = "resume"
	Advance = "advance"
	Abort   = "abort"
)

// ErrInvalid is a request the rollout rules refuse; its message says why.
var ErrInvalid = errors.New("operator: invalid request")

// Start creates a rollout of release to project's devices of its target,
// staged by plan; the ingest sweep assigns its first stage within a
// minute. One active rollout per project and target: store.ErrRolloutActive.
func (o *Rollouts) Start(ctx context.Context, project, releaseID string, plan rollout.Plan, actor string) (store.Rollout, error) {
	if project == "" || releaseID == "" {
		return store.Rollout{}, fmt.Errorf("%w: a project and a release are required", ErrInvalid)
	}
	if err := plan.Validate(); err != nil {
		return store.Rollout{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	rel, err := o.DB.Release(ctx, releaseID)
	if err != nil {
		return store.Rollout{}, fmt.Errorf("rollout start: %w", err)
	}
	now := o.Now().UTC()
	st, _, err := rollout.Start(plan, now)
	if err != nil {
		return store.Rollout{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	r := store.Rollout{ProjectID: project, Target: rel.Target, ReleaseID: rel.ID, Version: int64(rel.Version), Plan: store.StagesOf(plan),
		Stage: int64(st.Stage), Status: string(st.Status), StageSince: st.StageSince, Created: now, Updated: now}
	id, err := o.DB.CreateRollout(ctx, r)
	if err != nil {
		return store.Rollout{}, err
	}
	r.ID, r.AssignedThrough = id, -1
	o.Log.Info("rollout started", "rolloutId", id, "projectId", project, "target", rel.Target, "releaseId", rel.ID, "version", rel.Version, "operator", actor)
	return r, nil
}

// Move applies an operator's action to rollout id, recording who and why
// in its steps. A resume assigns the stage again: the pause withdrew the
// devices still fetching.
func (o *Rollouts) Move(ctx context.Context, id, action, actor, reason string) (store.Rollout, error) {
	r, err := o.DB.Rollout(ctx, id)
	if err != nil {
		return r, err
	}
	plan, st, now := r.PlanOf(), r.StateOf(), o.Now().UTC()
	var next rollout.State
	var t rollout.Transition
	switch action {
	case Pause:
		next, t, err = rollout.Pause(st, reason)
	case Resume:
		next, t, err = rollout.Resume(st, plan, now)
	case Advance:
		next, t, err = rollout.Advance(st, plan, now, reason)
	case Abort:
		next, t, err = rollout.Abort(st, reason)
	default:
		return r, fmt.Errorf("%w: unknown action %q", ErrInvalid, action)
	}
	if err != nil {
		return r, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	moved := r.WithState(next)
	step := store.RolloutStep{At: now, From: string(t.From), To: string(t.To), FromStage: int64(t.FromStage), ToStage: int64(t.ToStage),
		Reason: fmt.Sprintf("operator %s: %s", actor, t.Reason)}
	withdrawn, err := o.DB.MoveRollout(ctx, r.ID, r, moved, step)
	if err != nil {
		return r, err
	}
	if next.Status == rollout.Running {
		if err := o.DB.ReassignStage(ctx, r.ID, moved.Stage); err != nil {
			return moved, err
		}
	}
	moved.Steps = append(moved.Steps, step)
	o.Log.Info("rollout moved", "rolloutId", r.ID, "action", action, "from", string(t.From), "to", string(t.To), "stage", next.Stage,
		"withdrawn", withdrawn, "operator", actor)
	return moved, nil
}

// View is a rollout as operators read it.
type View struct {
	RolloutID    string `json:"rolloutId"`
	ProjectID    string `json:"projectId"`
	Target       string `json:"target"`
	ReleaseID    string `json:"releaseId"`
	Version      int64  `json:"version"`
	Stage        int64  `json:"stage"`
	Stages       int    `json:"stages"`
	Status       string `json:"status"`
	PausedReason string `json:"pausedReason,omitempty"`
	Steps        []Step `json:"steps"`
}

// Step is one move of a rollout.
type Step struct {
	At        time.Time `json:"at"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	FromStage int64     `json:"fromStage"`
	ToStage   int64     `json:"toStage"`
	Reason    string    `json:"reason"`
}

// ViewOf is r's view.
func ViewOf(r store.Rollout) View {
	v := View{RolloutID: r.ID, ProjectID: r.ProjectID, Target: r.Target, ReleaseID: r.ReleaseID, Version: r.Version,
		Stage: r.Stage, Stages: len(r.Plan), Status: r.Status, PausedReason: r.PausedReason, Steps: []Step{}}
	for _, s := range r.Steps {
		v.Steps = append(v.Steps, Step(s))
	}
	return v
}
