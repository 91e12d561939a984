package local_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/emulators/local"
	"github.com/sealedsense/sealedsense/emulators/local/localtest"
	"github.com/sealedsense/sealedsense/shared/webhook/webhooktest"
)

// TestEmulatedDevicesEndToEnd: an emulated device's published events,
// and the labelsChanged events of its label changes, reach event history,
// an open stream and a webhook receiver exactly once each, on the path a
// sensor's events take, marked as emulated where a receiver looks.
func TestEmulatedDevicesEndToEnd(t *testing.T) {
	t.Parallel()
	var d *local.Deployment
	jwks := jwksOf(&d)
	const secret = "the emulator test receiver's secret"
	hook := webhooktest.New(t, []byte(secret), jwks)
	d = localtest.Start(t, local.Config{Sensors: 1, Connectors: 1, DeliverSweepEvery: 250 * time.Millisecond,
		FunctionsEnv: []string{"SEALEDSENSE_DELIVER_CA_FILE=" + webhooktest.CAFile(t, hook)}})
	tok := localtest.CustomerToken(t, d)
	call := func(method, path string, body any) map[string]any {
		t.Helper()
		var out map[string]any
		if code := localtest.APICall(t, d, tok, method, path, body, &out); code != 200 {
			t.Fatalf("%s %s: %d", method, path, code)
		}
		return out
	}
	connector := call("POST", "/v2/projects/demo/dataconnectors", map[string]any{"displayName": "emulated", "labels": []string{"site"},
		"httpConfig": map[string]any{"url": hook.URL + "/in", "signatureSecret": secret}})["name"].(string)
	hook.SetConnector(connector)
	stream := newStreamClient(t, d, tok, nil, false)
	stream.open()
	defer stream.kill()
	// Deliver instances see a new connector within their 5 s cache.
	time.Sleep(6 * time.Second)

	type published struct{ device, typ string }
	devices := map[string]string{} // id → type
	var sent []published
	for _, typ := range []string{"motion", "deskOccupancy", "touchCounter"} {
		name := call("POST", "/emulator/v2/projects/demo/devices", map[string]any{"type": typ, "labels": map[string]string{"site": "lab"}})["name"].(string)
		devices[name[strings.LastIndexByte(name, '/')+1:]] = typ
	}
	for id, typ := range devices {
		for i := range 3 {
			var body map[string]any
			switch typ {
			case "motion":
				body = map[string]any{"motion": map[string]any{"state": []string{"MOTION_DETECTED", "NO_MOTION_DETECTED"}[i%2]}}
			case "deskOccupancy":
				body = map[string]any{"deskOccupancy": map[string]any{"state": "OCCUPIED", "remarks": []string{}}}
			default:
				body = map[string]any{"touchCount": map[string]any{"total": 10 + i}}
			}
			call("POST", "/emulator/v2/projects/demo/devices/"+id+":publish", body)
			sent = append(sent, published{id, typ})
		}
		call("POST", "/v2/projects/demo/devices:batchUpdate", map[string]any{"devices": []string{id}, "addLabels": map[string]string{"site": "hall"}, "removeLabels": []string{"nope"}})
	}

	// History holds each once, and is the reference for the rest.
	want := map[string]string{} // event id → device
	for id := range devices {
		var list struct {
			Events []struct {
				EventID   string                     `json:"eventId"`
				EventType string                     `json:"eventType"`
				Data      map[string]json.RawMessage `json:"data"`
			} `json:"events"`
		}
		if code := localtest.APICall(t, d, tok, "GET", "/v2/projects/demo/devices/"+id+"/events?pageSize=100", nil, &list); code != 200 {
			t.Fatalf("history of %s: %d", id, code)
		}
		var types []string
		for _, ev := range list.Events {
			if _, dup := want[ev.EventID]; dup {
				t.Fatalf("event %s twice in history", ev.EventID)
			}
			want[ev.EventID] = id
			types = append(types, ev.EventType)
			if ev.EventType == "labelsChanged" && string(ev.Data["labelsChanged"]) != `{"added":{},"modified":{"site":"hall"},"removed":[]}` {
				t.Errorf("labelsChanged of %s: %s", id, ev.Data["labelsChanged"])
			}
		}
		labelled := slices.DeleteFunc(slices.Clone(types), func(s string) bool { return s != "labelsChanged" })
		if len(types) != 4 || len(labelled) != 1 {
			t.Errorf("history of %s (%s): %v, want its 3 published events and 1 labelsChanged", id, devices[id], types)
		}
	}
	if len(want) != len(sent)+len(devices) {
		t.Fatalf("history holds %d events, %d were published and %d label changes made", len(want), len(sent), len(devices))
	}

	streamed := func() map[string]int {
		n := map[string]int{}
		for _, ev := range stream.events() {
			if _, ok := devices[ev.Device]; ok {
				n[ev.ID]++
			}
		}
		return n
	}
	hooked := func() (map[string]int, error) {
		n := map[string]int{}
		for _, dl := range hook.Deliveries() {
			if dl.Err != nil {
				return nil, fmt.Errorf("a delivery failed its signature check: %w", dl.Err)
			}
			var body struct {
				Labels   map[string]string `json:"labels"`
				Metadata struct {
					DeviceID, DeviceType, ProductNumber string
				} `json:"metadata"`
			}
			if err := json.Unmarshal(dl.Body, &body); err != nil {
				return nil, err
			}
			if typ, ok := devices[body.Metadata.DeviceID]; ok {
				if body.Metadata.ProductNumber != "EMULATED" || body.Metadata.DeviceType != typ || body.Labels["site"] == "" {
					return nil, fmt.Errorf("delivery %s is not marked emulated, or lost its type or label: %s", dl.ID, dl.Body)
				}
				n[dl.ID]++
			}
		}
		return n, nil
	}
	localtest.WaitUntil(t, 60*time.Second, "every emulated event on the stream and at the receiver", func() (bool, string) {
		s := streamed()
		h, err := hooked()
		if err != nil {
			t.Fatal(err)
		}
		return len(s) == len(want) && len(h) == len(want), fmt.Sprintf("%d of %d streamed, %d delivered", len(s), len(want), len(h))
	})
	// A late duplicate would come within the deliver sweep's retries.
	time.Sleep(3 * time.Second)
	h, err := hooked()
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]map[string]int{"stream": streamed(), "webhook receiver": h} {
		for id, n := range got {
			if _, ok := want[id]; !ok || n != 1 {
				t.Errorf("%s: event %s arrived %d times (in history: %v)", name, id, n, ok)
			}
		}
	}
	t.Logf("%d emulated events and %d labelsChanged: each once in history, on the stream and at the receiver", len(sent), len(devices))
}
