package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/store"
)

func TestStudioSessionLive(t *testing.T) {
	t.Parallel()
	l := store.SessionLimits{Idle: 30 * time.Minute, Absolute: 12 * time.Hour}
	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	s := store.StudioSession{Created: t0, LastSeen: t0.Add(time.Hour), ExpireAt: t0.Add(l.Absolute)}
	tests := []struct {
		name string
		now  time.Time
		live bool
	}{
		{"just used", t0.Add(time.Hour + time.Minute), true},
		{"idle almost too long", t0.Add(time.Hour + 29*time.Minute), true},
		{"idle too long", t0.Add(time.Hour + 30*time.Minute), false},
		{"past the absolute end", t0.Add(12 * time.Hour), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Live(tt.now, l)
			if (err == nil) != tt.live || (err != nil && !errors.Is(err, store.ErrSessionEnded)) {
				t.Errorf("Live at %s = %v, want live %v", tt.now, err, tt.live)
			}
		})
	}
	// A shorter absolute limit than the stored expiry still ends it.
	if err := s.Live(t0.Add(2*time.Hour), store.SessionLimits{Idle: time.Hour, Absolute: 90 * time.Minute}); !errors.Is(err, store.ErrSessionEnded) {
		t.Errorf("a session older than the absolute limit is live: %v", err)
	}
}

// TestStudioSessionLifecycle: a session is found by its token only, is
// stored without it, marks its use at most once a minute, and ends when
// signed out or idle.
func TestStudioSessionLifecycle(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	l := store.SessionLimits{Idle: 30 * time.Minute, Absolute: 12 * time.Hour}
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	token, csrf, err := db.CreateStudioSession(ctx, "facility@demo.example", "sub-1", "http://issuer", t0, l)
	if err != nil {
		t.Fatal(err)
	}
	if len(token) < 43 || len(csrf) < 43 || token == csrf {
		t.Fatalf("tokens %q and %q are not two random 256-bit tokens", token, csrf)
	}
	s, err := db.UseStudioSession(ctx, token, t0.Add(10*time.Second), l)
	if err != nil || s.Email != "facility@demo.example" || s.CSRFHash != store.TokenHash(csrf) || !s.LastSeen.Equal(t0) {
		t.Fatalf("session %+v, %v: want the person's, its use within the minute not written", s, err)
	}
	if _, err := db.UseStudioSession(ctx, token+"x", t0, l); !errors.Is(err, store.ErrSessionEnded) {
		t.Fatalf("another token found a session: %v", err)
	}
	// Firestore holds neither token.
	docs, err := db.StudioSessionDocs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		js, _ := json.Marshal(d)
		if bytes.Contains(js, []byte(token)) || bytes.Contains(js, []byte(csrf)) {
			t.Fatal("a session token is stored in plaintext")
		}
	}
	// Used after two minutes, it is live 29 minutes later; idle 31, ended.
	if _, err := db.UseStudioSession(ctx, token, t0.Add(2*time.Minute), l); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UseStudioSession(ctx, token, t0.Add(31*time.Minute), l); err != nil {
		t.Fatalf("a session used 29 minutes ago ended: %v", err)
	}
	if _, err := db.UseStudioSession(ctx, token, t0.Add(62*time.Minute), l); !errors.Is(err, store.ErrSessionEnded) {
		t.Fatalf("a session idle 31 minutes is live: %v", err)
	}
	// Signing out ends another at once, and twice is no error.
	token2, _, err := db.CreateStudioSession(ctx, "facility@demo.example", "sub-1", "http://issuer", t0, l)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := db.EndStudioSession(ctx, token2); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.UseStudioSession(ctx, token2, t0.Add(time.Second), l); !errors.Is(err, store.ErrSessionEnded) {
		t.Fatalf("a signed-out session is live: %v", err)
	}
}
