package main

import (
	"context"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/functions/ingest"
	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/store"
)

func TestRetireRisk(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	life := ingest.OldKEKLifetime()
	keks := store.CloudKeys{KEKs: []store.CloudKey{
		{Version: 1, Created: now.Add(-10 * life)}, // superseded by version 2
		{Version: 2, Created: now.Add(-life - time.Minute)},
		{Version: 3, Created: now.Add(-time.Hour)},
		{Version: 4, Created: now.Add(-time.Minute)},
	}}
	tests := []struct {
		name     string
		role     store.KeyRole
		version  int
		users    int64
		wantRisk string // "" for none
	}{
		{"static version no device uses", store.RoleStatic, 1, 0, ""},
		{"static version devices use", store.RoleStatic, 1, 3, "3 devices"},
		{"kek superseded just over a session lifetime ago", store.RoleKEK, 1, 0, ""},
		{"kek superseded an hour ago", store.RoleKEK, 2, 0, "sessions sealed under it may be live until " + now.Add(-time.Hour).Add(life).Format(time.RFC3339)},
		{"kek superseded a minute ago", store.RoleKEK, 3, 0, "may be live"},
		{"newest kek is the store's to refuse", store.RoleKEK, 4, 0, ""},
		{"channel", store.RoleChannel, 1, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := retireRisk(keks, tc.role, tc.version, tc.users, now)
			if (tc.wantRisk == "") != (got == "") || !strings.Contains(got, tc.wantRisk) {
				t.Fatalf("retireRisk = %q, want %q", got, tc.wantRisk)
			}
		})
	}
}

// TestRotateRetireAndList: the operator rotates each key, lists the
// versions with the devices on each static version, and retire refuses
// what would cut off devices or live sessions unless forced.
func TestRotateRetireAndList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newProvisioner(t)
	p.run("bootstrap")
	files := strings.Fields(p.run("sensors", "-n", "3", "-type", "temperature", "-out", t.TempDir()))
	fs := platformtest.Firestore(t, p.vars["GOOGLE_CLOUD_PROJECT"])
	handshook := func(file string, fields map[string]any) {
		t.Helper()
		s, err := credentials.LoadSensor(file)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fs.Collection("devices").Doc(s.DeviceID).Set(ctx, fields, firestore.MergeAll); err != nil {
			t.Fatal(err)
		}
	}
	// One device handshook before versions were recorded (version 1), one
	// under version 1, one never.
	handshook(files[0], map[string]any{"lastHandshakeNs": int64(1)})
	handshook(files[1], map[string]any{"lastHandshakeNs": int64(2), "cloudKeyVersion": 1})

	for _, key := range []string{"static", "channel", "kek"} {
		if out := p.run("rotate", "-key", key); !strings.HasPrefix(out, key+" version 2") {
			t.Fatalf("rotate -key %s printed %q", key, out)
		}
	}
	handshook(files[1], map[string]any{"cloudKeyVersion": 2})
	list := p.run("keys")
	for _, want := range []string{`static\s+1\s+\S+\s+1\s*\n`, `static\s+2\s+\S+\s+1\s+newest`, `channel\s+2\s+\S+\s+-\s+newest`, `kek\s+1\s+\S+\s+-\s*\n`} {
		if !regexp.MustCompile(want).MatchString(list) {
			t.Fatalf("keys printed\n%s\nwant a line matching %q", list, want)
		}
	}

	refused := func(want string, args ...string) {
		t.Helper()
		err := run(ctx, args, p.getenv, io.Discard, slog.New(slog.NewJSONHandler(io.Discard, nil)))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("provision %v = %v, want a refusal mentioning %q", args, err, want)
		}
	}
	refused("1 devices last handshook under it", "retire", "-key", "static", "-version", "1")
	refused("sessions sealed under it may be live", "retire", "-key", "kek", "-version", "1")
	refused("newest version", "retire", "-key", "static", "-version", "2", "-force")
	refused("-key", "retire", "-key", "psk", "-version", "1")
	refused("-version is required", "retire", "-key", "kek")

	handshook(files[0], map[string]any{"cloudKeyVersion": 2})
	p.run("retire", "-key", "static", "-version", "1")
	p.run("retire", "-key", "kek", "-version", "1", "-force")
	p.run("retire", "-key", "channel", "-version", "1")
	ck, err := p.registry().CloudKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range []store.KeyRole{store.RoleStatic, store.RoleChannel, store.RoleKEK} {
		if vs := ck.Versions(role); len(vs) != 1 || vs[0].Version != 2 {
			t.Fatalf("%s versions after retiring 1: %+v, want 2 alone", role, vs)
		}
	}
}
