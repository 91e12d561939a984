// Package platformtest gives integration tests the local platform: started
// once per test binary from TestMain, with a Firestore project id per test,
// since each project id is its own database in the emulator.
package platformtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"cloud.google.com/go/firestore"
	kmsapi "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/storage"

	"github.com/sealedsense/sealedsense/emulators/platform"
	"github.com/sealedsense/sealedsense/shared/custody"
)

// harness is the platform of this test binary. TestMain sets it before any
// test runs and clears it after all have, so it is the one piece of
// package state the test framework's shape leaves no alternative to.
var harness struct {
	p *platform.Platform
}

// Main is TestMain for an integration test package: it starts the
// platform on free ports, points the Google clients at it through the
// environment, runs the tests and stops the platform. A platform that does
// not start fails the binary with the reason; nothing is skipped.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "sealedsense-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "platformtest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	p, err := platform.Start(ctx, platform.Config{
		Firestore: "auto", PubSub: "auto", KMS: "auto", Storage: "auto",
		DataDir: dir, Project: "test",
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "platformtest: the local platform did not start:", err)
		return 1
	}
	defer p.Close()
	p.PointClients()
	harness.p = p
	return m.Run()
}

// Platform is the running platform.
func Platform() *platform.Platform {
	if harness.p == nil {
		panic("platformtest: call platformtest.Main from TestMain")
	}
	return harness.p
}

// ProjectID returns a project id no other test uses.
func ProjectID(t testing.TB) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := strings.Trim(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(t.Name())), "-")
	if len(name) > 20 {
		name = name[:20]
	}
	return strings.Trim(name, "-") + "-" + hex.EncodeToString(b[:])
}

// Firestore returns a client for project, closed when the test ends.
func Firestore(t testing.TB, project string) *firestore.Client {
	t.Helper()
	Platform()
	c, err := firestore.NewClient(context.Background(), project)
	if err != nil {
		t.Fatalf("firestore client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// KMS returns the real KMS client, built as production builds it.
func KMS(t testing.TB) *kmsapi.KeyManagementClient {
	t.Helper()
	Platform()
	c, err := custody.NewKMSClient(context.Background())
	if err != nil {
		t.Fatalf("kms client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// PubSub returns a client for project.
func PubSub(t testing.TB, project string) *pubsub.Client {
	t.Helper()
	Platform()
	c, err := pubsub.NewClient(context.Background(), project)
	if err != nil {
		t.Fatalf("pubsub client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Storage returns a Cloud Storage client for fake-gcs-server.
func Storage(t testing.TB) *storage.Client {
	t.Helper()
	Platform()
	c, err := storage.NewClient(context.Background())
	if err != nil {
		t.Fatalf("storage client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
