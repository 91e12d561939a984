package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/relay"
)

// TestConnectorRotate: "connector -rotate" writes a new credentials file
// whose key the registry accepts at once, while the old key is accepted
// until the grace period ends and refused after.
func TestConnectorRotate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newProvisioner(t)
	p.run("bootstrap")
	oldDir, newDir := t.TempDir(), t.TempDir()
	oldCreds, err := credentials.LoadConnector(strings.TrimSpace(p.run("connector", "-id", "ccon-1", "-project", "proj-1", "-out", oldDir)))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	newFile := strings.TrimSpace(p.run("connector", "-rotate", "-id", "ccon-1", "-grace", "2h", "-out", newDir))
	if newFile != filepath.Join(newDir, "ccon-1.json") {
		t.Fatalf("rotate wrote %q, want it in %s", newFile, newDir)
	}
	assertPrivateFile(t, newFile)
	newCreds, err := credentials.LoadConnector(newFile)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(newCreds.PrivateKey, oldCreds.PrivateKey) || newCreds.ConnectorID != "ccon-1" {
		t.Fatal("rotate did not issue a new key for ccon-1")
	}
	ck, err := p.registry().CloudKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(newCreds.ChannelPublic, ck.ChannelPublic()) {
		t.Fatal("the new credentials do not hold the cloud's channel key")
	}

	c, err := p.registry().Connector(ctx, "ccon-1")
	if err != nil {
		t.Fatal(err)
	}
	if c.ProjectID != "proj-1" {
		t.Fatalf("rotation changed the project to %q", c.ProjectID)
	}
	oldEnv, _ := relay.SignUplink(ed25519.PrivateKey(oldCreds.PrivateKey), relay.Uplink{ConnectorID: "ccon-1", Packet: []byte{3, 1}})
	newEnv, _ := relay.SignUplink(ed25519.PrivateKey(newCreds.PrivateKey), relay.Uplink{ConnectorID: "ccon-1", Packet: []byte{3, 1}})
	at := func(now time.Time) relay.KeyLookup {
		return func(context.Context, string) (relay.ConnectorKeys, error) {
			valid, retired := c.Keys(now)
			return relay.ConnectorKeys{Valid: valid, Retired: retired}, nil
		}
	}
	tests := []struct {
		name string
		env  []byte
		now  time.Time
		want error
	}{
		{"new key at once", newEnv, start, nil},
		{"old key within grace", oldEnv, start.Add(2*time.Hour - time.Minute), nil},
		{"old key after grace", oldEnv, start.Add(2*time.Hour + time.Minute), relay.ErrRetiredKey},
		{"new key after grace", newEnv, start.Add(2*time.Hour + time.Minute), nil},
	}
	for _, tc := range tests {
		if _, err := relay.OpenUplink(ctx, tc.env, at(tc.now)); !errors.Is(err, tc.want) {
			t.Errorf("%s: OpenUplink = %v, want %v", tc.name, err, tc.want)
		}
	}

	for _, args := range [][]string{
		{"connector", "-rotate", "-id", "nope", "-out", t.TempDir()},
		{"connector", "-rotate", "-id", "ccon-1", "-grace", "-1h", "-out", t.TempDir()},
		{"connector", "-rotate", "-id", "ccon-1", "-project", "other", "-out", t.TempDir()},
	} {
		if err := run(ctx, args, p.getenv, io.Discard, slog.New(slog.NewJSONHandler(io.Discard, nil))); err == nil {
			t.Errorf("provision %v succeeded", args)
		}
	}
	p.run("revoke-connector", "-id", "ccon-1")
	if err := run(ctx, []string{"connector", "-rotate", "-id", "ccon-1", "-out", t.TempDir()}, p.getenv, io.Discard, slog.New(slog.NewJSONHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("rotating a revoked connector = %v, want it refused as revoked", err)
	}
}
