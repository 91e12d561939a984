package connector_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/sealedsense/sealedsense/connector"
	"github.com/sealedsense/sealedsense/shared/air"
	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/logging/logtest"
	"github.com/sealedsense/sealedsense/shared/relay"
)

// TestLearnsEndorsedChannelKey: a connector provisioned with the old
// channel key refuses a downlink from the new key alone, learns the new
// key from an endorsed announcement (transmitting nothing) and saves it to
// its credentials file; once the cloud retires the old key, it forgets it
// and refuses what the old key signs.
func TestLearnsEndorsedChannelKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newRig(t)
	oldKey := r.channel
	oldPub := oldKey.Public().(ed25519.PublicKey)
	newPub, newKey, _ := ed25519.GenerateKey(rand.Reader)
	path := filepath.Join(t.TempDir(), "ccon-1.json")
	if err := credentials.SaveConnector(path, credentials.Connector{ConnectorID: "ccon-1", PrivateKey: r.key, ChannelPublic: oldPub}); err != nil {
		t.Fatal(err)
	}
	creds, err := credentials.LoadConnector(path)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logtest.Buffer{}
	c, err := connector.New(connector.Config{
		ID: "ccon-1", Key: r.key, ChannelKeys: creds.Trusted(),
		SaveChannelKeys: func(keys []ed25519.PublicKey) error { return credentials.SaveChannelKeys(path, keys) },
		Radio:           r.radio, Medium: r.medium.LocalAddr(),
		Ethernet:  r.link(),
		Heartbeat: time.Hour, Logger: slog.New(slog.NewJSONHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()
	defer func() { cancel(); <-done }()
	onAir := transmissions(r)

	dl := r.ps.Publisher("downlinks")
	defer dl.Stop()
	// send publishes one downlink and waits until the connector has
	// handled it, so each step sees the trust the last one left.
	send := func(key ed25519.PrivateKey, packet []byte, es ...relay.Endorsement) {
		t.Helper()
		env, err := relay.SignDownlink(key, relay.Downlink{ConnectorID: "ccon-1", Expires: time.Now().Add(time.Minute), Packet: packet, Endorsements: es})
		if err != nil {
			t.Fatal(err)
		}
		before := handled(c.Stats())
		if _, err := dl.Publish(ctx, &pubsub.Message{Data: env}).Get(ctx); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for handled(c.Stats()) == before {
			if time.Now().After(deadline) {
				t.Fatalf("the connector never handled the downlink; stats %+v", c.Stats())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	trusted := func(want ...ed25519.PublicKey) {
		t.Helper()
		saved, err := credentials.LoadConnector(path)
		if err != nil {
			t.Fatal(err)
		}
		for name, got := range map[string][]ed25519.PublicKey{"in memory": c.ChannelKeys(), "in the credentials file": saved.Trusted()} {
			if len(got) != len(want) {
				t.Fatalf("%s the connector trusts %d channel keys, want %d", name, len(got), len(want))
			}
			for i := range got {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("%s channel key %d is %x, want %x", name, i, got[i], want[i])
				}
			}
		}
	}

	send(newKey, []byte{3, 1}) // the new key, unendorsed
	if st := c.Stats(); st.Rejected != 1 || st.Transmitted != 0 {
		t.Fatalf("unendorsed new key: stats %+v, want it refused", st)
	}
	trusted(oldPub)
	send(newKey, nil, relay.Endorse(oldKey, newPub)) // an announcement
	if st := c.Stats(); st.Announcements != 1 || st.Transmitted != 0 {
		t.Fatalf("announcement: stats %+v, want it counted and not transmitted", st)
	}
	trusted(oldPub, newPub)
	if !strings.Contains(logs.String(), "learned a new channel key") {
		t.Fatalf("learning was not logged:\n%s", logs.String())
	}
	// The cloud retired the old key: replies carry no endorsement.
	send(newKey, []byte{3, 2})
	if f := wait(t, onAir, "transmission"); f.Kind != air.KindTransmit || !bytes.Equal(f.Packet, []byte{3, 2}) {
		t.Fatalf("transmitted %+v, want the reply", f)
	}
	trusted(newPub)
	send(oldKey, []byte{3, 3})
	if st := c.Stats(); st.Rejected != 2 || st.Transmitted != 1 {
		t.Fatalf("retired key: stats %+v, want it refused", st)
	}
	if n := strings.Count(logs.String(), "refusing a downlink"); n != 2 {
		t.Fatalf("%d refusals logged, want 2:\n%s", n, logs.String())
	}
}

func handled(s connector.Stats) uint64 {
	return s.Transmitted + s.Rejected + s.NotForMe + s.Announcements
}

// transmissions returns what the connector puts on the air.
func transmissions(r *rig) chan air.Frame {
	out := make(chan air.Frame, 10)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := r.medium.ReadFrom(buf)
			if err != nil {
				return
			}
			if f, err := air.Parse(bytes.Clone(buf[:n])); err == nil {
				out <- f
			}
		}
	}()
	return out
}
