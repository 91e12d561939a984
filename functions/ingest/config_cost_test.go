package ingest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/functions/ingest"
	"github.com/sealedsense/sealedsense/shared/devconfig"
	"github.com/sealedsense/sealedsense/shared/sensor"
	"github.com/sealedsense/sealedsense/shared/store"
)

// exchange sends s's next packet (a new reading if reading) through
// ccon-a, hands the reply to s, and waits until ingest has finished with
// it (its "reply sent" line), so that the counts hold all it cost.
func (w *costWorld) exchange(s *sensor.Sensor, reading bool) {
	w.tb.Helper()
	sent := w.repliesSent()
	if reading {
		s.Record(temp(20))
	}
	pkt, err := s.Next(time.Now())
	if err != nil {
		w.tb.Fatal(err)
	}
	w.send("ccon-a", pkt)
	select {
	case d := <-w.down:
		if _, err := s.Receive(d.Packet, time.Now()); err != nil {
			w.tb.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		w.tb.Fatalf("no downlink; logs:\n%s", w.logs.String())
	}
	w.waitReplySent(sent)
}

// repliesSent counts the "reply sent" lines logged so far.
func (w *costWorld) repliesSent() int { return strings.Count(w.logs.String(), `"msg":"reply sent"`) }

// waitReplySent waits until more than sent replies have been logged as
// sent, so that the counts hold all a packet cost.
func (w *costWorld) waitReplySent(sent int) {
	w.tb.Helper()
	for deadline := time.Now().Add(15 * time.Second); w.repliesSent() == sent; {
		if time.Now().After(deadline) {
			w.tb.Fatalf("no reply sent line; logs:\n%s", w.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConfiguredDeviceCostsNothingMore: a steady-state data packet costs
// no KMS call, and a packet of a device with a pending configuration,
// which its reply carries, reads and writes no more documents than one
// of a device without.
func TestConfiguredDeviceCostsNothingMore(t *testing.T) {
	t.Parallel()
	w := newCostWorld(t, ingest.Config{Window: 50 * time.Millisecond})
	plain, configured := w.sensor(), w.sensor()
	for _, s := range []*sensor.Sensor{plain, configured} {
		w.exchange(s, false) // the handshake
		w.exchange(s, true)
	}
	cs := store.ConfigState{Desired: devconfig.Config{SampleInterval: 60, Batch: 2}, DesiredVersion: 1, Status: store.ConfigPending, Requested: time.Now(), Updated: time.Now()}
	if _, err := w.fs.Collection("devices").Doc(configured.DeviceID()).Update(context.Background(), []firestore.Update{{Path: "configuration", Value: cs}}); err != nil {
		t.Fatal(err)
	}
	cost := func(s *sensor.Sensor) [3]int64 {
		w.c.reset()
		w.exchange(s, true)
		return [3]int64{w.c.kms.Load(), w.c.reads.Load(), w.c.writes.Load()}
	}
	base, withConfig := cost(plain), cost(configured)
	// What the reply carries is TestConfigurationRidesRepliesUntilConfirmed's;
	// here, that it carried one.
	snap, err := w.fs.Collection("devices").Doc(configured.DeviceID()).Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := snap.DataAt("configuration.attempts"); n != int64(1) {
		t.Fatalf("the configured device's configuration went out %v times, want 1", n)
	}
	t.Logf("a steady-state packet costs [kms reads writes] %v, with a configuration in its reply %v", base, withConfig)
	if base[0] != 0 || withConfig[0] != 0 {
		t.Fatalf("KMS calls per steady-state packet: %d without a configuration, %d with; want 0", base[0], withConfig[0])
	}
	if withConfig != base {
		t.Fatalf("a packet whose reply carries a configuration cost [kms reads writes] %v, one without %v: want the same", withConfig, base)
	}
}

// TestOneCommitPerPacket: a data packet of one reading, heard by two
// connectors, costs one Firestore commit, which writes two documents (the
// reading's event, and the device with its session), and is answered
// once.
func TestOneCommitPerPacket(t *testing.T) {
	t.Parallel()
	w := newCostWorld(t, ingest.Config{Window: 50 * time.Millisecond})
	s := w.sensor()
	w.exchange(s, false) // the handshake
	w.exchange(s, true)  // the first packet also stores a networkStatus event
	w.c.reset()
	const packets = 5
	for range packets {
		sent := w.repliesSent()
		s.Record(temp(20))
		pkt, err := s.Next(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		w.send("ccon-a", pkt)
		w.send("ccon-b", pkt)
		d := <-w.down
		if _, err := s.Receive(d.Packet, time.Now()); err != nil {
			t.Fatal(err)
		}
		w.waitReplySent(sent)
	}
	commits, writes := w.c.commits.Load(), w.c.writes.Load()
	t.Logf("%d packets of one reading, each heard twice: %d commits, %d documents written, %d read", packets, commits, writes, w.c.reads.Load())
	if commits != packets || writes != 2*packets {
		t.Fatalf("%d packets cost %d commits writing %d documents; want %d commits, 2 documents each", packets, commits, writes, packets)
	}
	select {
	case d := <-w.down:
		t.Fatalf("a second reply, via %s", d.ConnectorID)
	case <-time.After(200 * time.Millisecond):
	}
	if st := s.Stats(); st.Backlog != 0 {
		t.Fatalf("sensor after the replies: %+v", st)
	}
}
