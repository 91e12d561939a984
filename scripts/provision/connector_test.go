package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/store"
)

// TestConnectorRegistration: "connector -project" makes the connector a
// device of type ccon in that project, with no keys; a sensor's id is
// refused, and no credentials are written for it.
func TestConnectorRegistration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newProvisioner(t)
	p.run("bootstrap")
	dir := t.TempDir()
	s, err := credentials.LoadSensor(strings.TrimSpace(p.run("sensors", "-n", "1", "-project", "acme", "-out", dir)))
	if err != nil {
		t.Fatal(err)
	}
	p.run("connector", "-id", "ccon-1", "-name", "Roof", "-project", "acme", "-out", dir)
	d, err := p.db().Device(ctx, "ccon-1")
	if err != nil || d.Type != store.ConnectorType || d.ProjectID != "acme" || d.PublicKey != nil || d.WrappedPSK != nil {
		t.Fatalf("ccon-1's device %+v, %v: want a ccon of acme with no keys", d, err)
	}

	err = run(ctx, []string{"connector", "-id", s.DeviceID, "-project", "acme", "-out", dir}, p.getenv, io.Discard, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "sensor") {
		t.Fatalf("registering a connector as sensor %s: %v, want a refusal naming the sensor", s.DeviceID, err)
	}
	if _, err := os.Stat(filepath.Join(dir, s.DeviceID+".json")); err == nil {
		// The sensor's own file has its id as name too: it must still be the sensor's.
		if again, err := credentials.LoadSensor(filepath.Join(dir, s.DeviceID+".json")); err != nil || again.DeviceID != s.DeviceID {
			t.Fatalf("the refused registration overwrote %s.json: %v", s.DeviceID, err)
		}
	}
	if d, err := p.db().Device(ctx, s.DeviceID); err != nil || d.Type != "temperature" {
		t.Fatalf("the sensor changed: %+v, %v", d, err)
	}
}
