package local_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/emulators/local"
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

// browserEventSource: a customer's own page opens an EventSource to the
// stream in headless Chromium and shows the simulator's events as they
// arrive. It runs in TestStudio, on its deployment and browser.
func browserEventSource(t *testing.T, d *local.Deployment, wd *webdriver, tok string) {
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
	// The browser outlives this page: leave it, so the stream closes, and
	// cut whatever is left before the site closes.
	t.Cleanup(func() {
		defer wd.as(t)()
		wd.open("about:blank")
		site.CloseClientConnections()
		site.Close()
	})

	wd.open(site.URL)
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
	shot := wd.screenshot("browser-eventsource")
	t.Logf("the page shows %d events (%q); screenshot %s", len(shown), state, shot)
}
