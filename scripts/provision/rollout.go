package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/rollout"
	"github.com/sealedsense/sealedsense/shared/store"
)

// rolloutCmd starts a staged rollout of a release to a project's devices
// of its target type, or moves one: pause, resume, advance, abort, or
// shows it. Rollouts are an operator's action: customers see only their
// devices' softwareUpdateStatus events and reported softwareVersion.
func rolloutCmd(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer, log *slog.Logger) error {
	if len(args) == 0 {
		return errors.New("usage: provision rollout start|pause|resume|advance|abort|status [flags]")
	}
	project := getenv("GOOGLE_CLOUD_PROJECT")
	if project == "" {
		return errors.New("set GOOGLE_CLOUD_PROJECT")
	}
	fs, err := firestore.NewClient(ctx, project)
	if err != nil {
		return fmt.Errorf("firestore: %w", err)
	}
	defer fs.Close()
	db := store.New(fs)
	action, rest := args[0], args[1:]
	if action == "start" {
		return startRollout(ctx, db, rest, stdout, log)
	}
	flags := flag.NewFlagSet("rollout "+action, flag.ContinueOnError)
	id := flags.String("id", "", "the rollout")
	reason := flags.String("reason", "", "why, for the rollout's steps")
	if err := flags.Parse(rest); err != nil {
		return err
	}
	if *id == "" {
		return errors.New("rollout " + action + ": -id is required")
	}
	r, err := db.Rollout(ctx, *id)
	if err != nil {
		return err
	}
	if action != "status" {
		if r, err = moveRollout(ctx, db, r, action, *reason, log); err != nil {
			return err
		}
	}
	return printRollout(stdout, r)
}

// startRollout creates the rollout; the ingest sweep assigns its first
// stage within a minute.
func startRollout(ctx context.Context, db *store.DB, args []string, stdout io.Writer, log *slog.Logger) error {
	flags := flag.NewFlagSet("rollout start", flag.ContinueOnError)
	project := flags.String("project", "", "the project whose devices are updated")
	releaseID := flags.String("release", "", "the release id (provision release prints it)")
	stages := flags.String("stages", "1,10,100", "the stages' percentages of the devices, increasing, the last 100")
	soaks := flags.String("soak", "1h,6h,0s", "how long each stage runs healthy before the next")
	minDevices := flags.String("min-devices", "10,50,100", "updated devices each stage needs before it is judged")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *project == "" || *releaseID == "" {
		return errors.New("rollout start: -project and -release are required")
	}
	plan, err := parsePlan(*stages, *soaks, *minDevices)
	if err != nil {
		return err
	}
	rel, err := db.Release(ctx, *releaseID)
	if err != nil {
		return fmt.Errorf("rollout start: %w", err)
	}
	now := time.Now().UTC()
	st, _, err := rollout.Start(plan, now)
	if err != nil {
		return err
	}
	r := store.Rollout{ProjectID: *project, Target: rel.Target, ReleaseID: rel.ID, Version: int64(rel.Version), Plan: store.StagesOf(plan),
		Stage: int64(st.Stage), Status: string(st.Status), StageSince: st.StageSince, Created: now, Updated: now}
	id, err := db.CreateRollout(ctx, r)
	if err != nil {
		return err
	}
	r.ID, r.AssignedThrough = id, -1
	log.Info("rollout started", "rolloutId", id, "projectId", *project, "target", rel.Target, "releaseId", rel.ID, "version", rel.Version)
	return printRollout(stdout, r)
}

// moveRollout applies an operator's action to r.
func moveRollout(ctx context.Context, db *store.DB, r store.Rollout, action, reason string, log *slog.Logger) (store.Rollout, error) {
	plan := r.PlanOf()
	now := time.Now().UTC()
	st := r.StateOf()
	var next rollout.State
	var t rollout.Transition
	var err error
	switch action {
	case "pause":
		next, t, err = rollout.Pause(st, reason)
	case "resume":
		next, t, err = rollout.Resume(st, plan, now)
	case "advance":
		next, t, err = rollout.Advance(st, plan, now, reason)
	case "abort":
		next, t, err = rollout.Abort(st, reason)
	default:
		return r, fmt.Errorf("rollout: unknown action %q", action)
	}
	if err != nil {
		return r, err
	}
	moved := r.WithState(next)
	step := store.RolloutStep{At: now, From: string(t.From), To: string(t.To), FromStage: int64(t.FromStage), ToStage: int64(t.ToStage), Reason: "operator: " + t.Reason}
	withdrawn, err := db.MoveRollout(ctx, r.ID, r, moved, step)
	if err != nil {
		return r, err
	}
	if next.Status == rollout.Running {
		if err := db.ReassignStage(ctx, r.ID, moved.Stage); err != nil {
			return moved, err
		}
	}
	log.Info("rollout moved", "rolloutId", r.ID, "action", action, "from", string(t.From), "to", string(t.To), "stage", next.Stage, "withdrawn", withdrawn)
	return moved, nil
}

func parsePlan(stages, soaks, minDevices string) (rollout.Plan, error) {
	ps, ss, ms := strings.Split(stages, ","), strings.Split(soaks, ","), strings.Split(minDevices, ",")
	if len(ss) != len(ps) || len(ms) != len(ps) {
		return nil, fmt.Errorf("rollout: %d stages, %d soaks and %d minimum device counts; want one of each per stage", len(ps), len(ss), len(ms))
	}
	plan := make(rollout.Plan, len(ps))
	for i := range ps {
		p, err := strconv.ParseFloat(strings.TrimSpace(ps[i]), 64)
		if err != nil {
			return nil, fmt.Errorf("rollout: stage %d percent %q: %w", i, ps[i], err)
		}
		soak, err := time.ParseDuration(strings.TrimSpace(ss[i]))
		if err != nil {
			return nil, fmt.Errorf("rollout: stage %d soak %q: %w", i, ss[i], err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(ms[i]))
		if err != nil {
			return nil, fmt.Errorf("rollout: stage %d minimum devices %q: %w", i, ms[i], err)
		}
		plan[i] = rollout.Stage{Percent: p, Soak: soak, MinDevices: n}
	}
	return plan, plan.Validate()
}

func printRollout(w io.Writer, r store.Rollout) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{
		"rolloutId": r.ID, "projectId": r.ProjectID, "target": r.Target, "releaseId": r.ReleaseID, "version": r.Version,
		"stage": r.Stage, "stages": len(r.Plan), "status": r.Status, "pausedReason": r.PausedReason, "steps": r.Steps,
	})
}
