package local_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/emulators/local"
	"github.com/sealedsense/sealedsense/emulators/local/localtest"
	"github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/relay"
	"github.com/sealedsense/sealedsense/shared/store"
)

// TestFallbackToCellular cuts one connector's Ethernet path to Pub/Sub
// under traffic: the cloud hears it move to cellular, then back to
// Ethernet once the path is restored, and no reading is lost.
func TestFallbackToCellular(t *testing.T) {
	t.Parallel()
	d := localtest.Start(t, local.Config{Sensors: 6, Connectors: 2})
	const id = "ccon-1"
	time.Sleep(6 * time.Second) // traffic over Ethernet

	cut := time.Now()
	if err := d.CutLink(id, relay.ConnectionEthernet); err != nil {
		t.Fatal(err)
	}
	at := waitConnection(t, d, id, relay.ConnectionCellular, cut)
	t.Logf("Ethernet of %s cut: connectionStatus CELLULAR stored after %v", id, at.Sub(cut).Round(time.Millisecond))

	time.Sleep(6 * time.Second) // traffic over cellular
	restore := time.Now()
	if err := d.RestoreLink(id, relay.ConnectionEthernet); err != nil {
		t.Fatal(err)
	}
	at = waitConnection(t, d, id, relay.ConnectionEthernet, restore)
	t.Logf("Ethernet of %s restored: connectionStatus ETHERNET stored after %v", id, at.Sub(restore).Round(time.Millisecond))

	time.Sleep(4 * time.Second)
	drain(t, d)
	assertExactlyOnce(t, d, d.Devices())
}

// waitConnection waits for a connectionStatus event of connector id
// saying connection, stamped at or after since, and returns its time.
func waitConnection(t *testing.T, d *local.Deployment, id, connection string, since time.Time) time.Time {
	t.Helper()
	db := store.New(d.FS)
	deadline := time.Now().Add(60 * time.Second)
	for {
		events, err := db.ProjectEvents(context.Background(), "demo")
		if err != nil {
			t.Fatal(err)
		}
		var seen []string
		for _, e := range events {
			if e.DeviceID != id || e.EventType != "connectionStatus" || e.Timestamp.Before(since) {
				continue
			}
			got, err := connectionOf(e.JSON)
			if err != nil {
				t.Fatal(err)
			}
			if got == connection {
				return e.Timestamp
			}
			seen = append(seen, got)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connectionStatus %s for %s within 60s of %v; since then: %v\nits log ends:\n%s",
				connection, id, since.Format(time.TimeOnly), seen, logTail(d, id))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// connectionOf reads the connection a stored connectionStatus event names.
func connectionOf(stored []byte) (string, error) {
	e, err := event.Parse(stored)
	if err != nil {
		return "", err
	}
	var data struct {
		ConnectionStatus struct {
			Connection string `json:"connection"`
		} `json:"connectionStatus"`
	}
	if err := json.Unmarshal(e.Data, &data); err != nil {
		return "", fmt.Errorf("connectionStatus %s: %w", e.Data, err)
	}
	return data.ConnectionStatus.Connection, nil
}

// logTail is the end of a process's log, for a failure message.
func logTail(d *local.Deployment, name string) string {
	b, err := os.ReadFile(d.LogPath(name))
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-15):], "\n")
}
