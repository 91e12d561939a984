package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/functions/ingest"
	"github.com/sealedsense/sealedsense/shared/relay"
	"github.com/sealedsense/sealedsense/shared/sensor"
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

// BenchmarkHealthSweep measures what one sweep costs a project of 10,000
// sensors of which 1% went silent since the last: documents read and
// written (the connector, configuration and long-outage queries of the
// sweep included). Only the devices whose review time passed are read, so
// the cost follows the silent ones, not the fleet. Run it with
//
//	go test -run '^$' -bench HealthSweep -benchtime 5x ./functions/ingest/
func BenchmarkHealthSweep(b *testing.B) {
	const fleet, silent = 10_000, 100
	w := newCostWorld(b, ingest.Config{})
	ctx := context.Background()
	now := time.Now().UTC()
	health := func(due bool) map[string]any {
		review, last := now.Add(time.Hour), now
		if due {
			review, last = now.Add(-time.Minute), now.Add(-5*time.Minute)
		}
		return map[string]any{"reviewAt": review, "heard": true,
			"traffic": map[string]any{"lastPacket": last, "silentAt": review, "expected": int64(time.Minute), "gaps": 5}}
	}
	put := func(from, to int, due bool) {
		bw := w.fs.BulkWriter(ctx)
		for i := from; i < to; i++ {
			doc := map[string]any{"projectId": w.project, "type": "temperature", "health": health(due)}
			if _, err := bw.Set(w.fs.Collection("devices").Doc(fmt.Sprintf("bench-%05d", i)), doc); err != nil {
				b.Fatal(err)
			}
		}
		bw.End()
	}
	put(silent, fleet, false)
	var reads, writes int64
	for range b.N {
		put(0, silent, true) // 1% newly silent, outside the count
		w.c.reset()
		if _, err := w.svc.Sweep(ctx); err != nil {
			b.Fatal(err)
		}
		reads, writes = reads+w.c.reads.Load(), writes+w.c.writes.Load()
	}
	b.ReportMetric(float64(reads)/float64(b.N), "reads/sweep")
	b.ReportMetric(float64(writes)/float64(b.N), "writes/sweep")
}

// exchangeHeard is exchange with a new reading, the packet heard by each
// connector of rssi at that signal.
func (w *costWorld) exchangeHeard(s *sensor.Sensor, rssi map[string]float64) {
	w.tb.Helper()
	sent := w.repliesSent()
	s.Record(temp(20))
	pkt, err := s.Next(time.Now())
	if err != nil {
		w.tb.Fatal(err)
	}
	var envs [][]byte
	for id, r := range rssi {
		env, err := relay.SignUplink(w.conns[id], relay.Uplink{ConnectorID: id, Received: time.Now().UTC(), RSSI: r, SNR: 5, Packet: pkt})
		if err != nil {
			w.tb.Fatal(err)
		}
		envs = append(envs, env)
	}
	// The copies arrive together, as from connectors in range.
	var wg sync.WaitGroup
	for _, env := range envs {
		wg.Go(func() {
			if err := w.svc.Handle(context.Background(), pushEvent(w.project, env)); err != nil {
				w.tb.Errorf("a copy must be acknowledged: %v", err)
			}
		})
	}
	wg.Wait()
	// The reply may go through either connector, and the world hears
	// only ccon-a's: the sensor goes unanswered, which detection does
	// not mind. Its reply sent is what counts.
	w.waitReplySent(sent)
	select {
	case <-w.down:
	default:
	}
}

// TestLocationChangeOpensAndClears: a sensor heard at -70 and -95 dBm
// (±2 dB) for its learning phase, then at -45 and -118 (carried next to
// the other connector), opens LOCATION_CHANGE after three such packets,
// once; carried back, it clears after three.
func TestLocationChangeOpensAndClears(t *testing.T) {
	t.Parallel()
	w := newCostWorld(t, ingest.Config{Window: 300 * time.Millisecond})
	s := w.sensor()
	w.exchange(s, false) // the handshake
	home := func(i int) map[string]float64 {
		j := float64(i%5 - 2)
		return map[string]float64{"ccon-a": -70 + j, "ccon-b": -95 - j}
	}
	for i := range 25 {
		w.exchangeHeard(s, home(i))
	}
	if got := w.anomalyEvents(s.DeviceID()); len(got) > 0 {
		t.Fatalf("anomaly events while at home: %v", got)
	}
	for range 4 {
		w.exchangeHeard(s, map[string]float64{"ccon-a": -118, "ccon-b": -45})
	}
	if got := w.anomalyEvents(s.DeviceID()); !slices.Equal(got, []string{"LOCATION_CHANGE OPEN"}) {
		snap, _ := w.fs.Collection("devices").Doc(s.DeviceID()).Get(context.Background())
		loc, _ := snap.DataAt("health.location")
		t.Fatalf("after four packets from elsewhere, anomaly events %v; want one LOCATION_CHANGE OPEN (location state %v)", got, loc)
	}
	for i := range 4 {
		w.exchangeHeard(s, home(i))
	}
	if got := w.anomalyEvents(s.DeviceID()); !slices.Equal(got, []string{"LOCATION_CHANGE OPEN", "LOCATION_CHANGE CLEARED"}) {
		t.Fatalf("back home, anomaly events %v; want LOCATION_CHANGE OPEN then CLEARED", got)
	}
}
