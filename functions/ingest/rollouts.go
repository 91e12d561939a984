package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sealedsense/sealedsense/shared/anomaly"
	"github.com/sealedsense/sealedsense/shared/rollout"
	"github.com/sealedsense/sealedsense/shared/store"
)

// maxRolloutsPerSweep bounds the rollouts one sweep steps; the rest wait
// for the next minute.
const maxRolloutsPerSweep = 20

// stepRollouts moves each running rollout on: it judges the stage's
// health, steps the state (advance, pause, complete), and assigns the
// release to the devices a new stage reaches. One rollout failing does
// not hold the others up.
func (s *Service) stepRollouts(ctx context.Context) error {
	rs, err := s.db.RunningRollouts(ctx, maxRolloutsPerSweep)
	if err != nil {
		return err
	}
	var errs error
	for _, r := range rs {
		if err := s.stepRollout(ctx, r); err != nil {
			errs = errors.Join(errs, fmt.Errorf("rollout %s: %w", r.ID, err))
		}
	}
	return errs
}

func (s *Service) stepRollout(ctx context.Context, r store.Rollout) error {
	now := s.deps.Now()
	plan := r.PlanOf()
	if r.Stage < 0 || int(r.Stage) >= len(plan) {
		return fmt.Errorf("stage %d of a %d-stage plan", r.Stage, len(plan))
	}
	if r.AssignedThrough < r.Stage {
		return s.assignStage(ctx, r, plan, now)
	}
	kinds := make([]string, 0, len(anomaly.Kinds()))
	for _, k := range anomaly.Kinds() {
		kinds = append(kinds, string(k))
	}
	c, err := s.db.CountRollout(ctx, r, kinds)
	if err != nil {
		return err
	}
	v := judgeRollout(r, plan, c)
	next, trans := rollout.Step(r.StateOf(), plan, now, v, int(c.Refused))
	if len(trans) == 0 {
		return nil
	}
	return s.moveRollout(ctx, r, next, trans, now)
}

// judgeRollout is the stage's verdict: the assigned devices against the
// others (so a release that silences its devices counts against itself),
// and the stage goes on only once every assigned device installed it; a
// device that never does holds the stage until an operator advances it.
// A stage that selects no device has nothing to judge.
func judgeRollout(r store.Rollout, plan rollout.Plan, c store.RolloutCounts) rollout.Verdict {
	installed := rollout.Verdict{Outcome: rollout.OK, Reason: fmt.Sprintf("all %d devices installed the release", c.Assigned)}
	if c.Installed < c.Assigned {
		installed = rollout.Verdict{Outcome: rollout.Wait, Reason: fmt.Sprintf("%d of %d devices installed the release", c.Installed, c.Assigned)}
	}
	switch {
	case r.Selected == 0 || c.Assigned == 0:
		return rollout.Verdict{Outcome: rollout.OK, Reason: "the stage reaches no device that needs the release"}
	case c.Others == 0:
		return installed // every device is assigned: nothing to compare with
	}
	updated := rollout.Cohort{Devices: int(c.Assigned), Anomalous: int(c.AssignedAnomalous), AnomaliesByKind: map[anomaly.Kind]int{},
		Sent: c.AssignedAcked + c.AssignedFailed, Acked: c.AssignedAcked}
	baseline := rollout.Cohort{Devices: int(c.Others), Anomalous: int(c.OthersAnomalous), AnomaliesByKind: map[anomaly.Kind]int{},
		Sent: c.OthersAcked + c.OthersFailed, Acked: c.OthersAcked}
	for k, n := range c.AssignedByKind {
		updated.AnomaliesByKind[anomaly.Kind(k)] = int(n)
		baseline.AnomaliesByKind[anomaly.Kind(k)] = int(c.OthersByKind[k])
	}
	gate := rollout.DefaultGate().For(plan[r.Stage], int(r.Selected))
	gate.NoAcks = r.Target == store.ConnectorType
	v := rollout.Judge(updated, baseline, gate)
	if v.Outcome == rollout.OK {
		return installed
	}
	return v
}

// moveRollout stores the rollout's new state and logs its transitions;
// one nobody asked for (a pause) is logged for the alert.
func (s *Service) moveRollout(ctx context.Context, r store.Rollout, next rollout.State, trans []rollout.Transition, now time.Time) error {
	moved := r.WithState(next)
	last := trans[len(trans)-1]
	step := store.RolloutStep{At: now, From: string(trans[0].From), To: string(last.To), FromStage: int64(trans[0].FromStage), ToStage: int64(last.ToStage), Reason: last.Reason}
	withdrawn, err := s.db.MoveRollout(ctx, r.ID, r, moved, step)
	if err != nil {
		return err
	}
	if withdrawn > 0 {
		s.log.Info("rollout assignments withdrawn", "rolloutId", r.ID, "withdrawn", withdrawn)
	}
	for _, t := range trans {
		attrs := []any{"rolloutId", r.ID, "projectId", r.ProjectID, "target", r.Target, "releaseId", r.ReleaseID,
			"from", string(t.From), "to", string(t.To), "fromStage", t.FromStage, "toStage", t.ToStage, "reason", t.Reason}
		if t.Alert {
			s.log.Error("rollout paused", append(attrs, "alert", "rollout-paused")...)
			continue
		}
		s.log.Info("rollout moved", attrs...)
	}
	return nil
}

// assignStage assigns the release to every device the stage reaches and
// records the stage as assigned, with how many devices it selects.
func (s *Service) assignStage(ctx context.Context, r store.Rollout, plan rollout.Plan, now time.Time) error {
	rel, err := s.db.Release(ctx, r.ReleaseID)
	if err != nil {
		return err
	}
	devs, err := s.db.RolloutDevices(ctx, r.ProjectID, r.Target)
	if err != nil {
		return err
	}
	a := store.ReleaseAssignment{RolloutID: r.ID, ReleaseID: r.ReleaseID, Version: int64(rel.Version),
		Chunks: int64((rel.Size + uint32(rel.ChunkSize) - 1) / uint32(rel.ChunkSize)), At: now}
	selected, assigned := 0, 0
	for _, d := range devs {
		if !rollout.InStage(r.ID, d.ID, d.Labels, plan[r.Stage]) {
			continue
		}
		selected++
		ok, err := s.db.AssignRelease(ctx, d.ID, a)
		if errors.Is(err, store.ErrRolloutActive) {
			s.log.Warn("rollout skipped a device another rollout is updating", "rolloutId", r.ID, "deviceId", d.ID, "error", err.Error())
			continue
		}
		if err != nil {
			return err
		}
		if ok {
			assigned++
		}
	}
	if err := s.db.MarkStageAssigned(ctx, r.ID, r.Stage, int64(selected)); err != nil {
		return err
	}
	s.log.Info("rollout stage assigned", "rolloutId", r.ID, "stage", r.Stage, "selected", selected, "assigned", assigned, "releaseId", r.ReleaseID)
	return nil
}
