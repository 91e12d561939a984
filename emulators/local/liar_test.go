package local_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/emulators/local"
	"github.com/sealedsense/sealedsense/emulators/local/localtest"
)

// TestLyingConnector runs a registered connector process in hostile mode
// next to an honest one, both in range of every sensor: it claims -30 dBm
// for every packet (the honest one reports the real, far weaker signal),
// drops every downlink it is given, and poisons every 4th uplink with a
// NaN or infinite RSSI and a reception time an hour ahead. It wins at most
// each device's first reply; every sensor still gets sessions and ACKs,
// and every reading is stored exactly once.
func TestLyingConnector(t *testing.T) {
	t.Parallel()
	const honest, liar = "ccon-1", "ccon-2"
	d := localtest.Start(t, local.Config{Sensors: 6, Connectors: 2, Liar: liar})
	devices := d.Devices()
	for _, dev := range devices {
		if in := d.Sim.InRange(dev); !slices.Contains(in, honest) || !slices.Contains(in, liar) {
			t.Fatalf("sensor %s hears %v; the test needs both connectors in range of every sensor", dev, in)
		}
	}
	// Every sensor gets a session and ACKs next to the liar. A sensor
	// whose first handshake response the liar dropped retries after its
	// handshake backoff, so this waits, bounded, rather than sleeping a
	// guess.
	unacked := func() []string {
		var out []string
		for _, dev := range devices {
			if st := d.Sim.Sensor(dev).Stats(); st.Acked == 0 {
				out = append(out, fmt.Sprintf("%s (%d handshakes, backlog %d)", dev, st.Handshakes, st.Backlog))
			}
		}
		return out
	}
	deadline := time.Now().Add(90 * time.Second)
	for len(unacked()) > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Second)
	}
	if left := unacked(); len(left) > 0 {
		t.Errorf("sensors with no ACK after 90 s next to the liar: %v", left)
	}
	drain(t, d)
	assertExactlyOnce(t, d, devices)

	// The liar won at most each device's first reply among the packets
	// the honest connector heard too (its first handshake's response,
	// before any history); the others went through the honest one.
	viaLiar, answered := liarReplies(t, d, honest, liar, len(devices))
	refusals := routeRefusals(t, d, liar)
	if len(refusals) == 0 {
		t.Fatalf("the functions log never says why the reply route passed over %s", liar)
	}
	// Its poisoned uplinks are refused, each with a logged reason.
	poisoned := countLines(t, d.LogPath(liar), "poisoned an uplink's metadata")
	if poisoned == 0 {
		t.Fatal("the liar poisoned no uplink; the test would prove nothing")
	}
	rejected := 0
	reasons := rejections(t, d)
	for _, n := range reasons {
		rejected += n
	}
	if rejected < poisoned {
		t.Fatalf("%d uplinks poisoned, %d refused (%v)", poisoned, rejected, reasons)
	}
	t.Logf("%d of %d replies via the liar; route refusals %v; %d poisoned uplinks, rejections %v; accepted replies per connector %v",
		viaLiar, answered, refusals, poisoned, reasons, d.Sim.Stats().RepliesVia)
}

// liarReplies counts the answered receptions whose reply went through
// the liar, and fails the test if, among those the honest connector heard
// too, any device had more than one.
func liarReplies(t *testing.T, d *local.Deployment, honest, liar string, devices int) (viaLiar, answered int) {
	t.Helper()
	perDevice := map[string]int{}
	for _, rec := range repliedReceptions(t, d) {
		answered++
		if rec.via != liar {
			continue
		}
		viaLiar++
		if rec.heard[honest] {
			perDevice[rec.deviceID]++
		}
	}
	for dev, n := range perDevice {
		if n > 1 {
			t.Errorf("device %s: %d replies through the liar although %s heard them too; want at most its first", dev, n, honest)
		}
	}
	if answered == 0 || viaLiar > devices*3 {
		t.Fatalf("%d of %d replies went through the liar", viaLiar, answered)
	}
	return viaLiar, answered
}

// passedOver counts, by reason, the functions log's lines saying the
// reply route passed over a connector, whichever.
func passedOver(t *testing.T, d *local.Deployment) map[string]int { return routeRefusals(t, d, "") }

// routeRefusals counts, by reason, the functions log's lines saying the
// reply route passed over connector id ("": any).
func routeRefusals(t *testing.T, d *local.Deployment, id string) map[string]int {
	t.Helper()
	f, err := os.Open(d.LogPath("functions"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct {
			Msg         string `json:"message"`
			Reason      string `json:"reason"`
			ConnectorID string `json:"connectorId"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "reply route passed over a connector" && (id == "" || line.ConnectorID == id) {
			out[line.Reason]++
		}
	}
	return out
}

// countLines counts the lines of a log file that contain s.
func countLines(t *testing.T, path, s string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), s)
}
