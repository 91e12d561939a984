package simulator_test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/emulators/simulator"
	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/release"
	"github.com/sealedsense/sealedsense/shared/sensor"
)

// logBuffer is a log destination the world's goroutines share.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// entries are the JSON log lines with message msg.
func (b *logBuffer) entries(t *testing.T, msg string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if e["msg"] == msg {
			out = append(out, e)
		}
	}
	return out
}

// TestSoftwareUpdate: a simulated sensor fetches a release offered over
// the air, runs its version, logs each change of its update with its id,
// and still runs that version after a restart, which it reports.
func TestSoftwareUpdate(t *testing.T) {
	t.Parallel()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	img := bytes.Repeat([]byte("new firmware "), 160) // 2080 bytes: 5 chunks
	m := release.Manifest{Target: "temperature", Version: 7, MinFrom: 1, Size: uint32(len(img)), ChunkSize: 512,
		ImageSHA256: sha256.Sum256(img), ReleaseID: [16]byte{0x5e, 1}, KeyVersion: 1}
	signed, err := release.Seal(m, func(d [32]byte) ([]byte, error) { return ecdsa.SignASN1(rand.Reader, k, d[:]) })
	if err != nil {
		t.Fatal(err)
	}
	chunks, err := release.Split(m, img)
	if err != nil {
		t.Fatal(err)
	}

	logs := &logBuffer{}
	base := credentials.Sensor{SoftwareVersion: 3, ReleaseKeys: []credentials.ReleaseKey{{Version: 1, PKIX: der}}}
	cfg := simulator.Config{Interval: 100 * time.Millisecond, Seed: 5, Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		Sensor: sensor.Config{PullInterval: 50 * time.Millisecond}}
	w := newWorldOf(t, base, cfg, simulator.Point{}, simulator.Connector{ID: "c1", At: simulator.Point{X: 10}})
	sim, p, id := w.sim, w.cloud, sensorID
	if v, ok := sim.SoftwareVersion(id); !ok || v != 3 {
		t.Fatalf("SoftwareVersion = %d, %v; want 3 from the credentials", v, ok)
	}
	if _, ok := sim.SoftwareVersion("nobody"); ok {
		t.Fatal("SoftwareVersion of an unknown sensor")
	}
	p.mu.Lock()
	p.update = func(up payload.Uplink) *payload.UpdateOffer {
		r := up.Update
		switch {
		case r == nil || r.Version >= m.Version:
			return nil
		case r.State == payload.UpdateFetching:
			b, err := chunks[r.Next].Marshal()
			if err != nil {
				t.Error(err)
				return nil
			}
			return &payload.UpdateOffer{Chunk: b}
		case r.State == payload.UpdateInstalled:
			return &payload.UpdateOffer{Manifest: signed}
		}
		return nil
	}
	p.mu.Unlock()

	p.until("reporting version 7 installed", func(_ string, up payload.Uplink) bool {
		return up.Update != nil && up.Update.Version == 7 && up.Update.State == payload.UpdateInstalled
	})
	if v, _ := sim.SoftwareVersion(id); v != 7 {
		t.Fatalf("after the update the sensor runs %d; want 7", v)
	}
	if _, err := sim.RestartSensor(id); err != nil {
		t.Fatal(err)
	}
	if v, _ := sim.SoftwareVersion(id); v != 7 {
		t.Fatalf("after a restart the sensor runs %d; want 7, kept as flash keeps it", v)
	}
	p.until("the restarted sensor reporting version 7", func(_ string, up payload.Uplink) bool {
		// The restarted sensor no longer knows which release installed
		// its version: that tells its report from the one before.
		return up.Update != nil && up.Update.Version == 7 && up.Update.State == payload.UpdateInstalled && up.Update.Release == nil
	})

	var states []string
	for _, e := range logs.entries(t, "software update") {
		if e["deviceId"] != id {
			t.Fatalf("update logged without the sensor's id: %v", e)
		}
		states = append(states, e["state"].(string))
	}
	if len(states) != 2 || states[0] != "Fetching" || states[1] != "Installed" {
		t.Fatalf("update changes logged: %v; want Fetching, then Installed", states)
	}
}
