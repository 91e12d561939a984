package ingest

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/anomaly"
	"github.com/sealedsense/sealedsense/shared/radio"
	"github.com/sealedsense/sealedsense/shared/store"
)

func TestConnectorLimits(t *testing.T) {
	tests := []struct {
		name      string
		rate      float64
		calls     int           // handshakes, then unknown lookups, all at once
		wait      time.Duration // then this long, and one more
		refused   int
		lastAllow bool
	}{
		{"within the burst", 1, 10, 0, 0, false},
		{"past the burst", 1, 12, 0, 2, false},
		{"refilled after a second", 1, 11, time.Second, 1, true},
		{"not yet refilled", 1, 11, 500 * time.Millisecond, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			var logs bytes.Buffer
			l := newConnectorLimits(Config{HandshakeRate: tc.rate, UnknownRate: tc.rate}, func() time.Time { return now }, slog.New(slog.NewJSONHandler(&logs, nil)))
			refusedHS, refusedLookups := 0, 0
			for range tc.calls {
				if l.handshake("c1") != nil {
					refusedHS++
				}
				if l.beforeLookup("c1") != nil {
					refusedLookups++
				} else {
					l.missed("c1")
				}
			}
			if refusedHS != tc.refused || refusedLookups != tc.refused {
				t.Fatalf("refused %d handshakes and %d lookups, want %d each", refusedHS, refusedLookups, tc.refused)
			}
			now = now.Add(tc.wait)
			if got := l.handshake("c1") == nil; got != tc.lastAllow && tc.wait > 0 {
				t.Fatalf("after %v: allowed %v, want %v", tc.wait, got, tc.lastAllow)
			}
			// Another connector has its own limits.
			if err := l.handshake("c2"); err != nil {
				t.Fatalf("c2 limited by c1: %v", err)
			}
			var rej *rejection
			if err := l.refuse("c1", "handshakes"); !errors.As(err, &rej) || rej.reason != "rate-limited" {
				t.Fatalf("refusal %v, want a rate-limited rejection", err)
			}
			if !strings.Contains(logs.String(), `"metric":"connector-rate-limited","connectorId":"c1","limit":"handshakes"`) {
				t.Fatalf("no metric line: %s", logs.String())
			}
		})
	}
}

// A known lookup does not spend the unknown budget.
func TestKnownLookupsAreFree(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newConnectorLimits(Config{HandshakeRate: 1, UnknownRate: 1}, func() time.Time { return now }, slog.New(slog.DiscardHandler))
	for range 100 {
		if err := l.beforeLookup("c1"); err != nil {
			t.Fatal(err)
		}
	}
}

type fakeSessions struct{ reads int }

func (f *fakeSessions) Session(context.Context, uint32) (store.Session, error) {
	f.reads++
	return store.Session{}, store.ErrNotFound
}

func (f *fakeSessions) Device(context.Context, string) (store.Device, error) {
	return store.Device{}, store.ErrNotFound
}

// TestMissingIndexes: an unknown receiver index is remembered for
// negativeTTL, and a handshake that creates it forgets it at once.
func TestMissingIndexes(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	db := &fakeSessions{}
	c := newSessionCache(db, radio.DefaultLimits(), clock)
	limits := newConnectorLimits(Config{HandshakeRate: 100, UnknownRate: 100}, clock, slog.New(slog.DiscardHandler))
	snapshot := func() {
		t.Helper()
		var rej *rejection
		if _, _, err := c.snapshot(context.Background(), nil, 7, limits, "c1"); !errors.As(err, &rej) || rej.reason != "unknown-session" {
			t.Fatalf("snapshot of an unknown index: %v", err)
		}
	}
	steps := []struct {
		name  string
		do    func()
		reads int
	}{
		{"first packet reads", func() {}, 1},
		{"second is cached", func() {}, 1},
		{"still cached just before the ttl", func() { now = now.Add(negativeTTL - time.Second) }, 1},
		{"read again after the ttl", func() { now = now.Add(2 * time.Second) }, 2},
		{"cached again", func() {}, 2},
		{"a handshake created the index", func() { c.created(7) }, 3},
	}
	for _, st := range steps {
		st.do()
		snapshot()
		if db.reads != st.reads {
			t.Fatalf("%s: %d reads, want %d", st.name, db.reads, st.reads)
		}
	}
}

// A device gets twice the handshakes that open HANDSHAKE_FLOOD (18 a
// minute by default) admitted per minute: a genuine sensor, which starts
// at most 12, is never refused; a clone at three a second is held to 36 a
// minute, which keeps the flood open.
func TestDeviceHandshakeAdmission(t *testing.T) {
	tests := []struct {
		name     string
		every    time.Duration // between handshakes
		run      time.Duration
		admitted int // at most, over the whole run
		refused  bool
	}{
		{"a genuine sensor's retries", 5 * time.Second, 10 * time.Minute, 121, false},
		{"a clone at three a second", 300 * time.Millisecond, 2 * time.Minute, 36 + 2*36 + 1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			var logs bytes.Buffer
			d := newDeviceHandshakes(anomaly.Settings{}, func() time.Time { return now }, slog.New(slog.NewJSONHandler(&logs, nil)))
			admitted, refused := 0, 0
			for end := now.Add(tc.run); now.Before(end); now = now.Add(tc.every) {
				err := d.beforeClaim("dev-1", "ccon-1")
				if err == nil {
					err = d.admit("dev-1", "ccon-1")
				}
				if err != nil {
					var rej *rejection
					if !errors.As(err, &rej) || rej.reason != "rate-limited" {
						t.Fatalf("refusal %v, want a rate-limited rejection", err)
					}
					refused++
					continue
				}
				admitted++
			}
			if admitted > tc.admitted || (refused > 0) != tc.refused {
				t.Fatalf("admitted %d (at most %d), refused %d (any: %v)", admitted, tc.admitted, refused, tc.refused)
			}
			if tc.refused && admitted*60 < 36*int(tc.run.Seconds()) {
				t.Fatalf("admitted %d in %v: below 36 a minute, the flood would clear while it goes on", admitted, tc.run)
			}
			if tc.refused && !strings.Contains(logs.String(), `"metric":"device-rate-limited","deviceId":"dev-1","connectorId":"ccon-1"`) {
				t.Fatalf("no metric line: %s", logs.String())
			}
			// Another device has its own limit.
			if err := d.admit("dev-2", "ccon-1"); err != nil {
				t.Fatalf("dev-2 limited by dev-1: %v", err)
			}
		})
	}
}

// TestSoftwarePace: a connector's heartbeats get softwareBurst software
// envelopes at once and softwareRate a second after that, however fast
// they come; another connector's pace is its own.
func TestSoftwarePace(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newConnectorLimits(Config{HandshakeRate: 1, UnknownRate: 1}, func() time.Time { return now }, slog.New(slog.DiscardHandler))
	sent := 0
	for range 100 {
		if l.software("c1") {
			sent++
		}
	}
	if sent != softwareBurst || !l.software("c2") {
		t.Fatalf("%d envelopes at once for c1 (want %d), or c2 held back by c1", sent, softwareBurst)
	}
	now = now.Add(time.Second)
	sent = 0
	for range 100 {
		if l.software("c1") {
			sent++
		}
	}
	if sent != softwareRate {
		t.Fatalf("%d envelopes in the next second; want %d", sent, softwareRate)
	}
}
