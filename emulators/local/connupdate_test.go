package local_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/emulators/local"
	"github.com/sealedsense/sealedsense/emulators/local/localtest"
	"github.com/sealedsense/sealedsense/shared/release"
	"github.com/sealedsense/sealedsense/shared/store"
)

// TestConnectorUpdate: with readings flowing, an operator rolls version 2
// out to both connectors. Each fetches it over its own channel, verifies
// it, drains its queue, and hands the radio socket to version 2, which
// reports itself; not one packet is left unsent at a switch-over and
// every reading is stored exactly once. Then version 3, which verifies
// but does not boot: the connectors come back on version 2, report the
// rollback (BootFailed), and the rollout pauses.
func TestConnectorUpdate(t *testing.T) {
	t.Parallel()
	d := localtest.Start(t, local.Config{Sensors: 6, Connectors: 2, SensorTypes: []string{"temperature"}, Interval: 3 * time.Second, SweepEvery: 2 * time.Second})
	devices := d.Devices()
	conns := []string{"ccon-1", "ccon-2"}
	waitAcked(t, d, devices, nil)
	defer func() {
		if t.Failed() {
			for _, c := range conns {
				t.Logf("connector %s: software %+v\n%s", c, softwareOf(t, d, c), grepLog(t, d.LogPath(c), "release", "software", "switch", "stopped", "trial", "rolled"))
			}
			t.Logf("the functions log about rollouts:\n%s", grepLog(t, d.LogPath("functions"), "rollout", "release", "connector software"))
		}
	}()

	// 40 chunks of 1 KiB: two Software envelopes, the second asked for
	// by the status the first one brought.
	v2 := provisionRelease(t, d, store.ConnectorType, 2, testImage(40<<10))
	id := startRollout(t, d, v2.ID, "100")
	began := time.Now()
	r := waitRollout(t, d, id, 3*time.Minute, store.RolloutCompleted)
	t.Logf("connector rollout completed in %v; steps %v", time.Since(began).Round(time.Second), stepsOf(r))
	if last := r.Steps[len(r.Steps)-1]; !strings.Contains(last.Reason, "all 2 devices installed") {
		t.Errorf("the rollout completed for %q; want both connectors installed", last.Reason)
	}
	for _, c := range conns {
		if sw := softwareOf(t, d, c); sw.ReportedVersion != 2 || sw.Status != store.SoftwareInstalled {
			t.Errorf("connector %s: software %+v; want version 2 INSTALLED", c, sw)
		}
		stop := switchOvers(t, d, c)
		if len(stop) != 1 {
			t.Fatalf("connector %s switched over %d times; want once", c, len(stop))
		}
		if stop[0].Unsent != 0 || stop[0].Dropped != 0 || stop[0].Published == 0 {
			t.Errorf("connector %s at its switch-over: %+v; want everything it received published", c, stop[0])
		}
		t.Logf("connector %s switched over after relaying %d packets, %d unsent", c, stop[0].Received, stop[0].Unsent)
	}

	v3 := provisionRelease(t, d, store.ConnectorType, 3, append([]byte(release.BadBootMagic), testImage(updateImage)...))
	id = startRollout(t, d, v3.ID, "100")
	r = waitRollout(t, d, id, 3*time.Minute, store.RolloutPaused)
	if !strings.Contains(r.PausedReason, "refus") && !strings.Contains(r.PausedReason, "roll") {
		t.Errorf("paused for %q; want the rollback", r.PausedReason)
	}
	rolledBack := 0
	localtest.WaitUntil(t, 90*time.Second, "both connectors back on version 2", func() (bool, string) {
		rolledBack = 0
		for _, c := range conns {
			sw := softwareOf(t, d, c)
			if sw.Status == store.SoftwareRolledBack && sw.Reason == "BootFailed" {
				rolledBack++
			}
			if sw.ReportedVersion != 2 || sw.Pending() {
				return false, fmt.Sprintf("connector %s: %+v", c, sw)
			}
		}
		return rolledBack > 0, "no connector reported a rollback"
	})
	t.Logf("%d of %d connectors rolled version 3 back", rolledBack, len(conns))
	drain(t, d)
	assertExactlyOnce(t, d, devices)
}

// connectorStop is a connector process's last words.
type connectorStop struct {
	Received, Published, Dropped, Unsent int
	SwitchOver                           bool
}

// switchOvers reads from a connector's log the stops that were switch-overs.
func switchOvers(t *testing.T, d *local.Deployment, id string) []connectorStop {
	t.Helper()
	b, err := os.ReadFile(d.LogPath(id))
	if err != nil {
		t.Fatal(err)
	}
	var out []connectorStop
	for line := range strings.Lines(string(b)) {
		if !strings.Contains(line, `"connector stopped"`) {
			continue
		}
		var s connectorStop
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if s.SwitchOver {
			out = append(out, s)
		}
	}
	return out
}
