package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/sealedsense/sealedsense/emulators/platform"
	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/emulators/stack"
	"github.com/sealedsense/sealedsense/functions/ingest"
	"github.com/sealedsense/sealedsense/shared/relay"
	"github.com/sealedsense/sealedsense/shared/store"
)

// statusWatch collects the events ingest publishes on the events topic,
// by id, from a subscription of the test's own.
type statusWatch struct {
	mu        sync.Mutex
	published map[string]int // event id: times published
}

func (w *world) watchEvents() *statusWatch {
	w.t.Helper()
	ctx := context.Background()
	ps := platformtest.PubSub(w.t, w.project)
	if err := platform.EnsureSubscription(ctx, ps, platform.SubscriptionSpec{ID: "events-status", Topic: stack.TopicEvents}); err != nil {
		w.t.Fatal(err)
	}
	sw := &statusWatch{published: map[string]int{}}
	rctx, cancel := context.WithCancel(ctx)
	w.t.Cleanup(cancel)
	go func() {
		_ = ps.Subscriber("events-status").Receive(rctx, func(_ context.Context, m *pubsub.Message) {
			m.Ack()
			var evs []struct {
				EventID string `json:"eventId"`
			}
			if json.Unmarshal(m.Data, &evs) != nil {
				return
			}
			sw.mu.Lock()
			defer sw.mu.Unlock()
			for _, e := range evs {
				sw.published[e.EventID]++
			}
		})
	}()
	return sw
}

// waitFor waits until every id in ids has been published once; published
// twice, or not at all within a minute, fails.
func (sw *statusWatch) waitFor(t *testing.T, ids []string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		sw.mu.Lock()
		missing := 0
		for _, id := range ids {
			switch sw.published[id] {
			case 0:
				missing++
			case 1:
			default:
				sw.mu.Unlock()
				t.Fatalf("event %s published %d times", id, sw.published[id])
			}
		}
		sw.mu.Unlock()
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of events %v never published", missing, ids)
		}
	}
}

// heartbeat makes connector id send st, as the connector-status topic
// pushes it.
func (w *world) heartbeat(id string, st relay.Status) {
	w.t.Helper()
	st.ConnectorID = id
	env, err := relay.SignStatus(w.conns[id], st)
	if err != nil {
		w.t.Fatal(err)
	}
	e := pushEvent(w.project, env)
	e.SetSource("//pubsub.googleapis.com/projects/" + w.project + "/topics/connector-status")
	if err := w.svc.Handle(context.Background(), e); err != nil {
		w.t.Fatalf("heartbeat of %s: %v", id, err)
	}
}

// statusEvents are connector id's stored events by id: type and data.
func (w *world) statusEvents(id string) map[string]statusEvent {
	w.t.Helper()
	out := map[string]statusEvent{}
	for evID, typ := range w.events(id) {
		snap, err := w.fs.Collection("events").Doc(evID).Get(context.Background())
		if err != nil {
			w.t.Fatal(err)
		}
		var e struct {
			Data map[string]map[string]any `json:"data"`
		}
		if err := json.Unmarshal(snap.Data()["json"].([]byte), &e); err != nil {
			w.t.Fatal(err)
		}
		out[evID] = statusEvent{typ: typ, data: e.Data[typ]}
	}
	return out
}

type statusEvent struct {
	typ  string
	data map[string]any
}

// newSince returns the events in now that are not in before, by id, and
// their types, sorted.
func newSince(before, now map[string]statusEvent) ([]string, []string) {
	var ids, types []string
	for id, e := range now {
		if _, ok := before[id]; !ok {
			ids = append(ids, id)
			types = append(types, e.typ)
		}
	}
	slices.Sort(types)
	return ids, types
}

// TestConnectorStatusEvents: heartbeats become one event per change of
// the connector's links, stored, published once and reported on its
// device of type ccon; repeats, a flickering signal and a reordered
// heartbeat make none.
func TestConnectorStatusEvents(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 100*time.Millisecond)
	watch := w.watchEvents()
	const mac = "02:00:5e:10:00:01"
	base := time.Now().UTC()
	at := func(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }
	status := func(s int, conn string, eth, cell *relay.Link) relay.Status {
		return relay.Status{Time: at(s), Connection: conn, Ethernet: eth, Cellular: cell}
	}
	up := &relay.Link{Up: true, MACAddress: mac}
	down := &relay.Link{MACAddress: mac, Errors: []string{relay.LinkDown}}
	cell := func(signal int) *relay.Link { return &relay.Link{Up: true, SignalStrength: signal} }
	steps := []struct {
		name string
		st   relay.Status
		want []string // the new events' types, sorted
	}{
		{"first heartbeat", status(1, relay.ConnectionEthernet, up, cell(60)), []string{"cellularStatus", "connectionStatus", "ethernetStatus"}},
		{"repeat", status(2, relay.ConnectionEthernet, up, cell(60)), nil},
		{"signal flickers", status(3, relay.ConnectionEthernet, up, cell(66)), nil},
		{"signal moves 10", status(4, relay.ConnectionEthernet, up, cell(70)), []string{"cellularStatus"}},
		{"reordered, from before the last", status(3, relay.ConnectionCellular, down, cell(10)), nil},
		{"Ethernet fails over", status(5, relay.ConnectionCellular, down, cell(70)), []string{"connectionStatus", "ethernetStatus"}},
		{"repeat after fail-over", status(6, relay.ConnectionCellular, down, cell(72)), nil},
	}
	before := w.statusEvents("ccon-a")
	for _, s := range steps {
		w.heartbeat("ccon-a", s.st)
		now := w.statusEvents("ccon-a")
		ids, types := newSince(before, now)
		if !slices.Equal(types, s.want) {
			t.Fatalf("%s: new events %v, want %v", s.name, types, s.want)
		}
		watch.waitFor(t, ids)
		before = now
	}
	d := w.device("ccon-a")
	if d.Type != store.ConnectorType || d.ProjectID != w.project || d.PublicKey != nil || d.WrappedPSK != nil {
		t.Fatalf("ccon-a's device %+v, want a ccon of %s with no keys", d, w.project)
	}
	want := map[string]string{
		"connectionStatus": `{"available":["CELLULAR"],"connection":"CELLULAR"}`,
		"ethernetStatus":   `{"errors":[{"code":"LINK_DOWN","message":"the link is down: no carrier or no network registration"}],"ipAddress":"","macAddress":"` + mac + `"}`,
		"cellularStatus":   `{"errors":[],"signalStrength":70}`,
	}
	if got := slices.Sorted(maps.Keys(d.Reported)); !slices.Equal(got, slices.Sorted(maps.Keys(want))) {
		t.Fatalf("reported %v, want %v", got, slices.Sorted(maps.Keys(want)))
	}
	for typ, js := range want {
		r := maps.Clone(d.Reported[typ].(map[string]any))
		delete(r, "updateTime")
		if b, _ := json.Marshal(r); string(b) != js {
			t.Errorf("reported %s %s, want %s", typ, b, js)
		}
	}
}

// TestLegacyConnectorGetsDevice: a connector registered before
// connectors were devices gets its device at its next heartbeat, told its
// current connection by one event; the heartbeat after adds nothing.
func TestLegacyConnectorGetsDevice(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 100*time.Millisecond)
	ctx := context.Background()
	legacy := relay.Status{Connection: relay.ConnectionEthernet, Available: []string{relay.ConnectionEthernet}}
	legacy.Time = time.Now().UTC()
	w.heartbeat("ccon-b", legacy)
	// As it was before: the connector's record and events, no device.
	if _, err := w.fs.Collection("devices").Doc("ccon-b").Delete(ctx); err != nil {
		t.Fatal(err)
	}
	before := w.statusEvents("ccon-b")
	legacy.Time = legacy.Time.Add(time.Second)
	w.heartbeat("ccon-b", legacy)
	after := w.statusEvents("ccon-b")
	if _, types := newSince(before, after); !slices.Equal(types, []string{"connectionStatus"}) {
		t.Fatalf("the heartbeat that made the device stored %v, want one connectionStatus", types)
	}
	d := w.device("ccon-b")
	cs, _ := d.Reported["connectionStatus"].(map[string]any)
	if d.Type != store.ConnectorType || d.ProjectID != w.project || cs["connection"] != relay.ConnectionEthernet {
		t.Fatalf("ccon-b's device %+v, want a ccon of %s reporting ETHERNET", d, w.project)
	}
	legacy.Time = legacy.Time.Add(time.Second)
	w.heartbeat("ccon-b", legacy)
	if _, types := newSince(after, w.statusEvents("ccon-b")); len(types) != 0 {
		t.Fatalf("a repeat heartbeat stored %v", types)
	}
}

// TestSweepReportsConnectorOffline: a connector gone silent is reported
// OFFLINE by one event and on its device, with no link up; what it said
// of its links stays reported.
func TestSweepReportsConnectorOffline(t *testing.T) {
	t.Parallel()
	w := newWorldConfig(t, ingest.Config{Window: 100 * time.Millisecond, OfflineAfter: time.Millisecond})
	w.heartbeat("ccon-a", relay.Status{Time: time.Now().UTC(), Connection: relay.ConnectionEthernet,
		Ethernet: &relay.Link{Up: true, MACAddress: "02:00:5e:10:00:01"}})
	before := w.statusEvents("ccon-a")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n, err := w.svc.Sweep(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sweep never found ccon-a silent")
		}
	}
	ids, types := newSince(before, w.statusEvents("ccon-a"))
	if !slices.Equal(types, []string{"connectionStatus"}) {
		t.Fatalf("the sweep stored %v, want one connectionStatus", types)
	}
	ev := w.statusEvents("ccon-a")[ids[0]]
	if ev.data["connection"] != relay.ConnectionOffline || fmt.Sprint(ev.data["available"]) != "[]" {
		t.Fatalf("offline event %v, want OFFLINE with nothing available", ev.data)
	}
	d := w.device("ccon-a")
	cs, _ := d.Reported["connectionStatus"].(map[string]any)
	eth, _ := d.Reported["ethernetStatus"].(map[string]any)
	if cs["connection"] != relay.ConnectionOffline || eth["macAddress"] != "02:00:5e:10:00:01" {
		t.Fatalf("reported %v, want OFFLINE and the Ethernet facts as they were", d.Reported)
	}
	if n, err := w.svc.Sweep(context.Background()); err != nil || n != 0 {
		t.Fatalf("a second sweep: %d, %v; want nothing more", n, err)
	}
}

// TestLongOutageAlertedOnce: a connector offline longer than
// OfflineAlertAfter is logged for the long-outage alert once per outage,
// however many sweeps see it; after a heartbeat, its next outage is
// alerted on again.
func TestLongOutageAlertedOnce(t *testing.T) {
	t.Parallel()
	w := newWorldConfig(t, ingest.Config{Window: 100 * time.Millisecond, OfflineAfter: time.Millisecond, OfflineAlertAfter: time.Millisecond})
	alerts := func() int { return strings.Count(w.logs.String(), `"alert":"connector-offline-long"`) }
	outage := func(want int) {
		t.Helper()
		w.heartbeat("ccon-a", relay.Status{Time: time.Now().UTC(), Connection: relay.ConnectionEthernet})
		time.Sleep(5 * time.Millisecond)
		for range 3 {
			if _, err := w.svc.Sweep(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		if got := alerts(); got != want {
			t.Fatalf("%d long-outage alerts after %d outages; want one per outage", got, want)
		}
	}
	outage(1)
	outage(2)
	if !strings.Contains(w.logs.String(), `"connectorId":"ccon-a"`) {
		t.Fatal("the alert does not name the connector")
	}
}
