package local_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/sealedsense/sealedsense/emulators/local"
	"github.com/sealedsense/sealedsense/emulators/local/localtest"
	"github.com/sealedsense/sealedsense/emulators/platform"
	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/emulators/stack"
	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/devicetype"
	"github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/relay"
)

func TestMain(m *testing.M) { platformtest.Main(m) }

func start(t *testing.T, sensors, connectors int) *local.Deployment {
	t.Helper()
	return localtest.Start(t, local.Config{Sensors: sensors, Connectors: connectors})
}

// drain stops new readings and waits until every sensor's backlog is
// acknowledged: after it, each reading must be stored exactly once.
func drain(t *testing.T, d *local.Deployment) {
	t.Helper()
	d.Sim.StopReadings()
	// A sensor whose replies were lost resends with a backoff of up to
	// two minutes (shared/sensor maxBackoff): the wait covers one whole.
	deadline := time.Now().Add(150 * time.Second)
	for d.Sim.Backlog() > 0 {
		if time.Now().After(deadline) {
			var left []string
			for _, dev := range d.Devices() {
				if st := d.Sim.Sensor(dev).Stats(); st.Backlog > 0 {
					left = append(left, fmt.Sprintf("%s %+v", dev, st))
				}
			}
			t.Fatalf("%d readings still unacknowledged after 150s: %v", d.Sim.Backlog(), left)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// fromReading says whether an event type is made from a sensor's
// readings, not by the cloud (its radio, configuration, health, software
// and label changes).
func fromReading(eventType string) bool {
	switch eventType {
	case "networkStatus", "configurationStatus", "deviceAnomaly", "softwareUpdateStatus", "labelsChanged":
		return false
	}
	return true
}

// assertExactlyOnce checks every reading each sensor took against the
// events collection: present once under its deterministic id, nothing
// else.
func assertExactlyOnce(t *testing.T, d *local.Deployment, devices []string) {
	t.Helper()
	ctx := context.Background()
	total := 0
	for _, dev := range devices {
		st := d.Sim.Sensor(dev).Stats()
		docs, err := d.FS.Collection("events").Where("deviceId", "==", dev).Documents(ctx).GetAll()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, doc := range docs {
			// A sensor whose readings stopped for the drain may be
			// reported SILENT: a deviceAnomaly is no reading either.
			if typ, _ := doc.Data()["eventType"].(string); fromReading(typ) {
				got[doc.Ref.ID] = true
			}
		}
		for seq := uint64(1); seq <= st.Recorded; seq++ {
			if !got[event.ID(dev, seq)] {
				t.Errorf("device %s: reading %d was never stored; the sensor's stats %+v", dev, seq, st)
			}
			delete(got, event.ID(dev, seq))
		}
		if len(got) != 0 {
			t.Errorf("device %s: %d stored events match no reading", dev, len(got))
		}
		total += int(st.Recorded)
	}
	if total == 0 {
		t.Fatal("no readings were taken")
	}
	t.Logf("%d readings from %d sensors, each stored exactly once", total, len(devices))
}

// repliedReception is a reply that went out: the device, the connector
// that carried it and the connectors that heard the packet.
type repliedReception struct {
	deviceID, via string
	heard         map[string]bool
}

// repliedReceptions reads the replies ingest sent, from the functions
// log's "reply sent" lines, as the tests that judge the reply route need
// them: a data packet leaves no reception record, its reply's route is
// logged.
func repliedReceptions(t *testing.T, d *local.Deployment) []repliedReception {
	t.Helper()
	f, err := os.Open(d.LogPath("functions"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []repliedReception
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Msg      string   `json:"message"`
			DeviceID string   `json:"deviceId"`
			Via      string   `json:"via"`
			Hearers  []string `json:"hearers"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Msg != "reply sent" || line.Via == "" {
			continue
		}
		r := repliedReception{deviceID: line.DeviceID, via: line.Via, heard: map[string]bool{}}
		for _, h := range line.Hearers {
			r.heard[h] = true
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEverythingOnceThroughTheBestConnector(t *testing.T) {
	// Three instances, as Cloud Run runs ingest under load: a packet's
	// copies from several connectors reach different instances.
	d := localtest.Start(t, local.Config{Sensors: 20, Connectors: 3, Instances: 3, BatchWindow: 50 * time.Millisecond})
	time.Sleep(16 * time.Second)
	drain(t, d)
	devices := d.Devices()
	assertExactlyOnce(t, d, devices)
	assertCustomerSees(t, d, devices)

	st := d.Sim.Stats()
	if st.ReplyErrors != 0 {
		t.Fatalf("%d replies failed to open at a sensor (a reply sent twice would)", st.ReplyErrors)
	}
	// The reply goes through the strongest connector among the copies
	// that arrived in time. On a loaded machine the strongest copy can
	// come after the longest window, and its history can tip a close
	// call, so the strongest overall is a large majority, not all: nine
	// in ten (CI, with the other end-to-end packages beside it, has
	// measured 5% to 13% skipped).
	answered, notHeard, notBestHeard := 0, 0, 0
	for _, rec := range repliedReceptions(t, d) {
		answered++
		heard := rec.heard
		if !heard[rec.via] {
			notHeard++
			continue
		}
		for _, c := range d.Sim.InRange(rec.deviceID) {
			if heard[c] {
				if c != rec.via {
					notBestHeard++
				}
				break
			}
		}
	}
	if answered == 0 {
		t.Fatal(`no "reply sent" line with a route in the functions log: the route cannot be judged`)
	}
	if notHeard != 0 {
		t.Fatalf("%d of %d replies went through a connector that did not hear the packet", notHeard, answered)
	}
	if notBestHeard*10 > answered {
		t.Fatalf("%d of %d replies skipped the strongest connector among those that heard the packet; passed over, by reason: %v",
			notBestHeard, answered, passedOver(t, d))
	}
	if st.WrongVia*10 > st.Replies {
		t.Fatalf("%d of %d replies came through a connector other than the sensor's strongest", st.WrongVia, st.Replies)
	}
	// No reply twice (ReplyErrors above), and a reply lost only if its
	// downlink expired on a connector: never more accepted than sent.
	if st.Replies > uint64(answered) || st.Replies*20 < uint64(answered)*19 {
		t.Fatalf("cloud answered %d packets, sensors accepted %d replies", answered, st.Replies)
	}
	multi := 0
	for _, dev := range devices {
		if len(d.Sim.InRange(dev)) > 1 {
			multi++
		}
	}
	if multi < len(devices)/2 {
		t.Fatalf("only %d of %d sensors are heard by more than one connector: the test needs overlap", multi, len(devices))
	}
	t.Logf("%d replies, %d not through the strongest connector (%d not through the strongest that heard the packet); %d sensors heard by several connectors; per connector %v",
		st.Replies, st.WrongVia, notBestHeard, multi, st.RepliesVia)
}

func TestKilledConnector(t *testing.T) {
	t.Parallel()
	d := localtest.Start(t, local.Config{Sensors: 10, Connectors: 3, SweepEvery: time.Second, OfflineAfter: 12 * time.Second})
	time.Sleep(6 * time.Second)
	d.KillConnector("ccon-1")
	var orphans []string
	before := map[string]uint64{}
	for _, dev := range d.Devices() {
		if d.Sim.Strongest(dev) == "ccon-1" {
			orphans = append(orphans, dev)
			before[dev] = d.Sim.Sensor(dev).Stats().Acked
		}
	}
	if len(orphans) == 0 {
		t.Fatal("no sensor has ccon-1 as its best connector; the test would prove nothing")
	}
	time.Sleep(10 * time.Second)
	for _, dev := range orphans {
		if d.Sim.Sensor(dev).Stats().Acked <= before[dev] {
			t.Errorf("sensor %s got no ACK after its best connector died", dev)
		}
	}
	drain(t, d)
	assertExactlyOnce(t, d, d.Devices())

	// The silent connector is marked offline by the sweep, with a
	// connectionStatus event; the others stay online.
	deadline := time.Now().Add(30 * time.Second)
	for {
		docs, err := d.FS.Collection("events").Where("deviceId", "==", "ccon-1").Where("eventType", "==", "connectionStatus").Documents(context.Background()).GetAll()
		if err != nil {
			t.Fatal(err)
		}
		var states []string
		for _, doc := range docs {
			e, err := event.Parse(doc.Data()["json"].([]byte))
			if err != nil {
				t.Fatal(err)
			}
			states = append(states, string(e.Data))
		}
		if len(states) >= 2 && strings.Contains(states[0]+states[1], `"connection":"OFFLINE"`) && strings.Contains(states[0]+states[1], `"connection":"ETHERNET"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ccon-1 connectionStatus events %v, want ETHERNET then OFFLINE", states)
		}
		time.Sleep(500 * time.Millisecond)
	}
	snap, err := d.FS.Collection("connectors").Doc("ccon-2").Get(context.Background())
	if err != nil || snap.Data()["online"] != true {
		t.Fatalf("ccon-2 should still be online: %v %v", err, snap.Data())
	}
}

func TestFunctionsServerRestart(t *testing.T) {
	t.Parallel()
	// Batched uplinks: a batch cut off by the crash is redelivered whole,
	// and the copies already handled must not count twice. First one of
	// three instances crashes, with packets it held waiting for their
	// copies, then all of them.
	d := localtest.Start(t, local.Config{Sensors: 10, Connectors: 3, Instances: 3, BatchWindow: 50 * time.Millisecond})
	time.Sleep(6 * time.Second)
	d.KillInstance(1)
	time.Sleep(5 * time.Second)
	d.KillFunctions()
	time.Sleep(5 * time.Second)
	if err := d.StartFunctions(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(6 * time.Second)
	drain(t, d)
	assertExactlyOnce(t, d, d.Devices())
}

// rejections counts the functions server's rejection log lines by reason.
func rejections(t *testing.T, d *local.Deployment) map[string]int {
	t.Helper()
	f, err := os.Open(d.LogPath("functions"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct {
			Rejected string `json:"rejected"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Rejected != "" {
			out[line.Rejected]++
		}
	}
	return out
}

func eventCount(t *testing.T, d *local.Deployment) int {
	t.Helper()
	docs, err := d.FS.Collection("events").Documents(context.Background()).GetAll()
	if err != nil {
		t.Fatal(err)
	}
	return len(docs)
}

func TestRoguePublisherAndPoison(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := start(t, 3, 2)
	// Listen on uplinks like an attacker with publish and subscribe rights.
	if err := platform.EnsureSubscription(ctx, d.PS, platform.SubscriptionSpec{ID: "spy", Topic: stack.TopicUplinks}); err != nil {
		t.Fatal(err)
	}
	captured := make(chan []byte, 100)
	rctx, cancel := context.WithCancel(ctx)
	go func() {
		_ = d.PS.Subscriber("spy").Receive(rctx, func(_ context.Context, m *pubsub.Message) {
			m.Ack()
			select {
			case captured <- m.Data:
			default:
			}
		})
	}()
	var data []byte
	var keyOwner relay.Uplink
	for data == nil {
		select {
		case b := <-captured:
			data = b
		case <-time.After(20 * time.Second):
			t.Fatal("no uplink captured")
		}
	}
	cancel()
	creds, err := credentials.LoadConnector(filepath.Join(d.DataDir(), "credentials", "ccon-1.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Recover the radio packet from the captured envelope by opening it with
	// the connector's registered key.
	keyOwner, err = openAny(ctx, d, data)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // let the genuine packet finish first
	d.Sim.StopReadings()
	time.Sleep(3 * time.Second)
	before := eventCount(t, d)
	baseline := rejections(t, d)

	_, rogue, _ := ed25519.GenerateKey(rand.Reader)
	replay, _ := relay.SignUplink(ed25519.PrivateKey(creds.PrivateKey), relay.Uplink{ConnectorID: "ccon-1", Received: time.Now().UTC(), RSSI: -60, Packet: keyOwner.Packet})
	forged, _ := relay.SignUplink(rogue, relay.Uplink{ConnectorID: "ccon-1", Received: time.Now().UTC(), Packet: keyOwner.Packet})
	unknown, _ := relay.SignUplink(rogue, relay.Uplink{ConnectorID: "ccon-666", Received: time.Now().UTC(), Packet: keyOwner.Packet})
	pub := d.PS.Publisher(stack.TopicUplinks)
	defer pub.Stop()
	for _, msg := range [][]byte{replay, forged, unknown, []byte("\x00\x01 garbage, not an envelope")} {
		if _, err := pub.Publish(ctx, &pubsub.Message{Data: msg}).Get(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]int{"replay": 1, "bad-signature": 1, "unknown-connector": 1, "malformed-envelope": 1}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := rejections(t, d)
		ok := true
		for reason, n := range want {
			if got[reason]-baseline[reason] < n {
				ok = false
			}
		}
		if ok {
			t.Logf("rejections counted: %v", got)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rejections %v (before %v), want at least %v more", got, baseline, want)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if after := eventCount(t, d); after != before {
		t.Fatalf("rogue messages changed Firestore: %d events before, %d after", before, after)
	}

	// A poison message: authentic envelope, but the session it names is
	// sealed under a KEK no instance holds, which is transient (an
	// instance may not have loaded a new KEK yet), so ingest fails every
	// time. It must end on the dead-letter topic after the retry budget,
	// not loop forever. (A session that fails authentication is refused
	// at once as session-tampered: functions/ingest's bind tests.)
	unknownKEK := append([]byte{1, byte(len("kek-nobody-has"))}, "kek-nobody-has"...)
	unknownKEK = append(unknownKEK, make([]byte, 64)...)
	if _, err := d.FS.Collection("sessions").Doc("12345").Set(ctx, map[string]any{"deviceId": "x", "sealed": unknownKEK}); err != nil {
		t.Fatal(err)
	}
	poisonPkt := append([]byte{3, 0x39, 0x30, 0, 0}, make([]byte, 8+20)...)
	poison, _ := relay.SignUplink(ed25519.PrivateKey(creds.PrivateKey), relay.Uplink{ConnectorID: "ccon-1", Received: time.Now().UTC(), Packet: poisonPkt})
	if _, err := pub.Publish(ctx, &pubsub.Message{Data: poison}).Get(ctx); err != nil {
		t.Fatal(err)
	}
	dctx, dcancel := context.WithTimeout(ctx, 90*time.Second)
	defer dcancel()
	var dead *pubsub.Message
	_ = d.PS.Subscriber(stack.SubDeadLetter).Receive(dctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		if string(m.Data) == string(poison) {
			dead = m
			dcancel()
		}
	})
	if dead == nil {
		t.Fatal("the poison message never reached the dead-letter topic")
	}
	t.Logf("poison dead-lettered after %s delivery attempts", dead.Attributes["CloudPubSubDeadLetterSourceDeliveryCount"])
	if c, err := net.Dial("tcp", d.FunctionsAddr); err != nil {
		t.Fatal("the functions server died on bad input")
	} else {
		c.Close()
	}
	if !strings.Contains(dead.Attributes["CloudPubSubDeadLetterSourceSubscription"], "ingest-uplinks") {
		t.Fatalf("dead letter attributes %v", dead.Attributes)
	}
}

// openAny opens a captured uplink with whichever connector signed it.
func openAny(ctx context.Context, d *local.Deployment, data []byte) (relay.Uplink, error) {
	return relay.OpenUplink(ctx, data, func(_ context.Context, id string) (relay.ConnectorKeys, error) {
		c, err := credentials.LoadConnector(filepath.Join(d.DataDir(), "credentials", id+".json"))
		if err != nil {
			return relay.ConnectorKeys{}, err
		}
		return relay.ConnectorKeys{Valid: []ed25519.PublicKey{ed25519.PrivateKey(c.PrivateKey).Public().(ed25519.PublicKey)}}, nil
	})
}

// assertCustomerSees reads the pipeline's results as a customer program
// does: a token, then devices and event history. Each device is listed
// with its type's product number, and its history holds every reading
// the simulator says it took, with the data that reading makes. Every
// sensor type of the catalogue ran, and one sensor of each took a
// reading of each of its type's event types but batteryStatus (every
// tenth reading: a run of 16 s at one reading every 2 s takes eight) and
// networkStatus (the cloud's).
func assertCustomerSees(t *testing.T, d *local.Deployment, devices []string) {
	t.Helper()
	tok := localtest.CustomerToken(t, d)
	get := func(path string, v any) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+d.FunctionsAddr+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	typeOf := listedSensors(t, get)
	if len(typeOf) != len(devices) {
		t.Fatalf("the API lists %d sensors, want %d", len(typeOf), len(devices))
	}
	took := map[string][]payload.Reading{}
	checked, events := 0, 0
	for _, dev := range devices {
		took[dev] = d.Sim.Readings(dev)
		history := eventHistory(t, get, dev)
		for _, r := range took[dev] {
			if err := storedAsTaken(history, dev, r); err != nil {
				t.Errorf("device %s (%s), reading %d: %v", dev, typeOf[dev], r.Seq, err)
			}
		}
		checked += len(took[dev])
		events += len(history)
	}
	assertEveryTypeRan(t, typeOf, took)
	t.Logf("the API's histories of %d sensors hold %d events, among them the %d readings taken, each with its data", len(devices), events, checked)
}

// listedSensors lists the project's devices through the API and returns
// the sensors' types by id, checking each device's product number.
func listedSensors(t *testing.T, get func(string, any)) map[string]string {
	t.Helper()
	var list struct {
		Devices []struct {
			Name, Type, ProductNumber string
		}
	}
	get("/v2/projects/demo/devices?pageSize=1000", &list)
	typeOf := map[string]string{}
	for _, dev := range list.Devices {
		dt, ok := devicetype.Lookup(dev.Type)
		if !ok || dt.ProductNumber != dev.ProductNumber {
			t.Errorf("device %s: type %q, product number %q; the catalogue has %+v", dev.Name, dev.Type, dev.ProductNumber, dt)
		}
		if dt.Sensor { // the connectors are devices too
			typeOf[dev.Name[strings.LastIndex(dev.Name, "/")+1:]] = dev.Type
		}
	}
	return typeOf
}

// eventHistory reads a device's whole event history through the API,
// page by page, by event id.
func eventHistory(t *testing.T, get func(string, any), dev string) map[string]event.Event {
	t.Helper()
	out := map[string]event.Event{}
	for page := ""; ; {
		var history struct {
			Events        []json.RawMessage
			NextPageToken string
		}
		get("/v2/projects/demo/devices/"+dev+"/events?pageSize=1000&pageToken="+url.QueryEscape(page), &history)
		for _, raw := range history.Events {
			e, err := event.Parse(raw)
			if err != nil {
				t.Fatalf("history event %s: %v", raw, err)
			}
			out[e.EventID] = e
		}
		if page = history.NextPageToken; page == "" {
			return out
		}
	}
}

// storedAsTaken checks that the history holds the event reading r of dev
// makes, with its type, its time and its data. A temperature or humidity
// event may say it was backfilled: the sensor resends a reading whose ACK
// is late, and the copy that arrived first is the one stored.
func storedAsTaken(history map[string]event.Event, dev string, r payload.Reading) error {
	want, err := event.FromReading("demo", dev, r)
	if err != nil {
		return fmt.Errorf("the simulator's reading makes no event: %w", err)
	}
	got, ok := history[want.EventID]
	if !ok {
		return fmt.Errorf("no %s event %s in the device's history", want.EventType, want.EventID)
	}
	if got.EventType != want.EventType || !got.Timestamp.Equal(want.Timestamp) {
		return fmt.Errorf("stored a %s event at %v, data %s; want a %s event at %v, data %s", got.EventType, got.Timestamp, got.Data, want.EventType, want.Timestamp, want.Data)
	}
	if sameJSON(got.Data, want.Data) {
		return nil
	}
	r.Backfilled = true
	if resent, err := event.FromReading("demo", dev, r); err == nil && sameJSON(got.Data, resent.Data) {
		return nil
	}
	return fmt.Errorf("stored data %s, want %s", got.Data, want.Data)
}

// sameJSON says whether two JSON texts hold the same value.
func sameJSON(a, b []byte) bool {
	var va, vb any
	return json.Unmarshal(a, &va) == nil && json.Unmarshal(b, &vb) == nil && reflect.DeepEqual(va, vb)
}

// assertEveryTypeRan checks that every sensor type had a sensor that took
// a reading of each of its type's event types but batteryStatus and
// networkStatus.
func assertEveryTypeRan(t *testing.T, typeOf map[string]string, took map[string][]payload.Reading) {
	t.Helper()
	for _, typ := range devicetype.Sensors() {
		dt, _ := devicetype.Lookup(typ)
		want := slices.DeleteFunc(dt.Events, func(e string) bool { return e == "batteryStatus" || e == "networkStatus" })
		var best []string // the event types the fullest sensor of typ took
		for dev, rs := range took {
			if typeOf[dev] != typ {
				continue
			}
			var kinds []string
			for _, r := range rs {
				if k := r.Kind.EventType(); slices.Contains(want, k) && !slices.Contains(kinds, k) {
					kinds = append(kinds, k)
				}
			}
			if len(kinds) > len(best) {
				best = kinds
			}
		}
		if len(best) != len(want) {
			t.Errorf("no %s sensor took a reading of each of %v; the fullest took %v", typ, want, best)
		}
	}
}
