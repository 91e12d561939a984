package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/iterator"

	"github.com/sealedsense/sealedsense/shared/rollout"
)

const rolloutsCollection = "rollouts"

// Rollout statuses, as shared/rollout names them.
const (
	RolloutRunning   = "RUNNING"
	RolloutPaused    = "PAUSED"
	RolloutAborted   = "ABORTED"
	RolloutCompleted = "COMPLETED"
)

// ErrRolloutActive is a rollout started for a project's devices of a type
// while another one for them is running or paused.
var ErrRolloutActive = errors.New("store: a rollout for these devices is already active")

// ErrRolloutMoved is a rollout change made against a state that is no
// longer the rollout's: someone (the sweep, another operator) moved it.
var ErrRolloutMoved = errors.New("store: rollout state changed meanwhile")

// RolloutStage is one stage of a rollout's plan, as stored.
type RolloutStage struct {
	Percent     float64           `firestore:"percent"`
	Labels      map[string]string `firestore:"labels,omitempty"`
	SoakSeconds int64             `firestore:"soakSeconds"`
	MinDevices  int64             `firestore:"minDevices"`
}

// RolloutStep is one logged change of a rollout's state.
type RolloutStep struct {
	At        time.Time `firestore:"at"`
	From      string    `firestore:"from"`
	To        string    `firestore:"to"`
	FromStage int64     `firestore:"fromStage"`
	ToStage   int64     `firestore:"toStage"`
	Reason    string    `firestore:"reason"`
}

// maxRolloutSteps bounds the steps a rollout keeps, newest last.
const maxRolloutSteps = 50

// Rollout is an operator's staged rollout of one release to a project's
// devices of the release's target type.
type Rollout struct {
	ID        string         `firestore:"-"`
	ProjectID string         `firestore:"projectId"`
	Target    string         `firestore:"target"`
	ReleaseID string         `firestore:"releaseId"`
	Version   int64          `firestore:"version"`
	Plan      []RolloutStage `firestore:"plan"`
	// The state, as shared/rollout.State.
	Stage        int64     `firestore:"stage"`
	Status       string    `firestore:"status"`
	PausedReason string    `firestore:"pausedReason,omitempty"`
	StageSince   time.Time `firestore:"stageSince"`
	// AssignedThrough is the last stage whose devices were assigned the
	// release (-1: none yet), Selected how many devices it reaches.
	AssignedThrough int64 `firestore:"assignedThrough"`
	Selected        int64 `firestore:"selected"`
	// Steps are its changes of state, oldest first.
	Steps   []RolloutStep `firestore:"steps"`
	Created time.Time     `firestore:"created"`
	Updated time.Time     `firestore:"updated"`
}

// CreateRollout stores r, with no stage assigned yet, under a new id and
// returns the id. It refuses one
// while another rollout for the same project and target is active.
func (db *DB) CreateRollout(ctx context.Context, r Rollout) (string, error) {
	id := rand.Text()[:20]
	r.AssignedThrough = -1 // nothing is assigned before the sweep's first step
	err := db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		q := db.fs.Collection(rolloutsCollection).Where("projectId", "==", r.ProjectID).Where("target", "==", r.Target).
			Where("status", "in", []string{RolloutRunning, RolloutPaused}).Limit(1)
		docs, err := tx.Documents(q).GetAll()
		if err != nil {
			return err
		}
		if len(docs) > 0 {
			return fmt.Errorf("%w: %s", ErrRolloutActive, docs[0].Ref.ID)
		}
		return tx.Create(db.fs.Collection(rolloutsCollection).Doc(id), r)
	})
	if err != nil {
		return "", wrap("rollout", err)
	}
	return id, nil
}

// Rollout reads one rollout.
func (db *DB) Rollout(ctx context.Context, id string) (Rollout, error) {
	snap, err := db.fs.Collection(rolloutsCollection).Doc(id).Get(ctx)
	if err != nil {
		return Rollout{}, wrap("rollout "+id, err)
	}
	r, err := decode[Rollout](snap)
	r.ID = id
	return r, err
}

// RunningRollouts lists the rollouts the sweep steps, at most limit.
func (db *DB) RunningRollouts(ctx context.Context, limit int) ([]Rollout, error) {
	it := db.fs.Collection(rolloutsCollection).Where("status", "==", RolloutRunning).Limit(limit).Documents(ctx)
	defer it.Stop()
	var out []Rollout
	for {
		snap, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, wrap("running rollouts", err)
		}
		r, err := decode[Rollout](snap)
		if err != nil {
			return nil, err
		}
		r.ID = snap.Ref.ID
		out = append(out, r)
	}
}

// MoveRollout changes a rollout's state from the one the caller read
// (stage and status) to next's, logging step; ErrRolloutMoved if it
// moved meanwhile. A rollout that stops running (paused, aborted,
// completed) has its pending assignments withdrawn (CancelAssignments);
// it returns how many.
func (db *DB) MoveRollout(ctx context.Context, id string, read Rollout, next Rollout, step RolloutStep) (int, error) {
	if err := db.moveRollout(ctx, id, read, next, step); err != nil {
		return 0, err
	}
	if next.Status == RolloutRunning {
		return 0, nil
	}
	return db.CancelAssignments(ctx, id, step.At)
}

func (db *DB) moveRollout(ctx context.Context, id string, read Rollout, next Rollout, step RolloutStep) error {
	ref := db.fs.Collection(rolloutsCollection).Doc(id)
	err := db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snap, err := tx.Get(ref)
		if err != nil {
			return err
		}
		cur, err := decode[Rollout](snap)
		if err != nil {
			return err
		}
		if cur.Stage != read.Stage || cur.Status != read.Status {
			return fmt.Errorf("%w: %s is %s at stage %d", ErrRolloutMoved, id, cur.Status, cur.Stage)
		}
		steps := append(cur.Steps, step)
		steps = steps[max(0, len(steps)-maxRolloutSteps):]
		return tx.Update(ref, []firestore.Update{
			{Path: "stage", Value: next.Stage}, {Path: "status", Value: next.Status},
			{Path: "pausedReason", Value: next.PausedReason}, {Path: "stageSince", Value: next.StageSince},
			{Path: "steps", Value: steps}, {Path: "updated", Value: step.At},
		})
	})
	return wrap("rollout "+id, err)
}

// RolloutDevice is a device a rollout may reach.
type RolloutDevice struct {
	ID       string
	Labels   map[string]string
	Software *SoftwareState
}

// maxRolloutDevices bounds the devices one rollout reaches: a listing
// beyond it is refused rather than cut short.
const maxRolloutDevices = 100_000

// RolloutDevices lists a project's devices of a type, with what a rollout
// decides on: their labels and software shadows.
func (db *DB) RolloutDevices(ctx context.Context, project, target string) ([]RolloutDevice, error) {
	it := db.fs.Collection(devicesCollection).Where("projectId", "==", project).Where("type", "==", target).
		Select("labels", "software").Limit(maxRolloutDevices + 1).Documents(ctx)
	defer it.Stop()
	var out []RolloutDevice
	for {
		snap, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, wrap("rollout devices", err)
		}
		d, err := decode[Device](snap)
		if err != nil {
			return nil, err
		}
		out = append(out, RolloutDevice{ID: snap.Ref.ID, Labels: d.Labels, Software: d.Software})
	}
	if len(out) > maxRolloutDevices {
		return nil, fmt.Errorf("store: more than %d %s devices in project %s for one rollout", maxRolloutDevices, target, project)
	}
	return out, nil
}

// ReleaseAssignment is a rollout's release for one device.
type ReleaseAssignment struct {
	RolloutID, ReleaseID string
	Version, Chunks      int64
	At                   time.Time
}

// AssignRelease sets a device's software shadow to fetch a release. It
// does nothing (false) for a device that already runs that version or a
// newer one, or already has the release assigned, and refuses
// (ErrRolloutActive) one another rollout's release is pending on.
func (db *DB) AssignRelease(ctx context.Context, deviceID string, a ReleaseAssignment) (bool, error) {
	assigned := false
	err := db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		assigned = false
		d, err := db.DeviceIn(tx, deviceID)
		if err != nil {
			return err
		}
		sw := d.Software
		switch {
		case sw != nil && sw.ReportedVersion >= a.Version:
			return nil
		case sw != nil && sw.Release == a.ReleaseID && sw.Status != SoftwareCancelled:
			return nil
		case sw.Pending() && sw.RolloutID != a.RolloutID:
			return fmt.Errorf("%w: device %s has rollout %s's release pending", ErrRolloutActive, deviceID, sw.RolloutID)
		}
		next := SoftwareState{Release: a.ReleaseID, Version: a.Version, RolloutID: a.RolloutID, Status: SoftwareAssigned,
			Chunks: a.Chunks, Assigned: a.At, Updated: a.At}
		if sw != nil {
			next.ReportedVersion = sw.ReportedVersion
		}
		assigned = true
		return tx.Update(db.deviceRef(deviceID), []firestore.Update{{Path: "software", Value: next}})
	})
	return assigned, wrap("assign release to "+deviceID, err)
}

// RolloutCounts are the figures a rollout's health gate compares: the
// devices the rollout assigned its release to, and the others of the
// project and type.
type RolloutCounts struct {
	Assigned, Others                   int64
	AssignedAnomalous, OthersAnomalous int64
	// AssignedByKind and OthersByKind count the devices with an open
	// anomaly of each kind asked for.
	AssignedByKind, OthersByKind map[string]int64
	// Refused counts the assigned devices that refused the release or
	// rolled it back; Installed those that run it.
	Refused, Installed int64
	// AssignedAcked and AssignedFailed count the replies to the assigned
	// devices since they installed the release that arrived and that
	// were lost;
	// OthersAcked and OthersFailed the others' in all.
	AssignedAcked, AssignedFailed, OthersAcked, OthersFailed int64
}

// Fields the rollout counts read.
const (
	replyStatsField = "replyStats"
	softwareField   = "software"
)

// CountRollout counts r's figures, with the open anomalies of each of
// kinds. Every figure is an aggregation: none reads the devices.
func (db *DB) CountRollout(ctx context.Context, r Rollout, kinds []string) (RolloutCounts, error) {
	all := db.fs.Collection(devicesCollection).Where("projectId", "==", r.ProjectID).Where("type", "==", r.Target)
	assigned := all.WherePath(firestore.FieldPath{softwareField, "rolloutId"}, "==", r.ID)
	var c RolloutCounts
	a, err := aggregate(ctx, assigned, "rollout "+r.ID, firestore.FieldPath{softwareField, "acked"}, firestore.FieldPath{softwareField, "failed"},
		firestore.FieldPath{replyStatsField, "acked"}, firestore.FieldPath{replyStatsField, "failed"})
	if err != nil {
		return c, err
	}
	t, err := aggregate(ctx, all, "rollout "+r.ID+" devices", firestore.FieldPath{replyStatsField, "acked"}, firestore.FieldPath{replyStatsField, "failed"})
	if err != nil {
		return c, err
	}
	c.Assigned, c.AssignedAcked, c.AssignedFailed = a[0], a[1], a[2]
	c.Others, c.OthersAcked, c.OthersFailed = t[0]-a[0], t[1]-a[3], t[2]-a[4]
	flagged := func(q firestore.Query, path firestore.FieldPath) (int64, error) {
		return count(ctx, q.WherePath(path, "==", true), "rollout "+r.ID+" anomalies")
	}
	anomalous := firestore.FieldPath{healthField, healthAnomalous}
	if c.AssignedAnomalous, err = flagged(assigned, anomalous); err != nil {
		return c, err
	}
	allAnomalous, err := flagged(all, anomalous)
	if err != nil {
		return c, err
	}
	c.OthersAnomalous = allAnomalous - c.AssignedAnomalous
	c.AssignedByKind, c.OthersByKind = map[string]int64{}, map[string]int64{}
	for _, k := range kinds {
		path := firestore.FieldPath{healthField, healthKinds, k}
		na, err := flagged(assigned, path)
		if err != nil {
			return c, err
		}
		nt, err := flagged(all, path)
		if err != nil {
			return c, err
		}
		c.AssignedByKind[k], c.OthersByKind[k] = na, nt-na
	}
	status := firestore.FieldPath{softwareField, "status"}
	if c.Refused, err = count(ctx, assigned.WherePath(status, "in", []string{SoftwareRefused, SoftwareRolledBack}), "rollout "+r.ID+" refusals"); err != nil {
		return c, err
	}
	c.Installed, err = count(ctx, assigned.WherePath(status, "==", SoftwareInstalled), "rollout "+r.ID+" installed")
	return c, err
}

// MarkStageAssigned records that stage's devices, selected of them, were
// assigned the release.
func (db *DB) MarkStageAssigned(ctx context.Context, id string, stage, selected int64) error {
	_, err := db.fs.Collection(rolloutsCollection).Doc(id).Update(ctx, []firestore.Update{
		{Path: "assignedThrough", Value: stage}, {Path: "selected", Value: selected},
	})
	return wrap("rollout "+id, err)
}

// aggregate runs one aggregation of q: its count, then the sum of each
// path (a missing field adds nothing).
func aggregate(ctx context.Context, q firestore.Query, op string, sums ...firestore.FieldPath) ([]int64, error) {
	// One aggregation per query: Firestore runs a query's aggregations
	// over only the documents that have every field they name, so a
	// device without one counter (a connector has no replyStats, a
	// sensor never refused has no failed) would drop out of all of them.
	out := make([]int64, 1+len(sums))
	for i := range out {
		aq := q.NewAggregationQuery().WithCount("v")
		if i > 0 {
			aq = q.NewAggregationQuery().WithSumPath(sums[i-1], "v")
		}
		res, err := aq.Get(ctx)
		if err != nil {
			return nil, wrap(op, err)
		}
		switch v := res["v"].(type) {
		case interface{ GetIntegerValue() int64 }:
			out[i] = v.GetIntegerValue()
		case nil:
		default:
			return nil, fmt.Errorf("store: %s: aggregation returned %T", op, res["v"])
		}
	}
	return out, nil
}

// CancelAssignments withdraws a paused or aborted rollout's release from
// the devices still fetching it: their replies stop offering it. The
// devices that installed, refused or rolled it back keep their status.
// It returns how many it withdrew.
func (db *DB) CancelAssignments(ctx context.Context, rolloutID string, at time.Time) (int, error) {
	q := db.fs.Collection(devicesCollection).WherePath(firestore.FieldPath{softwareField, "rolloutId"}, "==", rolloutID).
		WherePath(firestore.FieldPath{softwareField, "status"}, "in", []string{SoftwareAssigned, SoftwareDownloading})
	refs, err := q.Select().Documents(ctx).GetAll()
	if err != nil {
		return 0, wrap("rollout "+rolloutID+" assignments", err)
	}
	n := 0
	for _, snap := range refs {
		err := db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
			d, err := db.DeviceIn(tx, snap.Ref.ID)
			if err != nil {
				return err
			}
			if !d.Software.Pending() || d.Software.RolloutID != rolloutID {
				return nil // moved on meanwhile
			}
			n++
			return tx.Update(snap.Ref, []firestore.Update{
				{FieldPath: firestore.FieldPath{softwareField, "status"}, Value: SoftwareCancelled},
				{FieldPath: firestore.FieldPath{softwareField, "updated"}, Value: at},
			})
		})
		if err != nil {
			return n, wrap("cancel assignment of "+snap.Ref.ID, err)
		}
	}
	return n, nil
}

// ReassignStage makes the sweep assign the rollout's current stage again
// (after a resume, to the devices whose assignment a pause withdrew).
func (db *DB) ReassignStage(ctx context.Context, id string, stage int64) error {
	_, err := db.fs.Collection(rolloutsCollection).Doc(id).Update(ctx, []firestore.Update{{Path: "assignedThrough", Value: stage - 1}})
	return wrap("rollout "+id, err)
}

// PlanOf is r's plan as shared/rollout steps it.
func (r Rollout) PlanOf() rollout.Plan {
	plan := make(rollout.Plan, len(r.Plan))
	for i, s := range r.Plan {
		plan[i] = rollout.Stage{Percent: s.Percent, Labels: s.Labels, Soak: time.Duration(s.SoakSeconds) * time.Second, MinDevices: int(s.MinDevices)}
	}
	return plan
}

// StateOf is r's state as shared/rollout steps it.
func (r Rollout) StateOf() rollout.State {
	return rollout.State{Stage: int(r.Stage), Status: rollout.Status(r.Status), PausedReason: r.PausedReason, StageSince: r.StageSince}
}

// WithState is r moved to st.
func (r Rollout) WithState(st rollout.State) Rollout {
	r.Stage, r.Status, r.PausedReason, r.StageSince = int64(st.Stage), string(st.Status), st.PausedReason, st.StageSince
	return r
}

// StagesOf is plan as stored.
func StagesOf(plan rollout.Plan) []RolloutStage {
	out := make([]RolloutStage, len(plan))
	for i, s := range plan {
		out[i] = RolloutStage{Percent: s.Percent, Labels: s.Labels, SoakSeconds: int64(s.Soak / time.Second), MinDevices: int64(s.MinDevices)}
	}
	return out
}
