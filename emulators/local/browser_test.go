package local_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/emulators/local"
	"github.com/sealedsense/sealedsense/emulators/local/localtest"
	"github.com/sealedsense/sealedsense/emulators/platform"
)

// page shows a project's events as they arrive, with the browser's own
// EventSource. It reaches the stream through its own origin: the page's
// server holds the service-account token and adds it, so that no token
// ever sits in the browser or in a URL.
const page = `<!doctype html>
<html><head><meta charset="utf-8"><title>SealedSense live events</title>
<style>body{font:14px sans-serif;margin:20px} li{font-family:monospace} #state{color:#555}</style></head>
<body><h1>Live events</h1><p id="state">connecting…</p><ol id="events"></ol>
<script>
const list = document.getElementById('events'), state = document.getElementById('state');
const es = new EventSource('/stream?ping_interval=2s');
es.onopen = () => { state.textContent = 'connected'; };
es.onerror = () => { state.textContent = 'reconnecting (it resumes with Last-Event-ID)'; };
es.onmessage = (m) => {
  const f = JSON.parse(m.data);
  if (!f.result || f.result.event.eventType === 'ping') return;
  const e = f.result.event, li = document.createElement('li');
  li.dataset.id = e.eventId;
  li.textContent = e.timestamp + '  ' + e.eventType.padEnd(14) + e.targetName.split('/').pop() + '  ' + JSON.stringify(e.data[e.eventType]).slice(0, 60);
  list.appendChild(li);
  state.textContent = 'connected: ' + list.children.length + ' events, last id ' + m.lastEventId;
};
</script></body></html>`

// webdriver speaks the W3C WebDriver protocol to ChromeDriver.
type webdriver struct {
	t       *testing.T
	base    string
	session string
}

func (wd *webdriver) call(method, path string, body any) json.RawMessage {
	wd.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, wd.base+path, r)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		wd.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Value json.RawMessage `json:"value"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil || resp.StatusCode != 200 {
		wd.t.Fatalf("webdriver %s %s: %d %.300s", method, path, resp.StatusCode, b)
	}
	return out.Value
}

func (wd *webdriver) script(src string, v any) {
	wd.t.Helper()
	if err := json.Unmarshal(wd.call("POST", "/session/"+wd.session+"/execute/sync", map[string]any{"script": src, "args": []any{}}), v); err != nil {
		wd.t.Fatal(err)
	}
}

// startBrowser starts ChromeDriver with Debian's headless Chromium.
func startBrowser(t *testing.T) *webdriver {
	t.Helper()
	chromium, err1 := exec.LookPath("chromium")
	driver, err2 := exec.LookPath("chromedriver")
	if err1 != nil || err2 != nil {
		t.Fatal("this test needs Debian's chromium and chromium-driver packages; scripts/test installs them")
	}
	addr, err := platform.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(driver, "--port="+port)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	wd := &webdriver{t: t, base: "http://" + addr}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(wd.base + "/status")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("chromedriver did not start: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var s struct {
		SessionID string `json:"sessionId"`
	}
	v := wd.call("POST", "/session", map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{"binary": chromium,
			"args": []string{"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,800"}},
	}}})
	if err := json.Unmarshal(v, &s); err != nil || s.SessionID == "" {
		t.Fatalf("no session: %s", v)
	}
	wd.session = s.SessionID
	t.Cleanup(func() { wd.call("DELETE", "/session/"+wd.session, nil) })
	return wd
}

// TestBrowserEventSource: a page opens an EventSource to the stream in
// headless Chromium and shows the simulator's events as they arrive.
func TestBrowserEventSource(t *testing.T) {
	t.Parallel()
	d := localtest.Start(t, local.Config{Sensors: 6, Connectors: 2})
	tok := localtest.CustomerToken(t, d)
	target, _ := url.Parse("http://" + d.FunctionsAddr)
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.URL.Path = "/v2/projects/demo/devices:stream"
			r.Out.Header.Set("Authorization", "Bearer "+tok)
		},
		FlushInterval: -1, // every frame at once
	}
	mux := http.NewServeMux()
	mux.Handle("/stream", proxy)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, page)
	})
	site := httptest.NewServer(mux)
	t.Cleanup(site.Close)

	wd := startBrowser(t)
	wd.call("POST", "/session/"+wd.session+"/url", map[string]any{"url": site.URL})
	var shown []string
	deadline := time.Now().Add(60 * time.Second)
	for len(shown) < 8 {
		if time.Now().After(deadline) {
			t.Fatalf("the page shows %d events after 60s", len(shown))
		}
		time.Sleep(500 * time.Millisecond)
		wd.script(`return Array.from(document.querySelectorAll('#events li')).map(li => li.dataset.id)`, &shown)
	}
	var state string
	wd.script(`return document.getElementById('state').textContent`, &state)

	// Every event the page shows is one the pipeline stored for the project.
	seen := map[string]bool{}
	for _, id := range shown {
		if seen[id] {
			t.Fatalf("the page shows event %s twice", id)
		}
		seen[id] = true
		snap, err := d.FS.Collection("events").Doc(id).Get(t.Context())
		if err != nil || snap.Data()["projectId"] != "demo" {
			t.Fatalf("the page shows %s, which is not a stored event of the project: %v", id, err)
		}
	}
	var png string
	if err := json.Unmarshal(wd.call("GET", "/session/"+wd.session+"/screenshot", nil), &png); err != nil {
		t.Fatal(err)
	}
	b, err := base64.StdEncoding.DecodeString(png)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	dir := os.Getenv("SEALEDSENSE_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	shot := filepath.Join(dir, "browser-eventsource.png")
	if err := os.WriteFile(shot, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("the page shows %d events (%q); screenshot %s", len(shown), state, shot)
}
