package api_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/store"
)

// work calls the data-rights function as Cloud Scheduler does, until the
// job at path (an API resource path) is no longer RUNNING.
func (w *world) work(c *client, path string) map[string]any {
	w.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Post(w.base+"/DataRights", "application/json", nil)
		if err != nil {
			w.t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			w.t.Fatalf("DataRights: %d %s", resp.StatusCode, b)
		}
		job := must[map[string]any](w.t, 200)(c.call("GET", path, nil))
		if job["state"] != "RUNNING" {
			return job
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("job %s still running: %v", path, job)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestDataRightsRefuseBadInput(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	p := w.tenant.Project
	for _, tc := range []struct {
		name, method, path string
		body               any
		want               int
	}{
		{"export range backwards", "POST", ":export", map[string]any{"startTime": "2026-02-01T00:00:00Z", "endTime": "2026-01-01T00:00:00Z"}, 400},
		{"export empty range", "POST", ":export", map[string]any{"startTime": "2026-01-01T00:00:00Z", "endTime": "2026-01-01T00:00:00Z"}, 400},
		{"export unknown field", "POST", ":export", map[string]any{"format": "csv"}, 400},
		{"export bad label filter", "POST", ":export", map[string]any{"labelFilters": []string{"no pair"}}, 400},
		{"export bad device id", "POST", ":export", map[string]any{"deviceIds": []string{"a/b"}}, 400},
		{"export not a time", "POST", ":export", map[string]any{"startTime": "yesterday"}, 400},
		{"erase without confirmation", "POST", ":erase", map[string]any{}, 400},
		{"erase confirming another project", "POST", ":erase", map[string]any{"confirmProject": "projects/other"}, 400},
		{"erase unknown field", "POST", ":erase", map[string]any{"confirmProject": "projects/" + p, "force": true}, 400},
		{"erase a device with a body field", "POST", "/devices/d1:erase", map[string]any{"all": true}, 400},
		{"retention under a day", "PATCH", "", map[string]any{"eventRetention": "3600s"}, 400},
		{"retention over the maximum", "PATCH", "", map[string]any{"eventRetention": "31536001s"}, 400},
		{"retention not seconds", "PATCH", "", map[string]any{"eventRetention": "30d"}, 400},
		{"retention not whole", "PATCH", "", map[string]any{"eventRetention": "86400.5s"}, 400},
		{"unknown export", "GET", "/exports/nope", nil, 404},
		{"unknown erasure", "GET", "/erasures/nope", nil, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b := w.admin.call(tc.method, "/v2/projects/"+p+tc.path, tc.body)
			if code != tc.want {
				t.Errorf("%s %s = %d, want %d: %s", tc.method, tc.path, code, tc.want, b)
			}
		})
	}
	// Nothing above started a job or changed the project.
	proj := must[map[string]any](t, 200)(w.admin.call("GET", "/v2/projects/"+p, nil))
	if proj["eventRetention"] != "2592000s" || proj["erasing"] != nil {
		t.Errorf("project after refusals: %v", proj)
	}
	if l := must[map[string]any](t, 200)(w.admin.call("GET", "/v2/projects/"+p+"/exports", nil)); len(l["exports"].([]any)) != 0 {
		t.Errorf("refused requests left exports: %v", l)
	}
}

// TestExportURLsExpire: an export's download URLs work, carry their
// signer's scope only, and stop working when they expire.
func TestExportURLsExpire(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "SEALEDSENSE_EXPORT_URL_TTL=3s")
	p := w.tenant.Project
	w.devices(p, "", 2)
	exp := must[map[string]any](t, 200)(w.admin.call("POST", "/v2/projects/"+p+":export", map[string]any{}))
	done := w.work(w.admin, "/v2/"+exp["name"].(string))
	if done["state"] != "SUCCEEDED" {
		t.Fatalf("export: %v", done)
	}
	url := done["manifestUrl"].(string)
	if code, body := get(t, url); code != 200 || !strings.Contains(body, `"devices": 2`) {
		t.Fatalf("manifest: %d %s", code, body)
	}
	// The same signature for another object is refused.
	other := strings.Replace(url, "/manifest.json", "/devices-00001.ndjson", 1)
	if code, body := get(t, other); code != 403 || !strings.Contains(body, "SignatureDoesNotMatch") {
		t.Errorf("a URL moved to another object: %d %s", code, body)
	}
	exp2, _ := time.Parse(time.RFC3339, done["urlExpireTime"].(string))
	time.Sleep(time.Until(exp2) + 1500*time.Millisecond)
	if code, body := get(t, url); code != 400 || !strings.Contains(body, "ExpiredToken") {
		t.Errorf("an expired URL: %d %s", code, body)
	}
	// A new GET signs new URLs.
	again := must[map[string]any](t, 200)(w.admin.call("GET", "/v2/"+exp["name"].(string), nil))
	if code, _ := get(t, again["manifestUrl"].(string)); code != 200 {
		t.Errorf("a fresh URL: %d", code)
	}
}

// TestRetentionAndDeviceErasure: a new retention applies to stored
// events by a job, and a device's erasure removes only its events.
func TestRetentionAndDeviceErasure(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	p := w.tenant.Project
	devs := w.devices(p, "", 2)
	ctx := context.Background()
	db := store.New(w.fs)
	stored := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
	var ids []string
	for i := range 30 {
		dev := devs[i%2]
		ids = append(ids, fmt.Sprintf("%s-%02d", dev, i))
		// Read an hour ago, stored now (storedAt is the commit's time):
		// the new expiry counts from storage.
		if err := db.CreateEventAlone(ctx, ids[i], store.Event{ProjectID: p, DeviceID: dev, EventType: "temperature",
			Timestamp: stored.Add(time.Duration(i) * time.Second), JSON: []byte(`{}`), ExpireAt: stored.Add(30 * 24 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	proj := must[map[string]any](t, 200)(w.admin.call("PATCH", "/v2/projects/"+p, map[string]any{"eventRetention": "172800s"}))
	if proj["eventRetention"] != "172800s" {
		t.Fatalf("project: %v", proj)
	}
	// The job is found by the worker; its record is the project's.
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Post(w.base+"/DataRights", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		left := 0
		for _, id := range ids {
			e, err := db.Event(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if e.StoredAt.IsZero() {
				t.Fatalf("event %s has no storedAt", id)
			}
			if !e.ExpireAt.Equal(e.StoredAt.Add(48 * time.Hour)) {
				left++
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events keep their old expiry; functions log:\n%s", left, len(ids), tail(w.logPath, 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
	er := must[map[string]any](t, 200)(w.admin.call("POST", "/v2/projects/"+p+"/devices/"+devs[0]+":erase", nil))
	done := w.work(w.admin, "/v2/"+er["name"].(string))
	if done["state"] != "SUCCEEDED" || done["counts"].(map[string]any)["events"] != float64(15) {
		t.Fatalf("device erasure: %v", done)
	}
	for dev, want := range map[string]int{devs[0]: 0, devs[1]: 15} {
		evs, err := db.ExportEvents(ctx, p, dev, time.Time{}, time.Time{}, time.Time{}, "", 100)
		if err != nil || len(evs) != want {
			t.Errorf("device %s has %d events (%v), want %d", dev, len(evs), err, want)
		}
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// tail is the last n lines of the file at path, for a failure's message.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
