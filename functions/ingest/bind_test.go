package ingest_test

import (
	"context"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/sensor"
)

// TestSessionBoundToDevice: a Firestore writer who edits a session
// document's deviceId cannot make a sensor's readings another device's.
// The sealed session is bound to its device, so the edited document does
// not open: the packet is refused (acknowledged, not retried), nothing is
// stored for either device, and the sensor's next handshake works. The
// edit is met either by the snapshot (a session not cached yet) or, when
// a snapshot from before the edit is cached, by the packet's transaction.
func TestSessionBoundToDevice(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 300*time.Millisecond)
	victim := w.newSensor()
	refusals := 0
	for _, cached := range []bool{false, true} {
		creds := w.manufacture()
		s := w.sensorFor(creds)
		w.connect(s)
		if cached {
			w.send(s, 20)
		}
		w.retarget(s.DeviceID(), victim.DeviceID())
		before := w.temperatureCount(victim.DeviceID())

		s.Record(temp(99))
		pkt, err := s.Next(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := w.svc.Handle(context.Background(), w.hear("ccon-a", pkt, -70)); err != nil {
			t.Fatalf("cached %v: a tampered session must be refused and acknowledged, not retried: %v", cached, err)
		}
		refusals++
		if n := w.logs.WaitRejected("session-tampered", refusals, 5*time.Second); n != refusals {
			t.Fatalf("cached %v: %d session-tampered refusals, want %d; logs:\n%s", cached, n, refusals, w.logs.String())
		}
		if n := w.temperatureCount(victim.DeviceID()); n != before {
			t.Fatalf("cached %v: the victim device got %d readings from another sensor's packet", cached, n-before)
		}
		wantOwn := 0
		if cached {
			wantOwn = 1
		}
		if n := w.temperatureCount(s.DeviceID()); n != wantOwn {
			t.Fatalf("cached %v: %d readings stored for the sensor, want %d", cached, n, wantOwn)
		}
		w.noMoreDownlinks()

		// The sensor's next handshake (after a reboot or its rekey) makes
		// a new session, and its readings are stored as its own.
		// It starts its sequence numbers past the ones used before.
		again, err := sensor.New(creds, 100, sensor.Config{ResendAfter: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		w.connect(again)
		w.send(again, 21)
		if n := w.temperatureCount(s.DeviceID()); n != wantOwn+1 {
			t.Fatalf("cached %v: %d readings for the sensor after its new handshake, want %d", cached, n, wantOwn+1)
		}
	}
}

// send has s send one reading, heard by ccon-a, and takes its ACK.
func (w *world) send(s *sensor.Sensor, celsius float64) {
	w.t.Helper()
	s.Record(temp(celsius))
	pkt, err := s.Next(time.Now())
	if err != nil {
		w.t.Fatal(err)
	}
	w.deliverAll(w.hear("ccon-a", pkt, -70))
	if _, err := s.Receive(w.downlink().Packet, time.Now()); err != nil || s.Stats().Backlog != 0 {
		w.t.Fatalf("the packet was not acknowledged: %v", err)
	}
}

// retarget edits the deviceId of device's session document to another's,
// as a Firestore writer could.
func (w *world) retarget(device, other string) {
	w.t.Helper()
	ctx := context.Background()
	docs, err := w.fs.Collection("sessions").Where("deviceId", "==", device).Documents(ctx).GetAll()
	if err != nil || len(docs) != 1 {
		w.t.Fatalf("%d sessions of the sensor (%v), want 1", len(docs), err)
	}
	if _, err := docs[0].Ref.Update(ctx, []firestore.Update{{Path: "deviceId", Value: other}}); err != nil {
		w.t.Fatal(err)
	}
}

// temperatureCount counts a device's stored temperature readings.
func (w *world) temperatureCount(device string) int {
	n := 0
	for _, typ := range w.events(device) {
		if typ == "temperature" {
			n++
		}
	}
	return n
}
