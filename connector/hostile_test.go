package connector

import (
	"context"
	"crypto/ed25519"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
)

type nopPubSub struct{}

func (nopPubSub) Publish(context.Context, *pubsub.Message) *pubsub.PublishResult { return nil }
func (nopPubSub) Receive(context.Context, func(context.Context, *pubsub.Message)) error {
	return nil
}

func TestNewRefusesHostileUnlessAllowed(t *testing.T) {
	t.Parallel()
	radio, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer radio.Close()
	_, key, _ := ed25519.GenerateKey(nil)
	pub, _, _ := ed25519.GenerateKey(nil)
	base := Config{ID: "c", Key: key, ChannelKeys: []ed25519.PublicKey{pub}, Radio: radio, Medium: radio.LocalAddr(),
		Ethernet: &Link{Uplinks: nopPubSub{}, Status: nopPubSub{}, Downlinks: nopPubSub{}}}
	tests := []struct {
		name    string
		hostile *Hostile
		allow   bool
		refused bool
	}{
		{"honest", nil, false, false},
		{"hostile without the test-only switch", &Hostile{RSSI: -30}, false, true},
		{"hostile with it", &Hostile{RSSI: -30}, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			cfg.Hostile, cfg.AllowHostile = tc.hostile, tc.allow
			_, err := New(cfg)
			if (err != nil) != tc.refused || err != nil && !strings.Contains(err.Error(), "tests only") {
				t.Fatalf("New: %v, want refused %v", err, tc.refused)
			}
		})
	}
}

func TestHostileClaim(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	liar := &Hostile{RSSI: -30, PoisonEvery: 4}
	tests := []struct {
		name     string
		h        *Hostile
		n        uint64
		wantAt   time.Time
		wantRSSI float64 // NaN compared as NaN
		poisoned bool
	}{
		{"an honest connector says what it measured", nil, 4, at, -97, false},
		{"a liar claims its RSSI", liar, 1, at, -30, false},
		{"every 4th is poisoned: +Inf, an hour ahead", liar, 4, at.Add(time.Hour), math.Inf(1), true},
		{"then -Inf", liar, 8, at.Add(time.Hour), math.Inf(-1), true},
		{"then NaN", liar, 12, at.Add(time.Hour), math.NaN(), true},
		{"only claiming", &Hostile{RSSI: -30}, 4, at, -30, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gotAt, rssi, poisoned := tc.h.claim(tc.n, at, -97)
			sameRSSI := rssi == tc.wantRSSI || math.IsNaN(rssi) && math.IsNaN(tc.wantRSSI)
			if !gotAt.Equal(tc.wantAt) || !sameRSSI || poisoned != tc.poisoned {
				t.Fatalf("claim = %v, %v, %v; want %v, %v, %v", gotAt, rssi, poisoned, tc.wantAt, tc.wantRSSI, tc.poisoned)
			}
		})
	}
}
