package deliver_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/iterator"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/sealedsense/sealedsense/functions/deliver"
	"github.com/sealedsense/sealedsense/shared/dataconnector"
	"github.com/sealedsense/sealedsense/shared/egress"
	dtevent "github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/store"
	"github.com/sealedsense/sealedsense/shared/webhook"
	"github.com/sealedsense/sealedsense/shared/webhook/webhooktest"
)

func (w *world) deliveries(connector string) []store.Delivery {
	w.t.Helper()
	docs, err := w.fs.Collection(store.DeliveriesCollection).Where("connectorId", "==", connector).Documents(context.Background()).GetAll()
	if err != nil {
		w.t.Fatal(err)
	}
	out := make([]store.Delivery, len(docs))
	for i, d := range docs {
		if err := d.DataTo(&out[i]); err != nil {
			w.t.Fatal(err)
		}
	}
	return out
}

func TestSignedDeliveryVerifiesWithStockLibraries(t *testing.T) {
	t.Parallel()
	const secret = "a customer's signature secret, 32+"
	w := newWorld(t, deliver.Config{}, nil)
	rc := w.receiver(secret, "c1")
	w.device("d1", map[string]string{"room": "101", "owner": "ops"})
	w.connector("c1", rc.URL+"/hook", secret, connOpts{labels: []string{"room"}, hdrs: map[string]string{"Authorization": "Bearer receiver-token"}})
	var evs []dataconnector.Event
	for range 3 {
		ev := w.event("d1", "temperature")
		evs = append(evs, ev)
		w.enqueue(ev)
	}
	w.until(10*time.Second, "3 deliveries", func() bool { return len(rc.Deliveries()) >= 3 })
	w.svc.Wait()
	got := byID(rc.Deliveries())
	jwks, err := w.jwks()
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		ds := got[ev.ID]
		if len(ds) != 1 {
			t.Fatalf("event %s arrived %d times", ev.ID, len(ds))
		}
		d := ds[0]
		if d.Err != nil {
			t.Fatalf("signature check failed: %v", d.Err)
		}
		var body struct {
			Event    map[string]any    `json:"event"`
			Labels   map[string]string `json:"labels"`
			Metadata map[string]string `json:"metadata"`
		}
		if err := json.Unmarshal(d.Body, &body); err != nil {
			t.Fatal(err)
		}
		if body.Event["eventId"] != ev.ID || len(body.Labels) != 1 || body.Labels["room"] != "101" ||
			body.Metadata["deviceId"] != "d1" || body.Metadata["projectId"] != w.project || body.Metadata["deviceType"] != "temperature" || body.Metadata["productNumber"] != "102081" {
			t.Fatalf("body %s", d.Body)
		}
		if d.Header.Get("Authorization") != "Bearer receiver-token" || d.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("headers %v", d.Header)
		}
		// One byte changed: all three signatures fail.
		changed := bytes.Clone(d.Body)
		changed[len(changed)/2] ^= 1
		for scheme, err := range webhooktest.Check(d.Header, changed, []byte(secret), jwks, webhook.ConnectorName(w.project, "c1")) {
			if err == nil {
				t.Errorf("%s accepted a body changed by one byte", scheme)
			}
		}
		// Forwarded to another connector's receiver: its ES256 check
		// refuses it, as it names its recipient.
		if err := webhooktest.Check(d.Header, d.Body, []byte(secret), jwks, webhook.ConnectorName(w.project, "c2"))["es256"]; err == nil {
			t.Errorf("another connector's receiver accepted a forwarded delivery")
		}
	}
	for _, d := range w.deliveries("c1") {
		if d.Status != dataconnector.Delivered || d.Attempts != 1 || d.LastResult != "200" {
			t.Fatalf("record %+v", d)
		}
	}
	// One instance key, certified once, signed all three.
	keys, err := w.fs.Collection(store.DeliveryKeysCollection).Documents(context.Background()).GetAll()
	if err != nil || len(keys) != 1 {
		t.Fatalf("%d delivery keys published (%v), want 1", len(keys), err)
	}

	t.Run("redelivered message sends nothing twice", func(t *testing.T) {
		w.enqueue(evs[0])
		w.until(time.Second, "a sweep", func() bool { return true })
		w.svc.Wait()
		if n := len(byID(rc.Deliveries())[evs[0].ID]); n != 1 {
			t.Fatalf("event arrived %d times after a Pub/Sub redelivery", n)
		}
	})

	t.Run("the secret is nowhere in plaintext", func(t *testing.T) {
		needles := [][]byte{[]byte(secret), []byte(base64.StdEncoding.EncodeToString([]byte(secret))), []byte(base64.RawURLEncoding.EncodeToString([]byte(secret)))}
		for _, col := range []string{store.DataConnectorsCollection, store.DeliveriesCollection, store.DeliveryMetricsCollection, store.DeliveryKeysCollection} {
			it := w.fs.Collection(col).Documents(context.Background())
			for {
				snap, err := it.Next()
				if err == iterator.Done {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				js, _ := json.Marshal(snap.Data())
				for _, n := range needles {
					if bytes.Contains(js, n) || bytes.Contains(js, []byte(base64.StdEncoding.EncodeToString(n))) {
						t.Fatalf("%s/%s holds the secret", col, snap.Ref.ID)
					}
				}
			}
		}
		for _, n := range needles {
			if strings.Contains(w.logs.String(), string(n)) {
				t.Fatal("a log line holds the secret")
			}
		}
	})
}

// TestFailingConnectorNeverHoldsUpAHealthyOne: one receiver answers 500,
// one 200. The healthy one gets every event once, on its first attempt;
// the failing one gets retries with growing gaps, then is disabled.
func TestFailingConnectorNeverHoldsUpAHealthyOne(t *testing.T) {
	t.Parallel()
	w := newWorld(t, deliver.Config{BackoffBase: 200 * time.Millisecond, BackoffMax: 10 * time.Second, DisableAfter: 5 * time.Second}, nil)
	good, bad := w.receiver("good secret", "good"), w.receiver("bad secret", "bad")
	bad.SetStatus(http.StatusInternalServerError)
	w.device("d1", nil)
	w.connector("good", good.URL, "good secret", connOpts{})
	w.connector("bad", bad.URL, "bad secret", connOpts{})
	var evs []dataconnector.Event
	queued := map[string]time.Time{}
	for i := range 5 {
		ev := w.event("d1", "touch")
		evs = append(evs, ev)
		queued[ev.ID] = time.Now()
		w.enqueue(ev)
		if i < 4 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	w.until(30*time.Second, "the failing connector to be system-disabled", func() bool {
		return w.connectorDoc("bad").Status == dataconnector.SystemDisabled
	})
	w.svc.Wait()
	g := byID(good.Deliveries())
	for _, ev := range evs {
		if n := len(g[ev.ID]); n != 1 {
			t.Fatalf("healthy connector got event %s %d times, want exactly once", ev.ID, n)
		}
	}
	for _, d := range w.deliveries("good") {
		if d.Attempts != 1 || d.Status != dataconnector.Delivered {
			t.Fatalf("healthy delivery needed %d attempts (%s): it was held up", d.Attempts, d.Status)
		}
	}
	var lat []time.Duration
	for id, ds := range g {
		lat = append(lat, ds[0].At.Sub(queued[id]))
	}
	t.Logf("healthy connector, queued to received beside a failing one: %v", lat)
	// The failing one: retried, with gaps that grow. Each gap is at least
	// the schedule's floor for its attempt, base·2^(n-1)/2, and the floors
	// double; the ceiling adds the sweep's period and the attempt itself.
	b := byID(bad.Deliveries())
	for _, ev := range evs {
		tries := b[ev.ID]
		if len(tries) < 3 {
			t.Fatalf("failing connector got %d attempts of event %s, want retries", len(tries), ev.ID)
		}
		var gaps []time.Duration
		for i := 1; i < len(tries); i++ {
			gap := tries[i].At.Sub(tries[i-1].At)
			gaps = append(gaps, gap)
			if floor := (200 * time.Millisecond << (i - 1)) / 2; gap < floor {
				t.Fatalf("attempt %d of %s came %v after the one before, under the backoff floor %v", i+1, ev.ID, gap, floor)
			}
		}
		t.Logf("gaps between attempts of %s at the failing connector: %v", ev.ID, gaps)
	}
	if !strings.Contains(w.logs.String(), `"alert":"webhook-disabled"`) {
		t.Fatal("no alertable log line for the disabled connector")
	}
	// After the disable, the healthy connector still takes new events.
	ev := w.event("d1", "touch")
	w.enqueue(ev)
	w.until(5*time.Second, "a delivery after the disable", func() bool { return len(byID(good.Deliveries())[ev.ID]) == 1 })
	before := len(bad.Deliveries())
	w.until(time.Second, "a sweep", func() bool { return true })
	w.svc.Wait()
	if after := len(bad.Deliveries()); after != before {
		t.Fatalf("a disabled connector still got %d requests", after-before)
	}
}

func TestBackfillOnReEnable(t *testing.T) {
	t.Parallel()
	w := newWorld(t, deliver.Config{CacheTTL: 100 * time.Millisecond}, nil)
	rc := w.receiver("backfill secret", "c1")
	w.device("d1", nil)
	w.connector("c1", rc.URL, "backfill secret", connOpts{events: []string{"touch"}})
	delivered := w.event("d1", "touch")
	w.enqueue(delivered)
	w.until(5*time.Second, "the first delivery", func() bool { return len(rc.Deliveries()) == 1 })
	w.svc.Wait()

	w.setStatus("c1", dataconnector.UserDisabled)
	disabledAt := w.connectorDoc("c1").DisabledAt
	var missed []dataconnector.Event
	time.Sleep(150 * time.Millisecond) // the instance's copy of the connector turns over
	for i := range 7 {
		typ := "touch"
		if i == 3 {
			typ = "temperature" // not a type the connector takes
		}
		ev := w.event("d1", typ)
		w.enqueue(ev)
		if typ == "touch" {
			missed = append(missed, ev)
		}
	}
	w.until(10*time.Second, "nothing pending", func() bool {
		for _, d := range w.deliveries("c1") {
			if d.Status == dataconnector.Pending {
				return false
			}
		}
		return true
	})
	w.svc.Wait()
	if n := len(rc.Deliveries()); n != 1 {
		t.Fatalf("a disabled connector got %d deliveries", n-1)
	}

	// Re-enable with backfill, as the API does.
	w.setStatus("c1", dataconnector.Active)
	ctx := context.Background()
	// The range reaches back over the event delivered before the disable.
	_, _, err := w.fs.Collection(store.DeliveryJobsCollection).Add(ctx, store.DeliveryJob{ProjectID: w.project, ConnectorID: "c1", Kind: dataconnector.Backfill,
		From: disabledAt.Add(-time.Minute), To: time.Now(), CreateTime: time.Now(), ExpireAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	w.until(15*time.Second, "the backfill", func() bool { return len(rc.Deliveries()) >= 1+len(missed) })
	w.svc.Wait()
	got := byID(rc.Deliveries())
	for _, ev := range missed {
		if len(got[ev.ID]) != 1 {
			t.Fatalf("missed event %s arrived %d times after backfill", ev.ID, len(got[ev.ID]))
		}
	}
	if len(got[delivered.ID]) != 1 {
		t.Fatal("backfill resent an event delivered before the disable")
	}
	if len(rc.Deliveries()) != 1+len(missed) {
		t.Fatalf("%d deliveries, want %d (the temperature event is filtered)", len(rc.Deliveries()), 1+len(missed))
	}
}

func TestSyncResendsTheLatestEventOfEachType(t *testing.T) {
	t.Parallel()
	w := newWorld(t, deliver.Config{}, nil)
	rc := w.receiver("sync secret", "c1")
	ctx := context.Background()
	for _, dev := range []string{"d1", "d2"} {
		w.device(dev, nil)
		for _, typ := range []string{"touch", "temperature", "touch"} {
			w.event(dev, typ)
			if _, err := w.fs.Collection("devices").Doc(dev).Update(ctx, []firestore.Update{{FieldPath: firestore.FieldPath{"reported", typ}, Value: map[string]any{}}}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	// The expected set: the newest touch and temperature of each device.
	want := map[string]bool{}
	docs, err := w.fs.Collection("events").Where("projectId", "==", w.project).Documents(ctx).GetAll()
	if err != nil {
		t.Fatal(err)
	}
	newest := map[string]*firestore.DocumentSnapshot{}
	for _, d := range docs {
		k := d.Data()["deviceId"].(string) + "/" + d.Data()["eventType"].(string)
		if n := newest[k]; n == nil || d.Data()["timestamp"].(time.Time).After(n.Data()["timestamp"].(time.Time)) {
			newest[k] = d
		}
	}
	for _, d := range newest {
		want[d.Ref.ID] = true
	}
	w.connector("c1", rc.URL, "sync secret", connOpts{})
	_, _, err = w.fs.Collection(store.DeliveryJobsCollection).Add(ctx, store.DeliveryJob{ProjectID: w.project, ConnectorID: "c1", Kind: dataconnector.Sync, CreateTime: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	w.until(10*time.Second, "the sync", func() bool { return len(rc.Deliveries()) >= len(want) })
	w.svc.Wait()
	got := byID(rc.Deliveries())
	if len(got) != len(want) || len(want) != 4 {
		t.Fatalf("sync sent %d events, want the %d latest", len(got), len(want))
	}
	for id := range want {
		if len(got[id]) != 1 {
			t.Fatalf("latest event %s arrived %d times", id, len(got[id]))
		}
	}
}

// TestSSRFIsRefusedInCloudMode: a cloud-mode client never connects to an
// internal address, named directly or through DNS, and a name that
// rebinds to one after its first check cannot get through.
func TestSSRFIsRefusedInCloudMode(t *testing.T) {
	t.Parallel()
	res := &publicResolver{}
	var dialed []string
	var dialMu = make(chan struct{}, 1)
	dialMu <- struct{}{}
	// The "public" address stands for the customer's server: the dial
	// hook records it and connects to the local receiver instead.
	var target string
	dialer := &egress.Dialer{Resolver: res, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		<-dialMu
		dialed = append(dialed, address)
		dialMu <- struct{}{}
		return (&net.Dialer{}).DialContext(ctx, network, target)
	}}
	w := newWorld(t, deliver.Config{BackoffBase: time.Hour}, dialer)
	rc := w.receiver("ssrf secret", "rebind")
	target = strings.TrimPrefix(rc.URL, "https://")
	_, port, _ := net.SplitHostPort(target)
	w.device("d1", nil)
	cases := map[string]string{
		"loopback":     "https://127.0.0.1:" + port,
		"private":      "https://10.1.2.3:" + port,
		"metadata":     "https://169.254.169.254/computeMetadata/v1/",
		"v6 loopback":  "https://[::1]:" + port,
		"mapped v4":    "https://[::ffff:127.0.0.1]:" + port,
		"plain http":   "http://127.0.0.1:" + port,
		"name→private": "https://internal.example:" + port,
	}
	res.answers = []netip.Addr{netip.MustParseAddr("10.0.0.7")}
	for name, url := range cases {
		w.connector(strings.ReplaceAll(name, " ", "-"), url, "ssrf secret", connOpts{})
	}
	ev := w.event("d1", "touch")
	w.enqueue(ev)
	w.svc.Wait()
	if n := len(rc.Deliveries()); n != 0 {
		t.Fatalf("%d requests reached an internal address", n)
	}
	for name := range cases {
		for _, d := range w.deliveries(strings.ReplaceAll(name, " ", "-")) {
			if d.LastResult != "refused" || d.Status != dataconnector.Pending {
				t.Errorf("%s: %s/%s, want a refused attempt", name, d.Status, d.LastResult)
			}
		}
	}
	if len(dialed) != 0 {
		t.Fatalf("dialed %v", dialed)
	}

	// Rebinding (example.com is the name the receiver's certificate
	// carries): the name first resolves to a public address and is
	// delivered to, by that literal; then it answers loopback, and the
	// next delivery is refused before any connection.
	res.mu.Lock()
	res.answers, res.lookups = []netip.Addr{netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("127.0.0.1")}, 0
	res.mu.Unlock()
	w2 := newWorld(t, deliver.Config{BackoffBase: time.Hour}, &egress.Dialer{Resolver: res, Dial: dialer.Dial})
	w2.roots.AddCert(rc.Certificate())
	w2.device("d1", nil)
	w2.connector("rebind", "https://example.com:"+port, "ssrf secret", connOpts{})
	first := w2.event("d1", "touch")
	w2.enqueue(first)
	w2.svc.Wait()
	second := w2.event("d1", "touch")
	// A kept-alive connection goes to the address checked before; a new
	// one resolves again, and that is where rebinding would strike.
	rc.CloseClientConnections()
	w2.enqueue(second)
	w2.svc.Wait()
	got := byID(rc.Deliveries())
	if len(got[first.ID]) != 1 || len(got[second.ID]) != 0 {
		t.Fatalf("first delivered %d times, second %d times; want 1 and 0", len(got[first.ID]), len(got[second.ID]))
	}
	if len(dialed) != 1 || dialed[0] != "93.184.215.14:"+port {
		t.Fatalf("dialed %v, want only the checked public literal", dialed)
	}
}

// TestEventPastRetentionIsGivenUp: a pair whose event has expired from
// Firestore cannot succeed, so it is closed at once instead of retried for
// 12 hours.
func TestEventPastRetentionIsGivenUp(t *testing.T) {
	t.Parallel()
	w := newWorld(t, deliver.Config{}, nil)
	rc := w.receiver("retention secret", "c1")
	w.device("d1", nil)
	w.connector("c1", rc.URL, "retention secret", connOpts{})
	id := store.DeliveryID("c1", "long-gone", "")
	_, err := w.fs.Collection(store.DeliveriesCollection).Doc(id).Set(context.Background(), store.Delivery{ProjectID: w.project, ConnectorID: "c1",
		EventID: "long-gone", DeviceID: "d1", EventType: "touch", Status: dataconnector.Pending, Due: time.Now(), Queued: time.Now(), ExpireAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	w.until(5*time.Second, "the pair to close", func() bool {
		ds := w.deliveries("c1")
		return len(ds) == 1 && ds[0].Status == dataconnector.Expired
	})
	if d := w.deliveries("c1")[0]; d.LastResult != "event gone" || d.Attempts != 1 || len(rc.Deliveries()) != 0 {
		t.Fatalf("record %+v, %d requests", d, len(rc.Deliveries()))
	}
}

// TestPushedPacketOfEvents: ingest publishes a packet's events as one
// message; each good event is delivered, and a bad one is refused alone.
func TestPushedPacketOfEvents(t *testing.T) {
	t.Parallel()
	w := newWorld(t, deliver.Config{}, nil)
	rc := w.receiver("packet secret", "c1")
	w.device("d1", nil)
	w.connector("c1", rc.URL, "packet secret", connOpts{})
	a, b := w.event("d1", "touch"), w.event("d1", "temperature")
	forged := []byte(`{"eventId":"x1","eventType":"touch","targetName":"projects/elsewhere/devices/d1"}`)
	data, err := dtevent.EncodeMessage([][]byte{a.JSON, forged, b.JSON})
	if err != nil {
		t.Fatal(err)
	}
	push, _ := json.Marshal(map[string]any{"message": map[string]any{"data": data, "messageId": "9",
		"attributes": map[string]string{"projectId": w.project, "deviceId": "d1"}}})
	e := event.New()
	e.SetID("9")
	e.SetType("google.cloud.pubsub.topic.v1.messagePublished")
	e.SetSource("//pubsub.googleapis.com/projects/p/topics/events")
	if err := e.SetData("application/json", push); err != nil {
		t.Fatal(err)
	}
	if err := w.svc.Handle(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	w.until(5*time.Second, "both good events", func() bool { return len(rc.Deliveries()) >= 2 })
	w.svc.Wait()
	got := byID(rc.Deliveries())
	if len(got) != 2 || len(got[a.ID]) != 1 || len(got[b.ID]) != 1 {
		t.Fatalf("delivered %v", got)
	}
	if n := strings.Count(w.logs.String(), `"rejected":"malformed-event"`); n != 1 {
		t.Fatalf("%d refusals logged, want the forged event's 1", n)
	}
}
