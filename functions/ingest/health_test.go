package ingest_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/functions/ingest"
)

// anomalyEvents lists a device's stored deviceAnomaly events, oldest
// first, as "KIND STATE".
func (w *costWorld) anomalyEvents(deviceID string) []string {
	w.tb.Helper()
	docs, err := w.fs.Collection("events").Where("deviceId", "==", deviceID).Where("eventType", "==", "deviceAnomaly").
		OrderBy("timestamp", firestore.Asc).Documents(context.Background()).GetAll()
	if err != nil {
		w.tb.Fatal(err)
	}
	var out []string
	for _, doc := range docs {
		var e struct {
			Data struct {
				DeviceAnomaly struct{ Kind, State string } `json:"deviceAnomaly"`
			} `json:"data"`
		}
		raw, _ := doc.Data()["json"].([]byte)
		if err := json.Unmarshal(raw, &e); err != nil {
			w.tb.Fatal(err)
		}
		out = append(out, e.Data.DeviceAnomaly.Kind+" "+e.Data.DeviceAnomaly.State)
	}
	return out
}

// TestCounterJumpRidesThePacket: a sensor's reading numbers jump 100,000
// ahead. The packet that shows it opens COUNTER_JUMP in the packet's own
// commit, which writes one document more than a steady packet (the
// event) and reads none more; clean packets after it clear it, once. A
// steady packet's detection state rides in the device update the packet
// makes anyway: the counts name what it costs.
func TestCounterJumpRidesThePacket(t *testing.T) {
	t.Parallel()
	w := newCostWorld(t, ingest.Config{Window: 50 * time.Millisecond})
	s := w.sensor()
	w.exchange(s, false) // the handshake
	for range 3 {
		w.exchange(s, true)
	}
	cost := func() [2]int64 {
		w.c.reset()
		w.exchange(s, true)
		return [2]int64{w.c.reads.Load(), w.c.writes.Load()}
	}
	steady := cost()
	s.SkipSequence(100_000)
	opening := cost()
	t.Logf("documents [read written] by a steady packet %v, by the one that opens an anomaly %v", steady, opening)
	if got := w.anomalyEvents(s.DeviceID()); !slices.Equal(got, []string{"COUNTER_JUMP OPEN"}) {
		t.Fatalf("after the jump, anomaly events %v; want one COUNTER_JUMP OPEN", got)
	}
	if opening != [2]int64{steady[0], steady[1] + 1} {
		t.Errorf("the opening packet cost [read written] %v, a steady one %v: want one more written (the event)", opening, steady)
	}
	flagged := func() bool {
		snap, err := w.fs.Collection("devices").Doc(s.DeviceID()).Get(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		v, _ := snap.DataAt("health.anomalous")
		return v == true
	}
	if !flagged() {
		t.Fatal("the device is not flagged anomalous while COUNTER_JUMP is open")
	}
	for range 8 {
		w.exchange(s, true)
	}
	if got := w.anomalyEvents(s.DeviceID()); !slices.Equal(got, []string{"COUNTER_JUMP OPEN", "COUNTER_JUMP CLEARED"}) {
		t.Fatalf("after clean packets, anomaly events %v; want COUNTER_JUMP OPEN then CLEARED, once each", got)
	}
	if flagged() {
		t.Fatal("the device is still flagged anomalous after its anomaly cleared")
	}
}

// TestCounterBackwardsOpensOnce: a sensor whose reading numbers step 100
// back without a reboot, 640 readings into its epoch, opens
// COUNTER_BACKWARDS once, however many packets repeat old numbers, and
// clears it once its numbers are past where they were.
func TestCounterBackwardsOpensOnce(t *testing.T) {
	t.Parallel()
	w := newCostWorld(t, ingest.Config{Window: 50 * time.Millisecond})
	s := w.sensor()
	w.exchange(s, false) // the handshake
	batch := func(n int) {
		for range n - 1 {
			s.Record(temp(20))
		}
		w.exchange(s, true)
	}
	// Packets of 16 leave no reading owed: a packet of 32 carries the
	// newest that fit, and those left behind may come later, below the
	// highest.
	for range 40 {
		batch(16)
	}
	if got := w.anomalyEvents(s.DeviceID()); len(got) > 0 {
		t.Fatalf("anomaly events before the step back: %v", got)
	}
	s.SkipSequence(-100)
	for range 3 {
		batch(10)
	}
	if got := w.anomalyEvents(s.DeviceID()); !slices.Equal(got, []string{"COUNTER_BACKWARDS OPEN"}) {
		t.Fatalf("after three packets of old numbers, anomaly events %v; want one COUNTER_BACKWARDS OPEN", got)
	}
	for range 16 {
		batch(10)
	}
	if got := w.anomalyEvents(s.DeviceID()); !slices.Equal(got, []string{"COUNTER_BACKWARDS OPEN", "COUNTER_BACKWARDS CLEARED"}) {
		t.Fatalf("once past the old numbers, anomaly events %v; want COUNTER_BACKWARDS OPEN then CLEARED", got)
	}
}
