package ingest_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/sealedsense/sealedsense/emulators/platform"
	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/emulators/stack"
	"github.com/sealedsense/sealedsense/functions/ingest"
	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/logging/logtest"
	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/registry"
	"github.com/sealedsense/sealedsense/shared/relay"
	"github.com/sealedsense/sealedsense/shared/sensor"
)

func TestMain(m *testing.M) { platformtest.Main(m) }

// world is one project's provisioned deployment with an in-process ingest
// Service in front of the real emulators.
type world struct {
	t          *testing.T
	project    string
	fs         *firestore.Client
	svc        *ingest.Service
	conns      map[string]ed25519.PrivateKey
	channelPub ed25519.PublicKey
	logs       *logtest.Buffer
	downlinks  chan relay.Downlink
	// dropNextReply makes the next reply vanish (published to a topic no
	// connector reads), as if the instance had died before sending it.
	dropNextReply atomic.Bool
}

func newWorld(t *testing.T, window time.Duration) *world {
	t.Helper()
	return newWorldConfig(t, ingest.Config{Window: window})
}

// newWorldConfig is newWorld with the Service configured by cfg.
func newWorldConfig(t *testing.T, cfg ingest.Config) *world {
	t.Helper()
	ctx := context.Background()
	project := platformtest.ProjectID(t)
	fs := platformtest.Firestore(t, project)
	kc := platformtest.KMS(t)
	keys, err := stack.EnsureKMS(ctx, kc, "projects/"+project+"/locations/europe/keyRings/r")
	if err != nil {
		t.Fatal(err)
	}
	deviceKeys := custody.NewWrapper(kc, keys.Device)
	reg := registry.New(fs, deviceKeys, custody.NewCache(deviceKeys, time.Hour))
	kek := custody.NewWrapper(kc, keys.SessionKEK)
	ck, err := reg.Bootstrap(ctx, kek, keys.Device)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, project: project, fs: fs, conns: map[string]ed25519.PrivateKey{}, channelPub: ck.ChannelPublic(),
		logs: &logtest.Buffer{}, downlinks: make(chan relay.Downlink, 100)}
	for _, id := range []string{"ccon-a", "ccon-b"} {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		if err := reg.RegisterConnector(ctx, id, id, project, pub); err != nil {
			t.Fatal(err)
		}
		w.conns[id] = priv
	}
	ps := platformtest.PubSub(t, project)
	for _, topic := range []string{stack.TopicEvents, stack.TopicDownlinks, lostDownlinks} {
		if err := platform.EnsureTopic(ctx, ps, topic); err != nil {
			t.Fatal(err)
		}
	}
	if err := platform.EnsureSubscription(ctx, ps, platform.SubscriptionSpec{ID: "downlinks-all", Topic: stack.TopicDownlinks}); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	go func() {
		_ = ps.Subscriber("downlinks-all").Receive(rctx, func(_ context.Context, m *pubsub.Message) {
			m.Ack()
			var d relay.Downlink
			for id := range w.conns {
				if got, err := relay.OpenDownlink(m.Data, []ed25519.PublicKey{w.channelPub}, id, time.Now()); err == nil {
					d = got
				}
			}
			w.downlinks <- d
		})
	}()
	w.svc = ingest.New(cfg, ingest.Deps{
		Firestore: fs, Registry: reg, KEKReader: custody.NewCache(kek, time.Hour),
		Events:    ps.Publisher(stack.TopicEvents),
		Downlinks: losing{next: ps.Publisher(stack.TopicDownlinks), lost: ps.Publisher(lostDownlinks), drop: &w.dropNextReply},
		Logger:    slog.New(slog.NewJSONHandler(w.logs, nil)),
	})
	return w
}

// lostDownlinks is the topic lost replies go to: no one reads it.
const lostDownlinks = "downlinks-lost"

// losing publishes to next, or, once when drop is set, to lost.
type losing struct {
	next, lost ingest.Publisher
	drop       *atomic.Bool
}

func (l losing) Publish(ctx context.Context, m *pubsub.Message) *pubsub.PublishResult {
	if l.drop.CompareAndSwap(true, false) {
		return l.lost.Publish(ctx, m)
	}
	return l.next.Publish(ctx, m)
}

// newSensor manufactures a sensor in the world's project.
func (w *world) newSensor() *sensor.Sensor {
	w.t.Helper()
	return w.sensorFor(w.manufacture())
}

// sensorFor starts a sensor with the given credentials, its sequence
// numbers from 1.
func (w *world) sensorFor(creds credentials.Sensor) *sensor.Sensor {
	w.t.Helper()
	s, err := sensor.New(creds, 1, sensor.Config{ResendAfter: 500 * time.Millisecond})
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}

// manufacture provisions a temperature sensor in the world's project.
func (w *world) manufacture() credentials.Sensor {
	w.t.Helper()
	ctx := context.Background()
	reg := registry.New(w.fs, nil, nil)
	ck, err := reg.CloudKeys(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	kc := platformtest.KMS(w.t)
	keys, _ := stack.EnsureKMS(ctx, kc, "projects/"+w.project+"/locations/europe/keyRings/r")
	reg = registry.New(w.fs, custody.NewWrapper(kc, keys.Device), nil)
	m, err := reg.Manufacture(ctx, registry.Spec{Type: "temperature", ProjectID: w.project}, keys.Device)
	if err != nil {
		w.t.Fatal(err)
	}
	return credentials.Sensor{DeviceID: m.Device.ID, StaticPrivate: m.Static.Private[:], StaticPublic: m.Static.Public[:],
		PSK: m.PSK, CloudPublic: ck.StaticPublic()}
}

func pushEvent(project string, data []byte) event.Event {
	e := event.New()
	e.SetID(fmt.Sprint(time.Now().UnixNano()))
	e.SetType("google.cloud.pubsub.topic.v1.messagePublished")
	e.SetSource("//pubsub.googleapis.com/projects/" + project + "/topics/uplinks")
	body, _ := json.Marshal(map[string]any{"message": map[string]any{"data": data, "messageId": "m"}})
	_ = e.SetData("application/json", body)
	return e
}

// hear makes connector id relay pkt, as received with rssi.
func (w *world) hear(id string, pkt []byte, rssi float64) event.Event {
	w.t.Helper()
	env, err := relay.SignUplink(w.conns[id], relay.Uplink{ConnectorID: id, Received: time.Now().UTC(), RSSI: rssi, SNR: 5, Packet: pkt})
	if err != nil {
		w.t.Fatal(err)
	}
	return pushEvent(w.project, env)
}

// deliverAll hands the copies to ingest concurrently, as Pub/Sub pushes do.
func (w *world) deliverAll(events ...event.Event) {
	w.t.Helper()
	errs := make([]error, len(events))
	var wg sync.WaitGroup
	for i, e := range events {
		wg.Go(func() { errs[i] = w.svc.Handle(context.Background(), e) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) downlink() relay.Downlink {
	w.t.Helper()
	select {
	case d := <-w.downlinks:
		return d
	case <-time.After(15 * time.Second):
		w.t.Fatalf("no downlink; logs:\n%s", w.logs.String())
		return relay.Downlink{}
	}
}

func (w *world) noMoreDownlinks() {
	w.t.Helper()
	select {
	case d := <-w.downlinks:
		w.t.Fatalf("an extra downlink via %q", d.ConnectorID)
	case <-time.After(300 * time.Millisecond):
	}
}

func (w *world) events(deviceID string) map[string]string {
	w.t.Helper()
	docs, err := w.fs.Collection("events").Where("deviceId", "==", deviceID).Documents(context.Background()).GetAll()
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range docs {
		out[d.Ref.ID] = d.Data()["eventType"].(string)
		// Every stored event carries the server time of its write: the
		// stream orders a project's events by it.
		if at, ok := d.Data()["storedAt"].(time.Time); !ok || time.Since(at) > 5*time.Minute || time.Until(at) > time.Minute {
			w.t.Fatalf("event %s has storedAt %v, want the server time it was stored", d.Ref.ID, d.Data()["storedAt"])
		}
	}
	return out
}

func temp(v float64) payload.Reading {
	return payload.Reading{Kind: payload.Temperature, Time: time.Now().UnixMilli(), Celsius: &v}
}

// connect runs a handshake heard by both connectors.
func (w *world) connect(s *sensor.Sensor) {
	w.t.Helper()
	init, err := s.Next(time.Now())
	if err != nil {
		w.t.Fatal(err)
	}
	w.deliverAll(w.hear("ccon-a", init, -70), w.hear("ccon-b", init, -95))
	d := w.downlink()
	if d.ConnectorID != "ccon-a" {
		w.t.Fatalf("handshake reply via %q, want the stronger ccon-a", d.ConnectorID)
	}
	w.noMoreDownlinks()
	if _, err := s.Receive(d.Packet, time.Now()); err != nil {
		w.t.Fatal(err)
	}
}

func TestPipelineStoresOnceAndRepliesOnce(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 300*time.Millisecond)
	s := w.newSensor()
	w.connect(s)

	for _, v := range []float64{20, 21, 22} {
		s.Record(temp(v))
	}
	pkt, err := s.Next(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	w.deliverAll(w.hear("ccon-b", pkt, -96), w.hear("ccon-a", pkt, -71))
	d := w.downlink()
	if d.ConnectorID != "ccon-a" {
		t.Fatalf("reply via %q, want ccon-a", d.ConnectorID)
	}
	w.noMoreDownlinks()
	if _, err := s.Receive(d.Packet, time.Now()); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Backlog != 0 || st.Acked != 3 {
		t.Fatalf("sensor after the ACK: %+v", st)
	}
	evs := w.events(s.DeviceID())
	counts := map[string]int{}
	for _, typ := range evs {
		counts[typ]++
	}
	if counts["temperature"] != 3 || counts["networkStatus"] != 1 {
		t.Fatalf("stored events %v, want 3 temperature and 1 networkStatus", counts)
	}
	snap, err := w.fs.Collection("devices").Doc(s.DeviceID()).Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	reported, _ := snap.Data()["reported"].(map[string]any)
	if _, ok := reported["temperature"]; !ok {
		t.Fatalf("device reported state: %v", reported)
	}

	// The same bytes again, after the window: a replay, rejected, counted,
	// acknowledged (no retry loop) and nothing stored.
	time.Sleep(400 * time.Millisecond)
	if err := w.svc.Handle(context.Background(), w.hear("ccon-a", pkt, -70)); err != nil {
		t.Fatalf("a replay must be acknowledged, not retried: %v", err)
	}
	if w.logs.Rejected("replay") != 1 {
		t.Fatalf("replay not counted: %s", w.logs.String())
	}
	if len(w.events(s.DeviceID())) != len(evs) {
		t.Fatal("a replay stored events")
	}
	w.noMoreDownlinks()
}

func TestLostReplyAndRedelivery(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 300*time.Millisecond)
	s := w.newSensor()
	w.connect(s)
	s.Record(temp(30))
	pkt, _ := s.Next(time.Now())
	msg := w.hear("ccon-a", pkt, -70)

	// The instance dies right after the packet's transaction: the events
	// are stored, the reply never goes out.
	w.dropNextReply.Store(true)
	if err := w.svc.Handle(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	// Pub/Sub delivers the same message again (at least once): no second
	// processing, no second event, and no replay refusal: it is the same
	// copy.
	if err := w.svc.Handle(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	w.noMoreDownlinks()
	// The sensor resends its unacknowledged reading as backfill.
	time.Sleep(600 * time.Millisecond)
	again, err := s.Next(time.Now())
	if err != nil || again == nil {
		t.Fatalf("no resend: %v", err)
	}
	w.deliverAll(w.hear("ccon-a", again, -70))
	d := w.downlink()
	if _, err := s.Receive(d.Packet, time.Now()); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Backlog != 0 || st.Resent != 1 {
		t.Fatalf("sensor after the resend: %+v", st)
	}
	if n := w.logs.Rejected("replay"); n != 0 {
		t.Fatalf("%d replay refusals of a redelivery:\n%s", n, w.logs.String())
	}
	n := 0
	for _, typ := range w.events(s.DeviceID()) {
		if typ == "temperature" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d temperature events, want exactly 1", n)
	}
}

func TestRejections(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 300*time.Millisecond)
	s := w.newSensor()
	w.connect(s)
	s.Record(temp(1))
	pkt, _ := s.Next(time.Now())

	_, rogue, _ := ed25519.GenerateKey(rand.Reader)
	forged, _ := relay.SignUplink(rogue, relay.Uplink{ConnectorID: "ccon-a", Received: time.Now(), Packet: pkt})
	unknown, _ := relay.SignUplink(rogue, relay.Uplink{ConnectorID: "ccon-x", Received: time.Now(), Packet: pkt})
	garbagePacket, _ := relay.SignUplink(w.conns["ccon-a"], relay.Uplink{ConnectorID: "ccon-a", Received: time.Now(), Packet: []byte{3, 1, 2, 3}})
	// A connector registered and then revoked signs with its own, real key.
	revokedPub, revokedKey, _ := ed25519.GenerateKey(rand.Reader)
	reg := registry.New(w.fs, nil, nil)
	if err := reg.RegisterConnector(context.Background(), "ccon-r", "ccon-r", w.project, revokedPub); err != nil {
		t.Fatal(err)
	}
	if err := reg.RevokeConnector(context.Background(), "ccon-r"); err != nil {
		t.Fatal(err)
	}
	revoked, _ := relay.SignUplink(revokedKey, relay.Uplink{ConnectorID: "ccon-r", Received: time.Now(), Packet: pkt})
	tests := []struct {
		name   string
		data   []byte
		reason string
	}{
		{"forged connector signature", forged, "bad-signature"},
		{"unknown connector", unknown, "unknown-connector"},
		{"revoked connector", revoked, "revoked-connector"},
		{"garbage envelope", []byte("\x00garbage\xff"), "malformed-envelope"},
		{"garbage packet", garbagePacket, "malformed-packet"},
	}
	for _, tc := range tests {
		if err := w.svc.Handle(context.Background(), pushEvent(w.project, tc.data)); err != nil {
			t.Fatalf("%s: must be acknowledged, not retried: %v", tc.name, err)
		}
		if w.logs.Rejected(tc.reason) != 1 {
			t.Fatalf("%s: not counted as %q", tc.name, tc.reason)
		}
	}
	for id, typ := range w.events(s.DeviceID()) {
		if typ != "networkStatus" {
			t.Fatalf("a rejected packet stored event %s (%s)", id, typ)
		}
	}
	w.noMoreDownlinks()
	// The genuine packet still goes through afterwards.
	w.deliverAll(w.hear("ccon-a", pkt, -70))
	if d := w.downlink(); func() error { _, err := s.Receive(d.Packet, time.Now()); return err }() != nil || s.Stats().Backlog != 0 {
		t.Fatal("the genuine packet was not accepted after the rejections")
	}
}

// TestBatchOfCopies: a connector's batch is handled envelope by envelope —
// a forged one among them is refused alone — and a redelivered batch
// stores nothing twice.
func TestBatchOfCopies(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 300*time.Millisecond)
	s1, s2 := w.newSensor(), w.newSensor()
	w.connect(s1)
	w.connect(s2)
	var envs [][]byte
	for i, s := range []*sensor.Sensor{s1, s2} {
		s.Record(temp(20 + float64(i)))
		pkt, err := s.Next(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		env, err := relay.SignUplink(w.conns["ccon-a"], relay.Uplink{ConnectorID: "ccon-a", Received: time.Now().UTC(), RSSI: -70, Packet: pkt})
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, env)
	}
	_, rogue, _ := ed25519.GenerateKey(nil)
	forged, _ := relay.SignUplink(rogue, relay.Uplink{ConnectorID: "ccon-a", Received: time.Now().UTC(), Packet: []byte{3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}})
	batch, err := relay.EncodeBatch(append(envs, forged))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.svc.Handle(context.Background(), pushEvent(w.project, batch)); err != nil {
		t.Fatalf("a batch with one forged envelope must be acknowledged: %v", err)
	}
	if w.logs.Rejected("bad-signature") != 1 {
		t.Fatalf("the forged envelope was not refused alone: %s", w.logs.String())
	}
	for range 2 {
		d := w.downlink()
		if _, err := s1.Receive(d.Packet, time.Now()); err != nil {
			if _, err2 := s2.Receive(d.Packet, time.Now()); err2 != nil {
				t.Fatalf("a reply opened by neither sensor: %v / %v", err, err2)
			}
		}
	}
	count := func() int { return len(w.events(s1.DeviceID())) + len(w.events(s2.DeviceID())) }
	before := count()
	if before < 2 {
		t.Fatalf("%d events stored from the batch", before)
	}
	// Pub/Sub redelivers the whole batch: nothing is stored twice.
	time.Sleep(400 * time.Millisecond)
	if err := w.svc.Handle(context.Background(), pushEvent(w.project, batch)); err != nil {
		t.Fatal(err)
	}
	if after := count(); after != before {
		t.Fatalf("a redelivered batch stored %d more events", after-before)
	}
}

// TestReusedSequenceNumbers: a sensor that lost its sequence numbers (a
// reset) sends new readings under sequence numbers it used before. One
// that boots into a new epoch (credentials.BootSensor) names new events
// and loses nothing. One that does not sends new readings under event ids
// already stored: ingest reads only resent readings' events, so this is
// the case its fallback is for: the packet is still stored and
// acknowledged, the stored event is left as it was, the reading with a
// new id is stored, and the dropped one is logged.
func TestReusedSequenceNumbers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		boot    bool // each start goes through credentials.BootSensor
		want    []float64
		dropped int
	}{
		{"reset into a new epoch", true, []float64{20, 25, 26}, 0},
		{"reset without a new epoch", false, []float64{20, 26}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, 300*time.Millisecond)
			path := filepath.Join(t.TempDir(), "sensor.json")
			if err := credentials.SaveSensor(path, w.manufacture()); err != nil {
				t.Fatal(err)
			}
			start := func() *sensor.Sensor {
				t.Helper()
				creds, err := credentials.LoadSensor(path)
				if tc.boot {
					creds, err = credentials.BootSensor(path)
				}
				if err != nil {
					t.Fatal(err)
				}
				s := w.sensorFor(creds) // sequence numbers from 1
				w.connect(s)
				return s
			}
			send := func(s *sensor.Sensor, values ...float64) {
				t.Helper()
				for _, v := range values {
					s.Record(temp(v))
				}
				pkt, err := s.Next(time.Now())
				if err != nil {
					t.Fatal(err)
				}
				w.deliverAll(w.hear("ccon-a", pkt, -70))
				if _, err := s.Receive(w.downlink().Packet, time.Now()); err != nil || s.Stats().Backlog != 0 {
					t.Fatalf("packet not acknowledged (%v, %+v); logs:\n%s", err, s.Stats(), w.logs.String())
				}
			}
			before := start()
			send(before, 20)
			reset := start()
			send(reset, 25, 26)

			if got := w.temperatures(before.DeviceID()); !slices.Equal(got, tc.want) {
				t.Fatalf("temperature events %v, want %v", got, tc.want)
			}
			logged := strings.Contains(w.logs.String(), `"dropped":1`)
			if logged != (tc.dropped == 1) {
				t.Fatalf("dropped reading logged: %v, want %v:\n%s", logged, tc.dropped == 1, w.logs.String())
			}
		})
	}
}

// temperatures are the values of a device's stored temperature events,
// sorted.
func (w *world) temperatures(deviceID string) []float64 {
	w.t.Helper()
	docs, err := w.fs.Collection("events").Where("deviceId", "==", deviceID).Where("eventType", "==", "temperature").Documents(context.Background()).GetAll()
	if err != nil {
		w.t.Fatal(err)
	}
	var got []float64
	for _, d := range docs {
		var ev struct {
			Data struct {
				Temperature struct {
					Value float64 `json:"value"`
				} `json:"temperature"`
			} `json:"data"`
		}
		if err := json.Unmarshal(d.Data()["json"].([]byte), &ev); err != nil {
			w.t.Fatal(err)
		}
		got = append(got, ev.Data.Temperature.Value)
	}
	slices.Sort(got)
	return got
}

// TestBadReadingRefusedAlone: a packet with one reading from far in the
// future (past Firestore's timestamp range) and one good reading stores
// the good one, acknowledges both to the sensor, is not retried, and logs
// and counts the bad one without its value. The sensor's next packet goes
// through: nothing is resent forever.
func TestBadReadingRefusedAlone(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 300*time.Millisecond)
	s := w.newSensor()
	w.connect(s)
	far := temp(21.75)
	far.Time = time.Date(10001, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	badSeq := s.Record(far)
	s.Record(temp(21))
	pkt, err := s.Next(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.svc.Handle(context.Background(), w.hear("ccon-a", pkt, -70)); err != nil {
		t.Fatalf("a packet with one bad reading must be acknowledged, not retried: %v", err)
	}
	if _, err := s.Receive(w.downlink().Packet, time.Now()); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Backlog != 0 || st.Acked != 2 {
		t.Fatalf("sensor after the ACK: %+v, want both readings acknowledged", st)
	}
	if got := w.temperatures(s.DeviceID()); !slices.Equal(got, []float64{21}) {
		t.Fatalf("temperature events %v, want the good reading alone", got)
	}
	logs := w.logs.String()
	if w.logs.Rejected("bad-reading") != 1 || !strings.Contains(logs, `"reason":"time-in-future"`) ||
		!strings.Contains(logs, fmt.Sprintf(`"seq":%d`, badSeq)) || !strings.Contains(logs, s.DeviceID()) {
		t.Fatalf("the bad reading was not logged with its device, seq and reason:\n%s", logs)
	}
	if strings.Contains(logs, "21.75") || strings.Contains(logs, "10001") {
		t.Fatalf("the bad reading's value or time was logged:\n%s", logs)
	}
	// The "reply sent" line, logged once the reply is recorded, carries
	// the count.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(w.logs.String(), `"refusedReadings":1`); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the bad reading was not counted:\n%s", w.logs.String())
		}
	}
	s.Record(temp(22))
	next, err := s.Next(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	w.deliverAll(w.hear("ccon-a", next, -70))
	if _, err := s.Receive(w.downlink().Packet, time.Now()); err != nil || s.Stats().Backlog != 0 {
		t.Fatalf("the next packet was not acknowledged: %v %+v", err, s.Stats())
	}
	if got := w.temperatures(s.DeviceID()); !slices.Equal(got, []float64{21, 22}) {
		t.Fatalf("temperature events %v, want 21 and 22", got)
	}
}
