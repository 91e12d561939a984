package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/shared/store"
)

func TestParsePlan(t *testing.T) {
	tests := []struct {
		name                string
		stages, soaks, mins string
		wantStages          int
		says                string // in the refusal; "" for none
	}{
		{"the default", "1,10,100", "1h,6h,0s", "10,50,100", 3, ""},
		{"one stage", "100", "0s", "1", 1, ""},
		{"counts differ", "1,100", "1h", "1,1", 0, "2 stages, 1 soaks"},
		{"not a percent", "x,100", "0s,0s", "1,1", 0, `stage 0 percent "x"`},
		{"not a duration", "1,100", "an hour,0s", "1,1", 0, `stage 0 soak "an hour"`},
		{"shrinking", "10,1,100", "0s,0s,0s", "1,1,1", 0, "invalid"},
		{"not ending at 100", "1,10", "0s,0s", "1,1", 0, "invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := parsePlan(tc.stages, tc.soaks, tc.mins)
			if tc.says != "" {
				if err == nil || !strings.Contains(err.Error(), tc.says) {
					t.Fatalf("parsePlan = %v, %v; want a refusal saying %q", plan, err, tc.says)
				}
				return
			}
			if err != nil || len(plan) != tc.wantStages {
				t.Fatalf("parsePlan = %v, %v; want %d stages", plan, err, tc.wantStages)
			}
		})
	}
}

// TestRolloutOperatorActions: an operator starts a rollout of a release,
// pauses it (its pending devices are withdrawn), resumes it (the sweep
// assigns the stage again), aborts it, and cannot resume an aborted one;
// a second rollout for the same devices is refused while one is active.
func TestRolloutOperatorActions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newReleaseWorld(t)
	s := w.sensor()
	rel := w.release("-target", "temperature", "-version", "2", "-image", w.image("t.img", 2000))
	fs := platformtest.Firestore(t, w.vars["GOOGLE_CLOUD_PROJECT"])
	db := store.New(fs)
	if _, err := fs.Collection("devices").Doc(s.DeviceID).Update(ctx, []firestore.Update{{Path: "projectId", Value: "p"}}); err != nil {
		t.Fatal(err)
	}
	var r struct {
		RolloutID, Status string
		Stage             int64
	}
	decode := func(out string) {
		t.Helper()
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("rollout printed %q: %v", out, err)
		}
	}
	decode(w.run("rollout", "start", "-project", "p", "-release", rel.ReleaseID, "-stages", "50,100", "-soak", "0s,0s", "-min-devices", "1,1"))
	if r.Status != store.RolloutRunning || r.Stage != 0 {
		t.Fatalf("started rollout %+v; want RUNNING at stage 0", r)
	}
	id := r.RolloutID
	if _, err := w.runErr("rollout", "start", "-project", "p", "-release", rel.ReleaseID); err == nil || !strings.Contains(err.Error(), "already active") {
		t.Fatalf("a second rollout for p's temperature sensors: %v; want refused as already active", err)
	}
	if _, err := db.AssignRelease(ctx, s.DeviceID, store.ReleaseAssignment{RolloutID: id, ReleaseID: rel.ReleaseID, Version: 2, Chunks: 4, At: time.Now()}); err != nil {
		t.Fatal(err)
	}

	decode(w.run("rollout", "pause", "-id", id, "-reason", "ticket 12"))
	if sw := software(t, db, s.DeviceID); r.Status != store.RolloutPaused || sw.Status != store.SoftwareCancelled {
		t.Fatalf("paused: rollout %+v, device software %+v; want PAUSED and the device withdrawn", r, sw)
	}
	decode(w.run("rollout", "resume", "-id", id))
	got, err := db.Rollout(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != store.RolloutRunning || got.AssignedThrough != -1 {
		t.Fatalf("resumed: rollout %+v, assigned through %d; want RUNNING with stage 0 to assign again", r, got.AssignedThrough)
	}
	decode(w.run("rollout", "abort", "-id", id, "-reason", "bad build"))
	if r.Status != store.RolloutAborted {
		t.Fatalf("aborted: %+v", r)
	}
	if _, err := w.runErr("rollout", "resume", "-id", id); err == nil {
		t.Fatal("an aborted rollout resumed")
	}
	got, _ = db.Rollout(ctx, id)
	var moves []string
	for _, st := range got.Steps {
		moves = append(moves, st.From+">"+st.To)
	}
	if m := strings.Join(moves, " "); m != "RUNNING>PAUSED PAUSED>RUNNING RUNNING>ABORTED" ||
		!strings.Contains(got.Steps[0].Reason, "ticket 12") || !strings.Contains(got.Steps[2].Reason, "bad build") {
		t.Errorf("steps %+v; want the pause, resume and abort with the operator's reasons", got.Steps)
	}
}

func software(t *testing.T, db *store.DB, id string) store.SoftwareState {
	t.Helper()
	d, err := db.Device(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if d.Software == nil {
		return store.SoftwareState{}
	}
	return *d.Software
}
