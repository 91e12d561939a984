package local_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"

	"github.com/sealedsense/sealedsense/emulators/local"
	"github.com/sealedsense/sealedsense/emulators/local/localtest"
)

// TestDataRightsEndToEnd exports a project with 20 live sensors and
// checks the files against Firestore and the manifest, then erases it
// while its sensors, a webhook and a stream are live, and searches every
// collection and the export bucket for what is left of it.
//
// It runs alone, before the parallel tests: its 20 sensors beside theirs
// slowed the shared emulators enough to misjudge the reply routes that
// TestEverythingOnceThroughTheBestConnector checks (42 of 163 replies off
// the strongest connector in one CI run).
func TestDataRightsEndToEnd(t *testing.T) {
	d := localtest.Start(t, local.Config{Sensors: 20, Connectors: 2, DeliverSweepEvery: 500 * time.Millisecond})
	tok := localtest.CustomerToken(t, d)
	call := func(method, path string, body any, want int) map[string]any {
		t.Helper()
		var out map[string]any
		if code := localtest.APICall(t, d, tok, method, path, body, &out); code != want {
			t.Fatalf("%s %s: %d, want %d", method, path, code, want)
		}
		return out
	}
	// Another project of the organization, with a device, a service
	// account and a data connector: the erasure must not touch it.
	org := call("GET", "/v2/projects/demo", nil, 200)["organization"].(string)
	other := strings.TrimPrefix(call("POST", "/v2/projects", map[string]any{"displayName": "other", "organization": org}, 200)["name"].(string), "projects/")
	moved := d.Devices()[0]
	call("POST", "/v2/projects/"+other+"/devices:transfer", map[string]any{"devices": []string{"projects/demo/devices/" + moved}}, 200)
	call("POST", "/v2/projects/"+other+"/serviceaccounts", map[string]any{"displayName": "kept"}, 200)
	call("POST", "/v2/projects/"+other+"/dataconnectors", map[string]any{"displayName": "kept", "httpConfig": map[string]any{"url": "http://127.0.0.1:9/kept"}}, 200)
	call("POST", "/v2/projects/demo/members", map[string]any{"roles": []string{"roles/project.user"},
		"email": call("POST", "/v2/projects/demo/serviceaccounts", map[string]any{"displayName": "reader"}, 200)["email"]}, 200)
	var hooks atomic.Int64
	rx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hooks.Add(1) }))
	defer rx.Close()
	call("POST", "/v2/projects/demo/dataconnectors", map[string]any{"displayName": "hook", "httpConfig": map[string]any{"url": rx.URL + "/in"}}, 200)
	call("POST", "/v2/projects/demo/devices:batchUpdate", map[string]any{"devices": []string{"projects/demo/devices/" + d.Devices()[1]}, "addLabels": map[string]string{"desk": "4-12"}}, 200)

	// Events stamped before end are stored long before the export reads
	// them: the export must hold exactly those.
	localtest.WaitUntil(t, 90*time.Second, "60 events in demo", func() (bool, string) {
		n := len(projectEventIDs(t, d.FS, "demo", time.Time{}))
		return n >= 60 && hooks.Load() > 0, fmt.Sprintf("%d events, %d webhooks", n, hooks.Load())
	})
	end := time.Now().Add(-2 * time.Second)
	time.Sleep(10 * time.Second)
	exp := call("POST", "/v2/projects/demo:export", map[string]any{"endTime": end}, 200)
	name := "/v2/" + exp["name"].(string)
	var done map[string]any
	localtest.WaitUntil(t, 90*time.Second, "the export done", func() (bool, string) {
		done = call("GET", name, nil, 200)
		return done["state"] == "SUCCEEDED", fmt.Sprint(done["state"], done["counts"], done["error"])
	})
	want := projectEventIDs(t, d.FS, "demo", end)
	checkExport(t, done, want)

	// The search below finds the project before its erasure.
	if before := leftovers(t, d.FS, "demo"); len(before) < 50 {
		t.Fatalf("the search finds only %d documents of demo before its erasure", len(before))
	}
	// A stream of demo, open while the erasure runs.
	final := make(chan string, 1)
	go readFinalFrame(t, d, tok, final)
	time.Sleep(2 * time.Second)
	call("POST", "/v2/projects/demo:erase", map[string]any{}, 400)
	call("POST", "/v2/projects/demo:erase", map[string]any{"confirmProject": "projects/" + other}, 400)
	er := call("POST", "/v2/projects/demo:erase", map[string]any{"confirmProject": "projects/demo"}, 200)
	call("PATCH", "/v2/projects/demo", map[string]any{"displayName": "renamed"}, 409)
	call("POST", "/v2/projects/demo:erase", map[string]any{"confirmProject": "projects/demo"}, 409)
	erasure := "/v2/" + er["name"].(string)
	localtest.WaitUntil(t, 120*time.Second, "the erasure done", func() (bool, string) {
		e := call("GET", erasure, nil, 200)
		return e["state"] == "SUCCEEDED", fmt.Sprint(e)
	})
	select {
	case f := <-final:
		if !strings.Contains(f, `"code":410`) {
			t.Errorf("the stream's final frame = %s, want a 410 error", f)
		}
	case <-time.After(30 * time.Second):
		t.Error("the stream of the erased project did not end")
	}
	// Sensors keep sending: nothing more is stored or delivered for demo.
	before := hooks.Load()
	time.Sleep(8 * time.Second)
	if n := hooks.Load(); n != before {
		t.Errorf("%d webhooks delivered after the erasure finished", n-before)
	}
	if left := leftovers(t, d.FS, "demo"); len(left) > 0 {
		t.Errorf("after the erasure, documents of demo are left:\n%s", strings.Join(left, "\n"))
	}
	checkBucketEmpty(t, d, "projects/demo/")
	// The other project is whole. Read in Firestore: the caller's own
	// account lived in demo and went with it.
	count := func(col, field, value string) int {
		docs, err := d.FS.Collection(col).Where(field, "==", value).Documents(t.Context()).GetAll()
		if err != nil {
			t.Fatal(err)
		}
		return len(docs)
	}
	if count("devices", "projectId", other) != 1 || count("serviceAccounts", "projectId", other) != 1 || count("dataConnectors", "projectId", other) != 1 {
		t.Error("the erasure touched the other project")
	}
	if len(projectEventIDs(t, d.FS, other, time.Time{})) == 0 {
		t.Error("the other project lost its events")
	}
}

// projectEventIDs lists a project's stored events stamped before end (no
// bound if zero).
func projectEventIDs(t *testing.T, fs *firestore.Client, project string, end time.Time) map[string]bool {
	t.Helper()
	q := fs.Collection("events").Where("projectId", "==", project)
	if !end.IsZero() {
		q = q.Where("timestamp", "<", end)
	}
	docs, err := q.Select().Documents(t.Context()).GetAll()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, d := range docs {
		out[d.Ref.ID] = true
	}
	return out
}

// checkExport downloads a finished export through its signed URLs and
// checks every file against the manifest, and the events against want.
func checkExport(t *testing.T, done map[string]any, want map[string]bool) {
	t.Helper()
	var manifest struct {
		Counts map[string]int64 `json:"counts"`
		Files  []struct {
			Name   string `json:"name"`
			Kind   string `json:"kind"`
			Count  int64  `json:"count"`
			SHA256 string `json:"sha256"`
		} `json:"files"`
	}
	if err := json.Unmarshal(download(t, done["manifestUrl"].(string)), &manifest); err != nil {
		t.Fatal(err)
	}
	files := done["files"].([]any)
	if len(files) != len(manifest.Files) {
		t.Fatalf("%d files answered, %d in the manifest", len(files), len(manifest.Files))
	}
	got := map[string]int{}
	counts := map[string]int64{}
	for i, f := range files {
		f := f.(map[string]any)
		body := download(t, f["url"].(string))
		sum := sha256.Sum256(body)
		m := manifest.Files[i]
		lines := bytes.Count(body, []byte("\n"))
		if hex.EncodeToString(sum[:]) != m.SHA256 || int64(lines) != m.Count || f["sha256"] != m.SHA256 {
			t.Errorf("%s: %d lines, sha256 %x; manifest says %d, %s", m.Name, lines, sum, m.Count, m.SHA256)
		}
		counts[m.Kind] += int64(lines)
		for _, secret := range []string{"wrappedSecret", "wrappedPsk", "signatureSecret", "headers", "session"} {
			if bytes.Contains(body, []byte(`"`+secret+`"`)) {
				t.Errorf("%s holds %s", m.Name, secret)
			}
		}
		if m.Kind != "events" {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var ev struct {
				EventID string `json:"eventId"`
			}
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.EventID == "" {
				t.Fatalf("%s: a line that is no event: %s", m.Name, sc.Text())
			}
			got[ev.EventID]++
		}
	}
	for k, n := range manifest.Counts {
		if counts[k] != n {
			t.Errorf("manifest counts %d %s, files hold %d", n, k, counts[k])
		}
	}
	for id, n := range got {
		if n != 1 {
			t.Errorf("event %s exported %d times", id, n)
		}
		if !want[id] {
			t.Errorf("event %s exported, not stored before the end time", id)
		}
	}
	for id := range want {
		if got[id] == 0 {
			t.Errorf("stored event %s missing from the export", id)
		}
	}
	// 19 sensors (one moved out) and the 2 Cloud Connectors' devices.
	if counts["devices"] != 21 || counts["dataConnectors"] != 1 || counts["members"] != 1 || counts["auditLog"] < 1 {
		t.Errorf("exported %v; want 21 devices, 1 data connector, 1 member and audit entries", counts)
	}
	t.Logf("exported %d events, counts %v", len(got), counts)
}

func download(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return b
}

// readFinalFrame reads demo's stream and sends its last line when it ends.
func readFinalFrame(t *testing.T, d *local.Deployment, tok string, final chan<- string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+d.FunctionsAddr+"/v2/projects/demo/devices:stream", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("stream: %v", err)
		return
	}
	defer resp.Body.Close()
	last := ""
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		last = sc.Text()
	}
	final <- last
}

// leftovers searches every document of every collection for the project:
// a projectId naming it, or a string naming projects/<project>. The
// erasure's tombstone in the audit log is the one allowed.
func leftovers(t *testing.T, fs *firestore.Client, project string) []string {
	t.Helper()
	var out []string
	cols := fs.Collections(t.Context())
	for {
		col, err := cols.Next()
		if err == iterator.Done {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		docs, err := col.Documents(t.Context()).GetAll()
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range docs {
			data := doc.Data()
			if col.ID == "auditLog" && data["action"] == "erase.done" {
				continue
			}
			if data["projectId"] == project || data["erasing"] != nil || mentions(data, "projects/"+project) || (col.ID == "projects" && doc.Ref.ID == project) {
				out = append(out, fmt.Sprintf("%s/%s: %v", col.ID, doc.Ref.ID, data))
			}
		}
	}
	return out
}

// mentions says whether any string in v names the project, exactly or
// as a resource-name prefix.
func mentions(v any, name string) bool {
	switch v := v.(type) {
	case string:
		return v == name || strings.HasPrefix(v, name+"/")
	case map[string]any:
		for _, x := range v {
			if mentions(x, name) {
				return true
			}
		}
	case []any:
		for _, x := range v {
			if mentions(x, name) {
				return true
			}
		}
	}
	return false
}

func checkBucketEmpty(t *testing.T, d *local.Deployment, prefix string) {
	t.Helper()
	gcs, err := storage.NewClient(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer gcs.Close()
	it := gcs.Bucket(d.ExportsBucket).Objects(t.Context(), &storage.Query{Prefix: prefix})
	for {
		o, err := it.Next()
		if err == iterator.Done {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Errorf("export object left: %s", o.Name)
	}
}
