package ingest_test

import (
	"context"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/emulators/stack"
	"github.com/sealedsense/sealedsense/functions/ingest"
	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/registry"
	"github.com/sealedsense/sealedsense/shared/relay"
)

// The copies a connector relays are only its claim: these tests send
// what a broken or hostile connector (or Pub/Sub's at-least-once
// delivery) sends, and check that honest copies still go through.

// instance is a second ingest instance of the world, over the same
// emulators: what Cloud Run runs when it scales out.
func (w *world) instance(window time.Duration) *ingest.Service {
	w.t.Helper()
	ctx := context.Background()
	kc := platformtest.KMS(w.t)
	keys, err := stack.EnsureKMS(ctx, kc, "projects/"+w.project+"/locations/europe/keyRings/r")
	if err != nil {
		w.t.Fatal(err)
	}
	deviceKeys := custody.NewWrapper(kc, keys.Device)
	ps := platformtest.PubSub(w.t, w.project)
	return ingest.New(ingest.Config{Window: window}, ingest.Deps{
		Firestore: w.fs, Registry: registry.New(w.fs, deviceKeys, custody.NewCache(deviceKeys, time.Hour)),
		KEKReader: custody.NewCache(custody.NewWrapper(kc, keys.SessionKEK), time.Hour),
		Events:    ps.Publisher(stack.TopicEvents), Downlinks: ps.Publisher(stack.TopicDownlinks),
		Logger: slog.New(slog.NewJSONHandler(w.logs, nil)),
	})
}

// relayed is connector id's signed envelope of up, pushed in a message
// Pub/Sub published at published (the CloudEvent's time, as the
// functions framework sets it from the push's publishTime).
func (w *world) relayed(id string, up relay.Uplink, published time.Time) event.Event {
	w.t.Helper()
	up.ConnectorID = id
	env, err := relay.SignUplink(w.conns[id], up)
	if err != nil {
		w.t.Fatal(err)
	}
	e := pushEvent(w.project, env)
	e.SetTime(published)
	return e
}

// receptionsDone waits for every reception of a device to be marked
// done, and fails if one is not within a few seconds.
func (w *world) receptionsDone(deviceID string) {
	w.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		docs, err := w.fs.Collection("receptions").Where("deviceId", "==", deviceID).Documents(context.Background()).GetAll()
		if err != nil {
			w.t.Fatal(err)
		}
		open := 0
		for _, d := range docs {
			if done, _ := d.Data()["done"].(bool); !done {
				open++
			}
		}
		if len(docs) > 0 && open == 0 {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%d of %d receptions of %s never marked done; logs:\n%s", open, len(docs), deviceID, w.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// links reads a device's links as stored.
func (w *world) links(deviceID string) map[string]any {
	w.t.Helper()
	snap, err := w.fs.Collection("devices").Doc(deviceID).Get(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	links, _ := snap.Data()["links"].(map[string]any)
	return links
}

// TestBadMetadataRefused: a copy whose RSSI, SNR or reception time is out
// of bounds is refused as bad-metadata, acknowledged, and claims nothing:
// the honest copy after it is the packet's owner, and no stored link or
// event holds the bad values.
func TestBadMetadataRefused(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 300*time.Millisecond)
	s := w.newSensor()
	w.connect(s)
	s.Record(temp(21))
	pkt, err := s.Next(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	honest := relay.Uplink{Received: now, RSSI: -90, SNR: 3, Packet: pkt}
	bad := func(change func(*relay.Uplink)) relay.Uplink {
		up := honest
		change(&up)
		return up
	}
	tests := []struct {
		name  string
		up    relay.Uplink
		field string
	}{
		{"RSSI +Inf", bad(func(u *relay.Uplink) { u.RSSI = math.Inf(1) }), "rssi"},
		{"RSSI -Inf", bad(func(u *relay.Uplink) { u.RSSI = math.Inf(-1) }), "rssi"},
		{"RSSI NaN", bad(func(u *relay.Uplink) { u.RSSI = math.NaN() }), "rssi"},
		{"RSSI above 0 dBm", bad(func(u *relay.Uplink) { u.RSSI = 30 }), "rssi"},
		{"SNR NaN", bad(func(u *relay.Uplink) { u.SNR = math.NaN() }), "snr"},
		{"SNR +Inf", bad(func(u *relay.Uplink) { u.SNR = math.Inf(1) }), "snr"},
		{"received an hour after publishing", bad(func(u *relay.Uplink) { u.Received = now.Add(time.Hour) }), "received"},
		{"received an hour before publishing", bad(func(u *relay.Uplink) { u.Received = now.Add(-time.Hour) }), "received"},
		{"no reception time", bad(func(u *relay.Uplink) { u.Received = time.Time{} }), "received"},
	}
	for i, tc := range tests {
		if err := w.svc.Handle(context.Background(), w.relayed("ccon-b", tc.up, now)); err != nil {
			t.Fatalf("%s: must be acknowledged, not retried: %v", tc.name, err)
		}
		if got := w.logs.Rejected("bad-metadata"); got != i+1 {
			t.Fatalf("%s: %d bad-metadata refusals, want %d; logs:\n%s", tc.name, got, i+1, w.logs.String())
		}
		if !strings.Contains(w.logs.String(), `"field":"`+tc.field+`"`) {
			t.Fatalf("%s: the refusal does not name the field %s", tc.name, tc.field)
		}
	}
	// The honest copy, from a message Pub/Sub redelivers three minutes
	// after publishing it: its reception time is checked against the
	// publish time, not the time it arrives.
	old := now.Add(-3 * time.Minute)
	honest.Received = old
	w.deliverAll(w.relayed("ccon-a", honest, old.Add(50*time.Millisecond)))
	d := w.downlink()
	if d.ConnectorID != "ccon-a" {
		t.Fatalf("reply via %q, want ccon-a: a refused copy claimed the packet", d.ConnectorID)
	}
	if _, err := s.Receive(d.Packet, time.Now()); err != nil || s.Stats().Backlog != 0 {
		t.Fatalf("the honest copy was not answered: %v", err)
	}
	w.noMoreDownlinks()
	w.receptionsDone(s.DeviceID())
	for id, l := range w.links(s.DeviceID()) {
		rssi, _ := l.(map[string]any)["rssi"].(float64)
		if math.IsNaN(rssi) || rssi < -150 || rssi > 0 {
			t.Fatalf("link %s stored RSSI %v", id, rssi)
		}
	}
}

// TestSameConnectorTwice: an honest gateway that forwards a packet twice
// (two copies from one connector, heard a few ms apart) must not break
// the reply's bookkeeping: one reply, and the links learnt. The duplicate
// reaches another instance, which owns it there and runs the same
// transaction: whichever instance commits first answers, the other finds
// the counter taken.
func TestSameConnectorTwice(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 300*time.Millisecond)
	other := w.instance(300 * time.Millisecond)
	s := w.newSensor()
	w.connect(s)
	s.Record(temp(22))
	pkt, err := s.Next(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	first := relay.Uplink{Received: now, RSSI: -70, SNR: 5, Packet: pkt}
	again := relay.Uplink{Received: now.Add(5 * time.Millisecond), RSSI: -72, SNR: 4, Packet: pkt}
	w.deliverAll(w.relayed("ccon-a", first, now))
	if err := other.Handle(context.Background(), w.relayed("ccon-a", again, now.Add(5*time.Millisecond))); err != nil {
		t.Fatal(err)
	}
	if err := other.Handle(context.Background(), w.relayed("ccon-b", relay.Uplink{Received: now, RSSI: -95, SNR: 1, Packet: pkt}, now)); err != nil {
		t.Fatal(err)
	}
	d := w.downlink()
	if _, err := s.Receive(d.Packet, time.Now()); err != nil {
		t.Fatal(err)
	}
	w.noMoreDownlinks()
	a, _ := w.links(s.DeviceID())["ccon-a"].(map[string]any)
	seen, _ := a["lastSeen"].(time.Time)
	if !seen.Equal(now.Truncate(time.Microsecond)) && !seen.Equal(again.Received.Truncate(time.Microsecond)) {
		t.Fatalf("ccon-a's link last seen %v, want one of its copies' %v, %v: links stopped learning", seen, now, again.Received)
	}
}

// TestSameEnvelopeOnTwoInstances: Pub/Sub delivers one message twice, to
// two instances at the same moment. Exactly one processes it: one reply
// goes out, and the reception is marked done. Run with -race.
func TestSameEnvelopeOnTwoInstances(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 300*time.Millisecond)
	other := w.instance(300 * time.Millisecond)
	s := w.newSensor()
	both := func(msg event.Event) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, svc := range []*ingest.Service{w.svc, other} {
			wg.Go(func() { errs[i] = svc.Handle(context.Background(), msg) })
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("a delivery failed: %v", err)
			}
		}
		d := w.downlink()
		w.noMoreDownlinks()
		if _, err := s.Receive(d.Packet, time.Now()); err != nil {
			t.Fatal(err)
		}
		w.receptionsDone(s.DeviceID())
	}
	// The handshake first, then packets.
	for i := range 4 {
		if i > 0 {
			s.Record(temp(float64(20 + i)))
		}
		pkt, err := s.Next(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		both(w.hear("ccon-a", pkt, -70))
	}
	if st := s.Stats(); st.Backlog != 0 || st.Acked != 3 {
		t.Fatalf("sensor after the packets: %+v", st)
	}
	n := 0
	for _, typ := range w.events(s.DeviceID()) {
		if typ == "temperature" {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("%d temperature events, want 3", n)
	}
}
