package ingest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/functions/ingest"
	"github.com/sealedsense/sealedsense/shared/radio"
	"github.com/sealedsense/sealedsense/shared/registry"
)

// TestForgedHandshakeStoresNothing: a valid message 1 from a key no
// sensor has is refused before it claims anything, and the same key again
// costs no read.
func TestForgedHandshakeStoresNothing(t *testing.T) {
	t.Parallel()
	w := newCostWorld(t, ingest.Config{})
	w.warm()
	pkt := forgedInitiation(t, w.cloud)
	w.send("ccon-a", pkt)
	if n := w.logs.Rejected("unknown-sensor"); n != 1 {
		t.Fatalf("%d unknown-sensor refusals, want 1:\n%s", n, w.logs.String())
	}
	if got := w.c.writes.Load(); got != 0 {
		t.Fatalf("a forged message 1 wrote %d documents, want none", got)
	}
	if n, err := w.fs.Collection("receptions").Documents(context.Background()).GetAll(); err != nil || len(n) != 0 {
		t.Fatalf("receptions after a forged message 1: %d (%v), want none", len(n), err)
	}
	w.c.reset()
	w.send("ccon-a", pkt)
	if got := w.c.reads.Load() + w.c.writes.Load(); got != 0 {
		t.Fatalf("the same unknown key again cost %d documents, want none (cached)", got)
	}
	if n := w.logs.Rejected("unknown-sensor"); n != 2 {
		t.Fatalf("%d unknown-sensor refusals, want 2", n)
	}
}

// TestReplayedHandshakeCostsNoKMS: a message 1 older than the device's
// last accepted handshake is refused before its PSK is unwrapped, even on
// an instance that has not cached the PSK.
func TestReplayedHandshakeCostsNoKMS(t *testing.T) {
	t.Parallel()
	w := newCostWorld(t, ingest.Config{Window: 50 * time.Millisecond})
	m, err := registry.New(w.fs, w.devKeys, nil).Manufacture(context.Background(), registry.Spec{Type: "temperature", ProjectID: w.project}, w.devKeys.KeyName())
	if err != nil {
		t.Fatal(err)
	}
	initiation := func(at time.Time) []byte {
		_, pkt, err := radio.Initiate(radio.InitiatorConfig{Static: m.Static, PSK: [32]byte(m.PSK), CloudPublic: w.cloud, SenderIndex: 9, Now: at})
		if err != nil {
			t.Fatal(err)
		}
		return pkt
	}
	old := initiation(time.Now().Add(-time.Minute)) // captured, never delivered
	w.send("ccon-a", initiation(time.Now()))
	<-w.down
	w.start(ingest.Config{Window: 50 * time.Millisecond}) // a new instance: no PSK cached
	w.warm()
	w.send("ccon-a", old)
	if n := w.logs.Rejected("replayed-handshake"); n != 1 {
		t.Fatalf("%d replayed-handshake refusals, want 1:\n%s", n, w.logs.String())
	}
	if n := w.c.kms.Load(); n != 0 {
		t.Fatalf("a replayed message 1 cost %d KMS calls, want none", n)
	}
}

// TestUnknownIndexCached: packets to a receiver index no session has cost
// one read, not one each.
func TestUnknownIndexCached(t *testing.T) {
	t.Parallel()
	w := newCostWorld(t, ingest.Config{})
	w.warm()
	for range 5 {
		w.send("ccon-a", unknownIndexPacket(t, 4242))
	}
	if n := w.logs.Rejected("unknown-session"); n != 6 {
		t.Fatalf("%d unknown-session refusals, want 6 (the warm-up's and 5)", n)
	}
	if got := w.c.reads.Load(); got != 1 {
		t.Fatalf("5 packets to one unknown index read %d documents, want 1", got)
	}
}

// TestReplayedPacketCostsNothing: a stored packet relayed again learns it
// is a replay from the session snapshot, with no Firestore read or write.
func TestReplayedPacketCostsNothing(t *testing.T) {
	t.Parallel()
	w := newCostWorld(t, ingest.Config{Window: 50 * time.Millisecond})
	pkt := w.storedPacket()
	time.Sleep(200 * time.Millisecond)
	w.c.reset()
	w.send("ccon-a", pkt)
	if n := w.logs.Rejected("replay"); n != 1 {
		t.Fatalf("%d replay refusals, want 1:\n%s", n, w.logs.String())
	}
	if r, wr := w.c.reads.Load(), w.c.writes.Load(); r != 0 || wr != 0 {
		t.Fatalf("a replayed packet cost %d reads and %d writes, want none", r, wr)
	}
}

// TestConnectorRateLimits: a connector that floods unknown indexes is
// refused "rate-limited" once past its limit, with a line the fleet-health
// alert counts; another connector is not affected.
func TestConnectorRateLimits(t *testing.T) {
	t.Parallel()
	// 0.5 a second: 5 at once.
	w := newCostWorld(t, ingest.Config{UnknownRate: 0.5, HandshakeRate: 0.2})
	w.warm() // spends one of ccon-a's
	for i := range 8 {
		w.send("ccon-a", unknownIndexPacket(t, uint32(5000+i)))
	}
	if n := w.logs.Rejected("rate-limited"); n != 4 {
		t.Fatalf("%d rate-limited refusals, want 4:\n%s", n, w.logs.String())
	}
	if got := w.c.reads.Load(); got != 4 {
		t.Fatalf("%d reads, want 4: the refused packets must not read", got)
	}
	if n := strings.Count(w.logs.String(), `"metric":"connector-rate-limited","connectorId":"ccon-a","limit":"unknown-lookups"`); n != 4 {
		t.Fatalf("%d connector-rate-limited lines, want 4:\n%s", n, w.logs.String())
	}
	w.send("ccon-b", unknownIndexPacket(t, 6000))
	if n := w.logs.Rejected("unknown-session"); n != 6 {
		t.Fatalf("ccon-b was limited by ccon-a's flood:\n%s", w.logs.String())
	}
	// Handshakes: 0.2 a second is 2 at once.
	for range 3 {
		w.send("ccon-b", forgedInitiation(t, w.cloud))
	}
	if !strings.Contains(w.logs.String(), `"connectorId":"ccon-b","limit":"handshakes"`) {
		t.Fatalf("the third handshake was not limited:\n%s", w.logs.String())
	}
}
