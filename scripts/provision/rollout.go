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

	"github.com/sealedsense/sealedsense/functions/operator"
	"github.com/sealedsense/sealedsense/shared/rollout"
	"github.com/sealedsense/sealedsense/shared/store"
)

// rolloutCmd starts a staged rollout of a release to a project's devices
// of its target type, or moves one: pause, resume, advance, abort, or
// shows it, as the Operator function's routes do. Rollouts are an
// operator's action: customers see only their devices'
// softwareUpdateStatus events and reported softwareVersion.
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
	ro := &operator.Rollouts{DB: store.New(fs), Now: time.Now, Log: log}
	actor := getenv("USER")
	if actor == "" {
		actor = "provision"
	}
	action, rest := args[0], args[1:]
	if action == "start" {
		return startRollout(ctx, ro, rest, actor, stdout)
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
	var r store.Rollout
	if action == "status" {
		r, err = ro.DB.Rollout(ctx, *id)
	} else {
		r, err = ro.Move(ctx, *id, action, actor, *reason)
	}
	if err != nil {
		return err
	}
	return printRollout(stdout, r)
}

// startRollout creates the rollout; the ingest sweep assigns its first
// stage within a minute.
func startRollout(ctx context.Context, ro *operator.Rollouts, args []string, actor string, stdout io.Writer) error {
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
	r, err := ro.Start(ctx, *project, *releaseID, plan, actor)
	if err != nil {
		return err
	}
	return printRollout(stdout, r)
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
	return enc.Encode(operator.ViewOf(r))
}
