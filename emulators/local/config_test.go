package local_test

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/emulators/local"
	"github.com/sealedsense/sealedsense/emulators/local/localtest"
	"github.com/sealedsense/sealedsense/shared/event"
)

// shadow is the part of a device's configuration the test reads.
type shadow struct {
	Status          string `json:"status"`
	DesiredVersion  int64  `json:"desiredVersion"`
	ReportedVersion int64  `json:"reportedVersion"`
	Attempts        int64  `json:"attempts"`
}

// TestDeviceConfigurationConverges: a customer labels 5 of 20 sensors and
// configures them by label to sample every minute (600 ms here, the
// simulator's clock running 100 times fast). One of the five is switched
// off during the change and ccon-1 of the two connectors is killed just
// after it. Every configured sensor confirms within 3 of the replies that
// carried the configuration (the one switched off after it comes back),
// samples at the new rate, and gets one REQUESTED and one IN_SYNC
// configurationStatus event, which the stream shows once each; the other
// 15 are untouched.
func TestDeviceConfigurationConverges(t *testing.T) {
	t.Parallel()
	// Types whose ranges take a one-minute sampling interval (touch and
	// water sensors sample at most every 5 minutes).
	d := localtest.Start(t, local.Config{Sensors: 20, Connectors: 2, TimeScale: 100, SensorTypes: []string{"temperature", "humidity", "co2", "proximity"}})
	devices := d.Devices()
	waitAcked(t, d, devices, nil)
	token := localtest.CustomerToken(t, d)
	const project = "demo"
	chosen, others := devices[:5], devices[5:]
	for _, dev := range devices {
		if !slices.Contains(d.Sim.InRange(dev), "ccon-2") {
			t.Fatalf("sensor %s hears %v; the test kills ccon-1 and needs ccon-2 in range of every sensor", dev, d.Sim.InRange(dev))
		}
	}
	before := d.Sim.ReadingInterval(others[0])

	var names []string
	for _, dev := range chosen {
		names = append(names, "projects/"+project+"/devices/"+dev)
	}
	if code := localtest.APICall(t, d, token, "POST", "/v2/projects/"+project+"/devices:batchUpdate",
		map[string]any{"devices": names, "addLabels": map[string]string{"room": "quiet"}}, nil); code != 200 {
		t.Fatalf("labelling: %d", code)
	}
	stream := newStreamClient(t, d, token, url.Values{"event_types": {"configurationStatus"}, "ping_interval": {"2s"}}, false)
	stream.open()
	defer stream.kill()
	time.Sleep(2 * time.Second) // the stream's live start has settled
	off := chosen[0]
	if err := d.Sim.StopSensor(off); err != nil {
		t.Fatal(err)
	}
	var answer struct {
		Devices []struct{ DeviceID, Status string } `json:"devices"`
	}
	if code := localtest.APICall(t, d, token, "POST", "/v2/projects/"+project+"/devices:configure",
		map[string]any{"desired": map[string]any{"sampleIntervalSeconds": 60, "batchSize": 1}, "labelSelector": "room=quiet"}, &answer); code != 200 {
		t.Fatalf("configure: %d", code)
	}
	for _, a := range answer.Devices {
		if a.Status != "PENDING" {
			t.Errorf("configure answered %s for %s, want PENDING", a.Status, a.DeviceID)
		}
	}
	if len(answer.Devices) != len(chosen) {
		t.Fatalf("configure answered for %d devices, want %d: %+v", len(answer.Devices), len(chosen), answer)
	}
	// The connector that may carry the configuration's first replies dies;
	// the other still hears every sensor.
	d.KillConnector("ccon-1")

	configured := func(ids []string) func() (bool, string) {
		return func() (bool, string) {
			for _, dev := range ids {
				var s shadow
				localtest.APICall(t, d, token, "GET", "/v2/projects/"+project+"/devices/"+dev+"/configuration", nil, &s)
				if s.Status != "IN_SYNC" || s.ReportedVersion != 1 {
					return false, fmt.Sprintf("device %s: %+v", dev, s)
				}
			}
			return true, ""
		}
	}
	localtest.WaitUntil(t, 60*time.Second, "the running sensors confirming", configured(chosen[1:]))
	if _, err := d.Sim.RestartSensor(off); err != nil {
		t.Fatal(err)
	}
	localtest.WaitUntil(t, 60*time.Second, "the restarted sensor confirming", configured(chosen[:1]))

	for _, dev := range chosen {
		var s shadow
		localtest.APICall(t, d, token, "GET", "/v2/projects/"+project+"/devices/"+dev+"/configuration", nil, &s)
		if s.Attempts > 3 {
			t.Errorf("device %s confirmed after %d replies carried the configuration, want at most 3", dev, s.Attempts)
		}
		if got := d.Sim.ReadingInterval(dev); got != 600*time.Millisecond {
			t.Errorf("device %s samples every %s, want 600ms", dev, got)
		}
		assertOneConfigEvent(t, d, dev)
	}
	assertStreamedOnce(t, stream, chosen)
	for _, dev := range others {
		var s shadow
		localtest.APICall(t, d, token, "GET", "/v2/projects/"+project+"/devices/"+dev+"/configuration", nil, &s)
		if s.DesiredVersion != 0 || d.Sim.ReadingInterval(dev) != before {
			t.Errorf("unconfigured device %s changed: %+v, samples every %s", dev, s, d.Sim.ReadingInterval(dev))
		}
	}
	// The configured sensors' readings reach Firestore at the new rate:
	// each stored about 3 times as many as an unconfigured one meanwhile.
	start := storedReadings(t, d, devices)
	time.Sleep(6 * time.Second)
	drain(t, d)
	end := storedReadings(t, d, devices)
	fast, slow := end[chosen[1]]-start[chosen[1]], end[others[0]]-start[others[0]]
	if fast < 2*slow || slow == 0 {
		t.Errorf("in 6 s a configured sensor stored %d readings and an unconfigured one %d; want the first at least twice the second", fast, slow)
	}
	assertExactlyOnce(t, d, devices[1:])
}

// storedReadings counts each device's stored readings.
func storedReadings(t *testing.T, d *local.Deployment, devices []string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, dev := range devices {
		docs, err := d.FS.Collection("events").Where("deviceId", "==", dev).Documents(context.Background()).GetAll()
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range docs {
			if typ, _ := doc.Data()["eventType"].(string); fromReading(typ) {
				out[dev]++
			}
		}
	}
	return out
}

// assertOneConfigEvent checks the device's configurationStatus events
// are REQUESTED and IN_SYNC for version 1, each stored once: their ids
// are derived from the transition.
func assertOneConfigEvent(t *testing.T, d *local.Deployment, dev string) {
	t.Helper()
	docs, err := d.FS.Collection("events").Where("deviceId", "==", dev).Where("eventType", "==", "configurationStatus").Documents(context.Background()).GetAll()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{event.ConfigurationStatusID(dev, "REQUESTED", 1): true, event.ConfigurationStatusID(dev, "IN_SYNC", 1): true}
	var got []string
	for _, doc := range docs {
		got = append(got, doc.Ref.ID)
		delete(want, doc.Ref.ID)
	}
	if len(want) != 0 || len(docs) != 2 {
		t.Errorf("device %s: configurationStatus events %v; want REQUESTED and IN_SYNC of version 1, once each", dev, got)
	}
}

// assertStreamedOnce waits for the stream to show each configured
// device's REQUESTED and IN_SYNC events and checks it showed each once,
// and nothing but configurationStatus events.
func assertStreamedOnce(t *testing.T, stream *streamClient, devices []string) {
	t.Helper()
	want := map[string]bool{}
	for _, dev := range devices {
		want[event.ConfigurationStatusID(dev, "REQUESTED", 1)] = true
		want[event.ConfigurationStatusID(dev, "IN_SYNC", 1)] = true
	}
	assertIDsStreamedOnce(t, stream, "configurationStatus", want)
}

// assertIDsStreamedOnce waits until the stream, filtered to events of
// typ, showed every event of want, and checks it showed each once and
// nothing else.
func assertIDsStreamedOnce(t *testing.T, stream *streamClient, typ string, want map[string]bool) {
	t.Helper()
	// Stored events reach the stream within seconds; on a CI machine
	// running the end-to-end packages side by side, 30 s was once too
	// little.
	localtest.WaitUntil(t, 90*time.Second, "every "+typ+" event on the stream", func() (bool, string) {
		seen := map[string]bool{}
		for _, e := range stream.events() {
			seen[e.ID] = true
		}
		for id := range want {
			if !seen[id] {
				return false, "event " + id + " not streamed yet; " + storedAt(stream, id)
			}
		}
		return true, ""
	})
	count := map[string]int{}
	for _, e := range stream.events() {
		count[e.ID]++
		if e.Type != typ {
			t.Errorf("the stream filtered to %s sent a %s event", typ, e.Type)
		}
	}
	for id, n := range count {
		if n != 1 || !want[id] {
			t.Errorf("event %s streamed %d times (expected: %v)", id, n, want[id])
		}
	}
}

// storedAt says whether event id is stored and when, beside when the
// stream sent its last event, so a failure tells a slow stream from one
// that passed an event or an event that was never stored.
func storedAt(stream *streamClient, id string) string {
	snap, err := stream.d.FS.Collection("events").Doc(id).Get(context.Background())
	if err != nil {
		return "the event is not stored: " + err.Error()
	}
	last := "the stream sent nothing"
	if evs := stream.events(); len(evs) > 0 {
		e := evs[len(evs)-1]
		last = fmt.Sprintf("the stream's last event is %s (%s)", e.ID, e.Type)
	}
	return fmt.Sprintf("stored with storedAt %v, %v ago; %s", snap.Data()["storedAt"], time.Since(snap.UpdateTime).Round(time.Second), last)
}
