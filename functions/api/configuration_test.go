package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sealedsense/sealedsense/functions/api"
	"github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/registry"
)

// sensor manufactures one sensor of a type into project.
func (w *world) sensor(project, typ string) string {
	w.t.Helper()
	m, err := w.reg.Manufacture(context.Background(), registry.Spec{Type: typ, ProductNumber: "SS-" + typ, ProjectID: project}, w.keys.Device)
	if err != nil {
		w.t.Fatal(err)
	}
	return m.Device.ID
}

// patchIfMatch sends a PATCH with an If-Match header and returns the
// status, body and ETag of the answer.
func (c *client) patchIfMatch(path, ifMatch string, body any) (int, []byte, string) {
	c.w.t.Helper()
	js, err := json.Marshal(body)
	if err != nil {
		c.w.t.Fatal(err)
	}
	req, err := http.NewRequest("PATCH", c.w.base+path, bytes.NewReader(js))
	if err != nil {
		c.w.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token())
	req.Header.Set("Content-Type", "application/json")
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.w.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	recordResponse(c.w.t, "PATCH", path, resp.StatusCode, out)
	return resp.StatusCode, out, resp.Header.Get("ETag")
}

// getConfig reads a device's configuration and its ETag header.
func (c *client) getConfig(t *testing.T, path string) (api.Configuration, string) {
	t.Helper()
	code, b, h := c.w.requestHeaders("GET", path, "Bearer "+c.token(), nil)
	if code != 200 {
		t.Fatalf("GET %s = %d, want 200: %s", path, code, b)
	}
	var cfg api.Configuration
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return cfg, h.Get("ETag")
}

func TestDeviceConfiguration(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	p := w.tenant.Project
	pp := "/v2/projects/" + p
	temp, co2, touch := w.devices(p, "", 1)[0], w.sensor(p, "co2"), w.sensor(p, "touch")
	dev := w.account(p, "roles/project.developer")
	cfgPath := func(d string) string { return pp + "/devices/" + d + "/configuration" }

	fresh, tag := dev.getConfig(t, cfgPath(temp))
	if fresh.Status != "IN_SYNC" || fresh.DesiredVersion != 0 || tag != `"v0"` || fresh.Etag != tag {
		t.Fatalf("a device never configured: %+v, ETag %s; want IN_SYNC at version 0, ETag \"v0\"", fresh, tag)
	}

	t.Run("ranges per device type", func(t *testing.T) {
		for _, tc := range []struct {
			name, device string
			desired      map[string]any
			want         int
		}{
			{"temperature every minute", temp, map[string]any{"sampleIntervalSeconds": 60, "batchSize": 5}, 200},
			{"temperature faster than the duty cycle", temp, map[string]any{"sampleIntervalSeconds": 5}, 400},
			{"temperature's fixed transmit power", temp, map[string]any{"txPowerDbm": 0}, 400},
			{"co2 under its warm-up", co2, map[string]any{"sampleIntervalSeconds": 30}, 400},
			{"co2 transmit power in range", co2, map[string]any{"txPowerDbm": 10}, 200},
			{"co2 transmit power too high", co2, map[string]any{"txPowerDbm": 20}, 400},
			{"touch batches nothing", touch, map[string]any{"batchSize": 2}, 400},
			{"touch heartbeat every 10 minutes", touch, map[string]any{"sampleIntervalSeconds": 600}, 200},
			{"nothing set", temp, map[string]any{}, 400},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before, _ := dev.getConfig(t, cfgPath(tc.device))
				code, b, tag := dev.patchIfMatch(cfgPath(tc.device), "", map[string]any{"desired": tc.desired})
				if code != tc.want {
					t.Fatalf("PATCH %v on %s = %d, want %d: %s", tc.desired, tc.device, code, tc.want, b)
				}
				after, _ := dev.getConfig(t, cfgPath(tc.device))
				if tc.want != 200 {
					if after.DesiredVersion != before.DesiredVersion {
						t.Fatalf("a refused configuration was stored: version %d -> %d", before.DesiredVersion, after.DesiredVersion)
					}
					return
				}
				if after.Status != "PENDING" || after.DesiredVersion != before.DesiredVersion+1 || after.Attempts != 0 || after.RequestTime == nil {
					t.Fatalf("after PATCH: %+v; want PENDING at version %d, 0 attempts, a request time", after, before.DesiredVersion+1)
				}
				if tag != after.Etag {
					t.Fatalf("PATCH answered ETag %s, GET says %s", tag, after.Etag)
				}
				// The change's REQUESTED event is stored with it.
				id := event.ConfigurationStatusID(tc.device, "REQUESTED", after.DesiredVersion)
				snap, err := w.fs.Collection("events").Doc(id).Get(context.Background())
				if err != nil || snap.Data()["eventType"] != "configurationStatus" || snap.Data()["deviceId"] != tc.device {
					t.Fatalf("the REQUESTED event of version %d: %v %v", after.DesiredVersion, err, snap.Data())
				}
			})
		}
	})

	t.Run("stale If-Match", func(t *testing.T) {
		cur, tag := dev.getConfig(t, cfgPath(co2))
		code, b, newTag := dev.patchIfMatch(cfgPath(co2), tag, map[string]any{"desired": map[string]any{"reportIntervalSeconds": 600}})
		if code != 200 || newTag == tag {
			t.Fatalf("PATCH with the current etag %s = %d, ETag %s: %s", tag, code, newTag, b)
		}
		for _, stale := range []string{tag, `"v999"`, "garbage"} {
			if code, b, _ := dev.patchIfMatch(cfgPath(co2), stale, map[string]any{"desired": map[string]any{"reportIntervalSeconds": 900}}); code != 412 {
				t.Errorf("PATCH with If-Match %s = %d, want 412: %s", stale, code, b)
			}
		}
		after, _ := dev.getConfig(t, cfgPath(co2))
		if after.DesiredVersion != cur.DesiredVersion+1 || after.Desired.ReportInterval != 600 {
			t.Fatalf("after the refused changes: %+v; want version %d reporting every 600 s", after, cur.DesiredVersion+1)
		}
	})

	t.Run("unknown and another project's device", func(t *testing.T) {
		other := w.newProject(w.tenant.Organization, "other")
		theirs := w.devices(other, "", 1)[0]
		for _, d := range []string{"nosuchdevice", theirs} {
			if code, b := dev.call("GET", cfgPath(d), nil); code != 404 {
				t.Errorf("GET %s = %d, want 404: %s", cfgPath(d), code, b)
			}
			if code, b, _ := dev.patchIfMatch(cfgPath(d), "", map[string]any{"desired": map[string]any{"sampleIntervalSeconds": 60}}); code != 404 {
				t.Errorf("PATCH %s = %d, want 404: %s", cfgPath(d), code, b)
			}
		}
		got, _ := w.admin.getConfig(t, "/v2/projects/"+other+"/devices/"+theirs+"/configuration")
		if got.DesiredVersion != 0 {
			t.Fatalf("another project's device was configured: %+v", got)
		}
	})

	t.Run("bad JSON and unknown fields", func(t *testing.T) {
		for _, body := range []string{
			`{`, `[]`, `{"desired":{"sampleIntervalSeconds":60}} {}`,
			`{"desired":{"sampleIntervalSeconds":60},"extra":1}`,
			`{"desired":{"sampleIntervalSeconds":60,"colour":"red"}}`,
			`{"desired":{"sampleIntervalSeconds":-60}}`,
		} {
			if code, b := dev.call("PATCH", cfgPath(temp), body); code != 400 {
				t.Errorf("PATCH %s = %d, want 400: %s", body, code, b)
			}
		}
	})

	t.Run("roles", func(t *testing.T) {
		viewer := w.account(p, "roles/project.user")
		if code, b, _ := viewer.patchIfMatch(cfgPath(temp), "", map[string]any{"desired": map[string]any{"sampleIntervalSeconds": 60}}); code != 403 {
			t.Fatalf("a project user changed a configuration: %d %s", code, b)
		}
		viewer.getConfig(t, cfgPath(temp))
	})

	t.Run("audited", func(t *testing.T) {
		type entries struct{ Entries []api.AuditEntry }
		log := must[entries](t, 200)(w.admin.call("GET", pp+"/auditLog?pageSize=1000", nil))
		for _, e := range log.Entries {
			if e.Action == "PATCH /v2/projects/{project}/devices/{device}/configuration" && e.Actor == dev.creds.Email && e.Code == 200 &&
				strings.HasSuffix(e.Resource, temp+"/configuration") {
				return
			}
		}
		t.Fatalf("no audit entry for the developer's change of %s: %+v", temp, log.Entries)
	})
}

type configureOutcome struct {
	DeviceID       string
	Status         string
	Error          *struct{ Code, Message string }
	DesiredVersion int64
}

func TestConfigureDevices(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	p := w.tenant.Project
	pp := "/v2/projects/" + p
	dev := w.account(p, "roles/project.developer")
	labelled := append(w.devices(p, "", 3), w.sensor(p, "touch"))
	plain := w.devices(p, "", 2)
	theirs := w.devices(w.newProject(w.tenant.Organization, "other"), "", 1)[0]
	must[map[string]any](t, 200)(dev.call("POST", pp+"/devices:batchUpdate", map[string]any{"devices": labelled, "addLabels": map[string]string{"room": "lab", "floor": "2"}}))
	configure := func(body map[string]any) map[string]configureOutcome {
		t.Helper()
		res := must[struct{ Devices []configureOutcome }](t, 200)(dev.call("POST", pp+"/devices:configure", body))
		out := map[string]configureOutcome{}
		for _, o := range res.Devices {
			out[o.DeviceID] = o
		}
		return out
	}
	state := func(d string) api.Configuration {
		c, _ := w.admin.getConfig(t, pp+"/devices/"+d+"/configuration")
		return c
	}

	t.Run("by label", func(t *testing.T) {
		got := configure(map[string]any{"desired": map[string]any{"sampleIntervalSeconds": 60}, "labelSelector": "room=lab, floor=2"})
		if len(got) != len(labelled) {
			t.Fatalf("answered %d devices, want the %d labelled: %+v", len(got), len(labelled), got)
		}
		for _, d := range labelled[:3] {
			if o := got[d]; o.Status != "PENDING" || o.DesiredVersion != 1 {
				t.Errorf("temperature sensor %s: %+v, want PENDING at version 1", d, o)
			}
			if s := state(d); s.Status != "PENDING" || s.Desired.SampleInterval != 60 {
				t.Errorf("temperature sensor %s stored %+v", d, s)
			}
		}
		// A touch sensor samples at most every 300 s.
		if o := got[labelled[3]]; o.Status != "error" || o.Error == nil || o.Error.Code != "INVALID_ARGUMENT" {
			t.Errorf("touch sensor %s: %+v, want an INVALID_ARGUMENT error", labelled[3], o)
		}
		for _, d := range append(plain, labelled[3]) {
			if s := state(d); s.DesiredVersion != 0 {
				t.Errorf("device %s outside the change was configured: %+v", d, s)
			}
		}
	})

	t.Run("by ids", func(t *testing.T) {
		got := configure(map[string]any{"desired": map[string]any{"reportIntervalSeconds": 3600},
			"deviceIds": []string{plain[0], "nosuchdevice", theirs, "projects/" + p + "/devices/" + plain[1], "bad/id"}})
		for _, d := range plain {
			if o := got[d]; o.Status != "PENDING" || o.DesiredVersion != 1 {
				t.Errorf("device %s: %+v, want PENDING at version 1", d, o)
			}
		}
		for _, d := range []string{"nosuchdevice", theirs, "bad/id"} {
			if o := got[d]; o.Status != "error" || o.Error == nil || o.Error.Code != "NOT_FOUND" {
				t.Errorf("device %s: %+v, want NOT_FOUND", d, o)
			}
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		many := make([]string, 1001)
		for i := range many {
			many[i] = "d" + strings.Repeat("x", i%5)
		}
		for _, body := range []any{
			map[string]any{"desired": map[string]any{"batchSize": 1}},
			map[string]any{"desired": map[string]any{"batchSize": 1}, "deviceIds": plain, "labelSelector": "room=lab"},
			map[string]any{"desired": map[string]any{"batchSize": 1}, "labelSelector": "room"},
			map[string]any{"desired": map[string]any{}, "deviceIds": plain},
			map[string]any{"desired": map[string]any{"batchSize": 1}, "deviceIds": many},
			`{"desired":{"batchSize":1},"deviceIds":["x"],"force":true}`,
		} {
			if code, b := dev.call("POST", pp+"/devices:configure", body); code != 400 {
				t.Errorf("devices:configure %v = %d, want 400: %s", body, code, b)
			}
		}
	})
}
