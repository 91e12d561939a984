package api_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/sealedsense/sealedsense/shared/store"
)

// TestEmulatorRefusesBadInput: the device emulator API answers a clear
// refusal to what it cannot take, changes nothing for it, and never
// lets an emulated call touch a real sensor.
func TestEmulatorRefusesBadInput(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "SEALEDSENSE_API_RATE=10000", "SEALEDSENSE_EMULATOR_RATE=1000")
	p := w.tenant.Project
	base := "/emulator/v2/projects/" + p + "/devices"
	real := w.devices(p, "", 1)[0]
	dev := must[map[string]any](t, 200)(w.admin.call("POST", base, map[string]any{"type": "temperature", "labels": map[string]string{"name": "emu"}}))
	name := dev["name"].(string)
	id := name[strings.LastIndexByte(name, '/')+1:]
	if !strings.HasPrefix(id, "emu") || len(id) != 23 || dev["productNumber"] != store.EmulatedProductNumber || dev["type"] != "temperature" {
		t.Fatalf("an emulated device must be marked by its emu id (23 characters) and product number %s: %v", store.EmulatedProductNumber, dev)
	}
	big := `{"temperature":{"value":21,"samples":[` + strings.Repeat(`{"value":21},`, 2000) + `{"value":21}]}}`
	for _, tt := range []struct {
		name, method, path string
		body               any
		code               int
	}{
		{"unknown device type", "POST", base, map[string]any{"type": "toaster"}, 400},
		{"no device type", "POST", base, map[string]any{}, 400},
		{"bad label key", "POST", base, map[string]any{"type": "touch", "labels": map[string]string{"no spaces": "x"}}, 400},
		{"unknown field", "POST", base, map[string]any{"type": "touch", "colour": "red"}, 400},
		{"an event type the device does not emit", "POST", base + "/" + id + ":publish", map[string]any{"touch": map[string]any{}}, 400},
		{"labelsChanged cannot be published", "POST", base + "/" + id + ":publish", map[string]any{"labelsChanged": map[string]any{"added": map[string]any{}}}, 400},
		{"our own event types cannot be published", "POST", base + "/" + id + ":publish", map[string]any{"configurationStatus": map[string]any{}}, 400},
		{"two event types in one body", "POST", base + "/" + id + ":publish", map[string]any{"temperature": map[string]any{"value": 1}, "batteryStatus": map[string]any{"percentage": 5}}, 400},
		{"a value out of range", "POST", base + "/" + id + ":publish", map[string]any{"temperature": map[string]any{"value": 1e9}}, 400},
		{"a value of the wrong type", "POST", base + "/" + id + ":publish", map[string]any{"temperature": map[string]any{"value": "warm"}}, 400},
		{"an unknown data field", "POST", base + "/" + id + ":publish", map[string]any{"temperature": map[string]any{"value": 1, "unit": "C"}}, 400},
		{"not JSON", "POST", base + "/" + id + ":publish", "{", 400},
		{"a body too large", "POST", base + "/" + id + ":publish", big, 413},
		{"publish as a real sensor", "POST", base + "/" + real + ":publish", map[string]any{"temperature": map[string]any{"value": 1}}, 404},
		{"delete a real sensor", "DELETE", base + "/" + real, nil, 404},
		{"publish as an unknown device", "POST", base + "/emu00000000000000000000:publish", map[string]any{"temperature": map[string]any{"value": 1}}, 404},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if code, b := w.admin.call(tt.method, tt.path, tt.body); code != tt.code {
				t.Errorf("%s %s: %d, want %d: %s", tt.method, tt.path, code, tt.code, b)
			}
		})
	}
	// None of it stored an event, and the real sensor is untouched.
	for _, d := range []string{id, real} {
		ev := must[map[string]any](t, 200)(w.admin.call("GET", "/v2/projects/"+p+"/devices/"+d+"/events", nil))
		if n := len(ev["events"].([]any)); n != 0 {
			t.Errorf("device %s has %d events after refused calls", d, n)
		}
	}
	if got := must[map[string]any](t, 200)(w.admin.call("GET", "/v2/projects/"+p+"/devices/"+real, nil)); got["productNumber"] == store.EmulatedProductNumber {
		t.Errorf("the real sensor was changed: %v", got)
	}
	// An emulated device takes no configuration, alone or in a batch.
	if code, b := w.admin.call("PATCH", "/v2/projects/"+p+"/devices/"+id+"/configuration", map[string]any{"desired": map[string]any{"sampleIntervalSeconds": 60}}); code != 409 {
		t.Errorf("configuring an emulated device: %d %s", code, b)
	}
	batch := must[map[string]any](t, 200)(w.admin.call("POST", "/v2/projects/"+p+"/devices:configure", map[string]any{"desired": map[string]any{"sampleIntervalSeconds": 60}, "deviceIds": []string{id}}))
	if out := batch["devices"].([]any)[0].(map[string]any); out["status"] != "error" || out["error"].(map[string]any)["code"] != "FAILED_PRECONDITION" {
		t.Errorf("configuring an emulated device in a batch: %v", out)
	}
	// A good publish becomes the device's reported state; deleting the
	// device makes it unknown.
	must[map[string]any](t, 200)(w.admin.call("POST", base+"/"+id+":publish", map[string]any{"temperature": map[string]any{"value": 4.5}}))
	got := must[map[string]any](t, 200)(w.admin.call("GET", "/v2/projects/"+p+"/devices/"+id, nil))
	if v := got["reported"].(map[string]any)["temperature"].(map[string]any)["value"]; v != 4.5 {
		t.Errorf("reported temperature %v after publishing 4.5", v)
	}
	must[map[string]any](t, 200)(w.admin.call("DELETE", base+"/"+id, nil))
	if code, b := w.admin.call("POST", base+"/"+id+":publish", map[string]any{"temperature": map[string]any{"value": 1}}); code != 404 {
		t.Errorf("publish as a deleted device: %d %s", code, b)
	}
}

// TestEmulatorRateLimit: a project's publishes beyond its rate answer 429
// with Retry-After, as DT's clients expect, and another project is not
// held up by it.
func TestEmulatorRateLimit(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "SEALEDSENSE_API_RATE=10000", "SEALEDSENSE_EMULATOR_RATE=1")
	p := w.tenant.Project
	q := w.newProject(w.tenant.Organization, "rate other")
	publish := func(project string) (int, http.Header) {
		d := must[map[string]any](t, 200)(w.admin.call("POST", "/emulator/v2/projects/"+project+"/devices", map[string]any{"type": "touch"}))
		code, b, h := w.requestHeaders("POST", "/emulator/v2/"+d["name"].(string)+":publish", "Bearer "+w.admin.token(), map[string]any{"touch": map[string]any{}})
		if code != 200 && code != 429 {
			t.Fatalf("publish: %d %s", code, b)
		}
		return code, h
	}
	limited := 0
	var retry string
	for range 6 {
		if code, h := publish(p); code == 429 {
			limited++
			retry = h.Get("Retry-After")
		}
	}
	if limited == 0 || retry == "" {
		t.Fatalf("6 quick publishes at 1 a second (bursts of 2): %d refused, Retry-After %q", limited, retry)
	}
	if code, _ := publish(q); code != 200 {
		t.Fatalf("another project's publish was refused (%d): the limit is per project", code)
	}
}

// TestLabelsChanged: every label change, batch or single, is one
// labelsChanged event in DT's shape with exactly what changed; a change
// that changes nothing makes none.
func TestLabelsChanged(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "SEALEDSENSE_API_RATE=10000")
	p := w.tenant.Project
	d := w.devices(p, "", 1)[0]
	dev := "/v2/projects/" + p + "/devices/" + d
	batch := func(add map[string]string, remove []string) {
		t.Helper()
		r := must[map[string]any](t, 200)(w.admin.call("POST", "/v2/projects/"+p+"/devices:batchUpdate", map[string]any{"devices": []string{d}, "addLabels": add, "removeLabels": remove}))
		if n := len(r["batchErrors"].([]any)); n != 0 {
			t.Fatalf("batchUpdate: %v", r)
		}
	}
	batch(map[string]string{"site": "oslo", "room": "1"}, nil)
	batch(map[string]string{"site": "bergen", "floor": "2"}, []string{"room", "never-set"})
	batch(map[string]string{"site": "bergen"}, nil) // changes nothing
	must[map[string]any](t, 200)(w.admin.call("POST", dev+"/labels", map[string]any{"key": "zone", "value": "a"}))
	if code, b := w.admin.call("POST", dev+"/labels", map[string]any{"key": "zone", "value": "b"}); code != 409 {
		t.Fatalf("creating a label the device has: %d %s", code, b)
	}
	must[map[string]any](t, 200)(w.admin.call("PATCH", dev+"/labels/zone", map[string]any{"value": "b"}))
	must[map[string]any](t, 200)(w.admin.call("DELETE", dev+"/labels/zone", nil))
	if code, b := w.admin.call("DELETE", dev+"/labels/zone", nil); code != 404 {
		t.Fatalf("deleting a label the device lacks: %d %s", code, b)
	}

	type change struct {
		Added    map[string]string `json:"added"`
		Modified map[string]string `json:"modified"`
		Removed  []string          `json:"removed"`
	}
	none := map[string]string{}
	want := []change{
		{map[string]string{"site": "oslo", "room": "1"}, none, []string{}},
		{map[string]string{"floor": "2"}, map[string]string{"site": "bergen"}, []string{"room"}},
		{map[string]string{"zone": "a"}, none, []string{}},
		{none, map[string]string{"zone": "b"}, []string{}},
		{none, none, []string{"zone"}},
	}
	list := must[struct {
		Events []struct {
			EventType string                     `json:"eventType"`
			Data      map[string]json.RawMessage `json:"data"`
		} `json:"events"`
	}](t, 200)(w.admin.call("GET", dev+"/events?eventTypes=labelsChanged&pageSize=100", nil))
	if len(list.Events) != len(want) {
		t.Fatalf("%d labelsChanged events, want %d (one per change that changed something)", len(list.Events), len(want))
	}
	// History lists oldest first.
	for i, ev := range list.Events {
		var got change
		if err := json.Unmarshal(ev.Data["labelsChanged"], &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("change %d: %s, want %+v", i+1, ev.Data["labelsChanged"], want[i])
		}
	}
	labels := must[map[string]any](t, 200)(w.admin.call("GET", dev, nil))["labels"]
	if !reflect.DeepEqual(labels, map[string]any{"site": "bergen", "floor": "2"}) {
		t.Errorf("labels after the changes: %v", labels)
	}
}
