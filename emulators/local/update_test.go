package local_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/emulators/local"
	"github.com/sealedsense/sealedsense/emulators/local/localtest"
	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/store"
)

// updateImage is the test releases' size: 8 chunks of 512 bytes (2 for
// a connector), so a sensor pulling one every 2 s installs it in about 20
// seconds; BenchmarkSensorUpdate64KiB measures a 64 KiB one.
const updateImage = 4 << 10

// TestStagedSensorUpdate: an operator rolls version 2 out to 20 sensors
// in three stages (20%, 50%, 100%) with readings flowing (every 10 s, as
// in the fleet run: the pulls of a download, every 2 s, come on top). Each stage goes
// on only once its sensors installed it and their health is within the
// others'; the rollout completes, every sensor runs version 2, the stream
// shows each sensor's DOWNLOADING and INSTALLED once, and every reading
// taken meanwhile is stored exactly once.
func TestStagedSensorUpdate(t *testing.T) {
	t.Parallel()
	d := localtest.Start(t, local.Config{Sensors: 20, Connectors: 2, SensorTypes: []string{"temperature"}, Interval: 10 * time.Second, SweepEvery: 2 * time.Second})
	devices := d.Devices()
	waitAcked(t, d, devices, nil)
	tok := localtest.CustomerToken(t, d)
	stream := newStreamClient(t, d, tok, url.Values{"event_types": {"softwareUpdateStatus"}, "ping_interval": {"2s"}}, false)
	stream.open()
	defer stream.kill()
	time.Sleep(2 * time.Second) // the stream's live start has settled

	rel := provisionRelease(t, d, "temperature", 2, testImage(updateImage))
	defer func() {
		if t.Failed() {
			t.Logf("the functions log about rollouts and releases:\n%s", grepLog(t, d.LogPath("functions"), "rollout", "release", "sweep"))
		}
	}()
	id := startRollout(t, d, rel.ID, "20,50,100")
	began := time.Now()
	r := waitRollout(t, d, id, 6*time.Minute, store.RolloutCompleted)
	t.Logf("rollout of %d sensors completed in %v; steps %v", len(devices), time.Since(began).Round(time.Second), stepsOf(r))
	if got := stepsOf(r); got != "RUNNING 0->1, RUNNING 1->2, RUNNING 2->COMPLETED 2" {
		t.Errorf("rollout steps %q; want one stage after another, no pause", got)
	}
	for _, dev := range devices {
		if v, _ := d.Sim.SoftwareVersion(dev); v != 2 {
			t.Errorf("sensor %s runs version %d; want 2", dev, v)
		}
	}
	assertUpdatesStreamedOnce(t, stream, devices, rel.ID, "DOWNLOADING", "INSTALLED")
	drain(t, d)
	assertExactlyOnce(t, d, devices)
}

// TestCorruptReleasePausesRollout: a release whose image was altered in
// its bucket after it was signed (one byte) is refused by the sensors
// that fetch it (HashMismatch), none installs it, and the rollout pauses
// at the first refusal, with an alert, withdrawing it from the others.
func TestCorruptReleasePausesRollout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := localtest.Start(t, local.Config{Sensors: 6, Connectors: 1, SensorTypes: []string{"temperature"}, Interval: 10 * time.Second, SweepEvery: 2 * time.Second})
	devices := d.Devices()
	waitAcked(t, d, devices, nil)
	image := testImage(updateImage)
	rel := provisionRelease(t, d, "temperature", 3, image)
	image[len(image)/2] ^= 0x01
	w := platformtest.Storage(t).Bucket(rel.Bucket).Object(rel.Object).NewWriter(ctx)
	if _, err := w.Write(image); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			for _, dev := range devices {
				t.Logf("sensor %s: software %+v", dev, softwareOf(t, d, dev))
			}
			t.Logf("the functions log about rollouts and releases:\n%s", grepLog(t, d.LogPath("functions"), "rollout", "release", "sweep"))
		}
	}()
	id := startRollout(t, d, rel.ID, "100")
	// Alone this takes about a minute; the bound is for a CI machine
	// running the end-to-end packages side by side.
	r := waitRollout(t, d, id, 5*time.Minute, store.RolloutPaused)
	if !strings.Contains(r.PausedReason, "refus") {
		t.Errorf("paused for %q; want the refusal", r.PausedReason)
	}
	// The pause commits first; the withdrawal, and a refusal already on
	// its way, follow.
	localtest.WaitUntil(t, 30*time.Second, "no device still fetching the release", func() (bool, string) {
		for _, dev := range devices {
			if sw := softwareOf(t, d, dev); sw.Pending() {
				return false, fmt.Sprintf("sensor %s: %+v", dev, sw)
			}
		}
		return true, ""
	})
	refused := 0
	for _, dev := range devices {
		if v, _ := d.Sim.SoftwareVersion(dev); v == 3 {
			t.Errorf("sensor %s installed the corrupt release", dev)
		}
		sw := softwareOf(t, d, dev)
		switch sw.Status {
		case store.SoftwareRefused:
			refused++
			if sw.Reason != "HashMismatch" {
				t.Errorf("sensor %s refused for %q; want HashMismatch", dev, sw.Reason)
			}
		case store.SoftwareCancelled:
		default:
			t.Errorf("sensor %s: software %+v; want REFUSED or, withdrawn, CANCELLED", dev, sw)
		}
	}
	if refused == 0 {
		t.Error("no sensor refused the release")
	}
	b, err := os.ReadFile(d.LogPath("functions"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"alert":"rollout-paused"`) || !strings.Contains(string(b), `"alert":"release-image-mismatch"`) {
		t.Error("no rollout-paused or release-image-mismatch alert in the functions log")
	}
	t.Logf("%d of %d sensors refused the corrupt release before the rollout paused", refused, len(devices))
}

// softwareOf reads a device's software shadow.
func softwareOf(t testing.TB, d *local.Deployment, dev string) *store.SoftwareState {
	t.Helper()
	snap, err := d.FS.Collection("devices").Doc(dev).Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var dv store.Device
	if err := snap.DataTo(&dv); err != nil {
		t.Fatal(err)
	}
	if dv.Software == nil {
		return &store.SoftwareState{}
	}
	return dv.Software
}

// grepLog is the lines of a log that contain any of words.
func grepLog(t testing.TB, path string, words ...string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var out []string
	for line := range strings.Lines(string(b)) {
		for _, w := range words {
			if strings.Contains(line, w) && !strings.Contains(line, `"reply sent"`) {
				out = append(out, line)
				break
			}
		}
	}
	return strings.Join(out[max(0, len(out)-40):], "")
}

func testImage(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// provisionRelease signs and uploads image as version of target's
// software, as an operator does.
func provisionRelease(t testing.TB, d *local.Deployment, target string, version int, image []byte) store.Release {
	t.Helper()
	path := filepath.Join(t.TempDir(), "image.bin")
	if err := os.WriteFile(path, image, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := d.Provision(context.Background(), "release", "-target", target, "-version", fmt.Sprint(version), "-image", path)
	if err != nil {
		t.Fatalf("provision release: %v", err)
	}
	var printed struct{ ReleaseID string }
	if err := json.Unmarshal([]byte(out), &printed); err != nil {
		t.Fatalf("provision release printed %q: %v", out, err)
	}
	rel, err := store.New(d.FS).Release(context.Background(), printed.ReleaseID)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

// startRollout starts a rollout of release to project demo's devices of
// its target with no soak, as the operator command does.
func startRollout(t testing.TB, d *local.Deployment, releaseID, stages string) string {
	t.Helper()
	n := len(strings.Split(stages, ","))
	zeros := strings.TrimSuffix(strings.Repeat("0s,", n), ",")
	ones := strings.TrimSuffix(strings.Repeat("1,", n), ",")
	out, err := d.Provision(context.Background(), "rollout", "start", "-project", "demo", "-release", releaseID,
		"-stages", stages, "-soak", zeros, "-min-devices", ones)
	if err != nil {
		t.Fatalf("provision rollout start: %v", err)
	}
	var printed struct{ RolloutID string }
	if err := json.Unmarshal([]byte(out), &printed); err != nil || printed.RolloutID == "" {
		t.Fatalf("provision rollout start printed %q: %v", out, err)
	}
	return printed.RolloutID
}

// waitRollout waits until the rollout has status.
func waitRollout(t testing.TB, d *local.Deployment, id string, within time.Duration, status string) store.Rollout {
	t.Helper()
	var r store.Rollout
	localtest.WaitUntil(t, within, "rollout "+status, func() (bool, string) {
		var err error
		if r, err = store.New(d.FS).Rollout(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		return r.Status == status, fmt.Sprintf("rollout %s at stage %d (%s), steps %s", r.Status, r.Stage, r.PausedReason, stepsOf(r))
	})
	return r
}

func stepsOf(r store.Rollout) string {
	var s []string
	for _, st := range r.Steps {
		to := fmt.Sprint(st.ToStage)
		if st.To != st.From {
			to = st.To + " " + to
		}
		s = append(s, fmt.Sprintf("%s %d->%s", st.From, st.FromStage, to))
	}
	return strings.Join(s, ", ")
}

// assertUpdatesStreamedOnce checks the stream showed each device's
// softwareUpdateStatus of each status once, and nothing else.
func assertUpdatesStreamedOnce(t *testing.T, stream *streamClient, devices []string, releaseID string, statuses ...string) {
	t.Helper()
	want := map[string]bool{}
	for _, dev := range devices {
		for _, st := range statuses {
			want[event.SoftwareUpdateStatusID(dev, releaseID, st)] = true
		}
	}
	assertIDsStreamedOnce(t, stream, "softwareUpdateStatus", want)
}
