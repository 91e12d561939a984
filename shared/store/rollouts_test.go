package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/shared/store"
)

// TestRolloutAssignAndCount: one active rollout per project and type; a
// release is assigned only where it is news; the gate's figures count
// the assigned devices apart from the others, replies included.
func TestRolloutAssignAndCount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := store.New(platformtest.Firestore(t, platformtest.ProjectID(t)))
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for i := range 6 {
		err := db.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
			return db.CreateDevice(tx, fmt.Sprintf("d%d", i), store.Device{Type: "temperature", ProjectID: "p", PublicKeyHash: fmt.Sprint(i), CreateTime: at})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	r := store.Rollout{ProjectID: "p", Target: "temperature", ReleaseID: "rel2", Version: 2, Status: store.RolloutRunning, StageSince: at, Created: at}
	id, err := db.CreateRollout(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	r.ID = id
	if _, err := db.CreateRollout(ctx, r); !errors.Is(err, store.ErrRolloutActive) {
		t.Fatalf("a second active rollout for p/temperature: %v; want ErrRolloutActive", err)
	}
	assign := func(dev string, a store.ReleaseAssignment) (bool, error) { return db.AssignRelease(ctx, dev, a) }
	a := store.ReleaseAssignment{RolloutID: id, ReleaseID: "rel2", Version: 2, Chunks: 128, At: at}
	for _, dev := range []string{"d0", "d1", "d2"} {
		if ok, err := assign(dev, a); !ok || err != nil {
			t.Fatalf("assign %s: %v, %v", dev, ok, err)
		}
	}
	if ok, err := assign("d0", a); ok || err != nil {
		t.Fatalf("assigning again: %v, %v; want nothing done", ok, err)
	}
	other := store.ReleaseAssignment{RolloutID: "other", ReleaseID: "rel3", Version: 3, At: at}
	if _, err := assign("d1", other); !errors.Is(err, store.ErrRolloutActive) {
		t.Fatalf("another rollout's release over a pending one: %v; want ErrRolloutActive", err)
	}
	// d1 refuses; d0's replies: 3 acked, 1 lost; d5's (not assigned): 1 acked.
	change := func(dev string, c store.DeviceChange) {
		t.Helper()
		if err := db.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error { return db.UpdateDevice(tx, dev, c) }); err != nil {
			t.Fatal(err)
		}
	}
	change("d1", store.DeviceChange{Software: &store.SoftwareChange{Status: store.SoftwareRefused, Reason: "HashMismatch", Updated: at}})
	for _, acked := range []bool{true, true, false, true} {
		change("d0", store.DeviceChange{Verdict: &store.ReplyVerdict{Via: "c", Acked: acked}, SoftwareVerdict: true})
	}
	change("d5", store.DeviceChange{Verdict: &store.ReplyVerdict{Via: "c", Acked: true}})
	c, err := db.CountRollout(ctx, r, []string{"SILENT"})
	if err != nil {
		t.Fatal(err)
	}
	want := store.RolloutCounts{Assigned: 3, Others: 3, Refused: 1, Installed: 0, AssignedAcked: 3, AssignedFailed: 1, OthersAcked: 1,
		AssignedByKind: map[string]int64{"SILENT": 0}, OthersByKind: map[string]int64{"SILENT": 0}}
	if fmt.Sprint(c) != fmt.Sprint(want) {
		t.Fatalf("counts %+v\nwant %+v", c, want)
	}
	moved := r
	moved.Status = store.RolloutPaused
	// d0 and d2 still fetch the release: the pause withdraws them.
	if n, err := db.MoveRollout(ctx, id, r, moved, store.RolloutStep{At: at, From: r.Status, To: moved.Status, Reason: "1 refusal"}); err != nil || n != 2 {
		t.Fatalf("pausing withdrew %d assignments, %v; want 2", n, err)
	}
	if _, err := db.MoveRollout(ctx, id, r, moved, store.RolloutStep{At: at}); !errors.Is(err, store.ErrRolloutMoved) {
		t.Fatalf("moving from a state it left: %v; want ErrRolloutMoved", err)
	}
}
