package local_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/emulators/local"
	"github.com/sealedsense/sealedsense/emulators/local/localtest"
	"github.com/sealedsense/sealedsense/emulators/oidc"
	"github.com/sealedsense/sealedsense/shared/credentials"
)

// signIn signs in to Studio through the local provider's form.
func signIn(wd *webdriver, d *local.Deployment, u oidc.User) {
	wd.t.Helper()
	wd.open(d.StudioURL() + "/")
	wd.click("#signin")
	wd.waitJS(20*time.Second, "the provider's sign-in form", `return location.pathname === arguments[0]`, oidc.LoginPath)
	wd.fill("input[name=username]", u.Email)
	wd.fill("input[name=password]", u.Password)
	wd.click("button[type=submit], input[type=submit]")
	wd.waitJS(20*time.Second, "Studio, signed in as "+u.Email, `return document.getElementById('who') && document.getElementById('who').textContent === arguments[0]`, u.Email)
}

// studioRequest sends a request to Studio with the browser's cookies.
func studioRequest(t *testing.T, d *local.Deployment, cookies map[string]browserCookie, method, path, csrf string, body any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, d.StudioURL()+path, rd)
	for _, c := range cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	if csrf != "" {
		req.Header.Set("X-CSRF-Token", csrf)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestStudio signs the demo person in to Studio in headless Chromium and
// walks its pages as facility staff would, checking each against the API;
// then a person without a role, and the session's defences.
func TestStudio(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Readings every 3 s, not the default 10 s: live values and the
	// history chart's points come sooner. (A configuration edit still waits
	// for a reading at the new interval, at least 30 s.)
	d := localtest.Start(t, local.Config{Sensors: 6, Connectors: 2, SensorTypes: []string{"temperature", "humidity", "co2"}, Interval: 3 * time.Second})
	tok := localtest.CustomerToken(t, d)
	sensors := d.Devices()
	hostile := `<img src=x onerror=alert(1)>`
	if code := localtest.APICall(t, d, tok, "POST", "/v2/projects/demo/devices/"+sensors[0]+"/labels", map[string]any{"key": "note", "value": hostile}, nil); code != 200 {
		t.Fatalf("label: %d", code)
	}
	wd := startBrowser(t)
	t.Run("a customer's page reads the stream with EventSource", func(t *testing.T) {
		defer wd.as(t)()
		browserEventSource(t, d, wd, tok)
	})
	signIn(wd, d, d.DemoUser)
	wd.screenshot("studio-projects")

	t.Run("cookies and headers", func(t *testing.T) {
		defer wd.as(t)()
		cs := wd.cookies()
		for name, httpOnly := range map[string]bool{"__Host-studio-session": true, "__Host-studio-csrf": false} {
			c, ok := cs[name]
			if !ok {
				t.Fatalf("no cookie %s; the browser holds %v", name, cs)
			}
			if !c.Secure || c.HTTPOnly != httpOnly || c.SameSite != "Strict" || c.Path != "/" {
				t.Errorf("cookie %s: %+v, want Secure, HttpOnly=%v, SameSite=Strict, Path=/", name, c, httpOnly)
			}
		}
		resp, err := http.Get(d.StudioURL() + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") || strings.Contains(csp, "*") {
			t.Errorf("Content-Security-Policy %q allows more than 'self'", csp)
		}
	})

	t.Run("a write without the CSRF token is refused", func(t *testing.T) {
		defer wd.as(t)()
		cs := wd.cookies()
		body := map[string]any{"displayName": "csrf probe"}
		for _, csrf := range []string{"", "forged"} {
			if code, b := studioRequest(t, d, cs, "POST", "/api/v2/projects/demo/serviceaccounts", csrf, body); code != 403 {
				t.Errorf("POST with CSRF token %q: %d %s, want 403", csrf, code, b)
			}
		}
		if code, b := studioRequest(t, d, cs, "POST", "/api/v2/projects/demo/serviceaccounts", cs["__Host-studio-csrf"].Value, body); code != 200 {
			t.Errorf("POST with the session's CSRF token: %d %s, want 200", code, b)
		}
		if code, _ := studioRequest(t, d, nil, "GET", "/api/v2/projects/demo/devices", "", nil); code != 401 {
			t.Errorf("the API through Studio without a session: %d, want 401", code)
		}
	})

	t.Run("devices update live", func(t *testing.T) {
		defer wd.as(t)()
		wd.open(d.StudioURL() + "/#/p/demo")
		wd.waitJS(30*time.Second, "a row per sensor", `return [...document.querySelectorAll('table.devices tbody tr')].filter(r => r.children[1].textContent !== 'ccon').length === arguments[0]`, len(sensors))
		var shown []string
		wd.eval(&shown, `return [...document.querySelectorAll('table.devices tbody tr')].map(r => r.dataset.device)`)
		for _, s := range sensors {
			if !slices.Contains(shown, s) {
				t.Errorf("sensor %s is not in the table %v", s, shown)
			}
		}
		wd.waitJS(15*time.Second, "the live stream connected", `return document.getElementById('live').textContent.startsWith('Live')`)
		var before map[string]string
		wd.eval(&before, `return Object.fromEntries([...document.querySelectorAll('table.devices tbody tr')].map(r => [r.dataset.device, r.querySelector('.value').textContent + '|' + r.querySelector('.seen').textContent]))`)
		wd.waitJS(30*time.Second, "a value changing live", `const b = arguments[0]; return [...document.querySelectorAll('table.devices tbody tr.updated')].some(r => b[r.dataset.device] !== r.querySelector('.value').textContent + '|' + r.querySelector('.seen').textContent)`, before)
		wd.screenshot("studio-devices")
	})

	t.Run("a hostile label renders as text", func(t *testing.T) {
		defer wd.as(t)()
		var got struct {
			Text   string `json:"text"`
			Images int    `json:"images"`
		}
		wd.eval(&got, `const r = document.querySelector('tr[data-device="'+arguments[0]+'"] .labels'); return {text: r ? r.textContent : '', images: document.querySelectorAll('main img').length}`, sensors[0])
		if !strings.Contains(got.Text, "note="+hostile) || got.Images != 0 {
			t.Errorf("the label cell shows %q with %d images; want the markup as text and no image", got.Text, got.Images)
		}
	})

	var temp string
	for _, s := range sensors {
		var dev struct {
			Type string `json:"type"`
		}
		localtest.APICall(t, d, tok, "GET", "/v2/projects/demo/devices/"+s, nil, &dev)
		if dev.Type == "temperature" && s != sensors[0] {
			temp = s
		}
	}
	t.Run("the history chart draws the API's history", func(t *testing.T) {
		defer wd.as(t)()
		// The page reads the history once, when it opens.
		localtest.WaitUntil(t, 60*time.Second, "three temperature readings of "+temp, func() (bool, string) {
			var h struct {
				Events []any `json:"events"`
			}
			localtest.APICall(t, d, tok, "GET", "/v2/projects/demo/devices/"+temp+"/events?eventTypes=temperature", nil, &h)
			return len(h.Events) >= 3, fmt.Sprintf("%d so far", len(h.Events))
		})
		wd.open(d.StudioURL() + "/#/p/demo/d/" + temp)
		wd.waitJS(30*time.Second, "history points", `return document.querySelectorAll('#chart circle').length >= 3`)
		var pts []struct {
			T string  `json:"t"`
			V float64 `json:"v"`
		}
		wd.eval(&pts, `return [...document.querySelectorAll('#chart circle')].map(c => ({t: c.dataset.t, v: Number(c.dataset.v)}))`)
		first, _ := time.Parse(time.RFC3339Nano, pts[0].T)
		last, _ := time.Parse(time.RFC3339Nano, pts[len(pts)-1].T)
		var hist struct {
			Events []struct {
				Timestamp time.Time `json:"timestamp"`
				Data      struct {
					Temperature struct {
						Value float64 `json:"value"`
					} `json:"temperature"`
				} `json:"data"`
			} `json:"events"`
		}
		q := url.Values{"eventTypes": {"temperature"}, "startTime": {first.Format(time.RFC3339Nano)}, "endTime": {last.Add(time.Millisecond).Format(time.RFC3339Nano)}, "pageSize": {"1000"}}
		localtest.APICall(t, d, tok, "GET", "/v2/projects/demo/devices/"+temp+"/events?"+q.Encode(), nil, &hist)
		want := map[string]float64{}
		for _, e := range hist.Events {
			want[e.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z")] = e.Data.Temperature.Value
		}
		got := map[string]float64{}
		for _, p := range pts {
			got[p.T] = p.V
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("the chart draws %d points %v;\nthe API's history over the same range has %d: %v", len(got), got, len(want), want)
		}
		wd.screenshot("studio-device")
	})

	t.Run("a configuration edit is confirmed", func(t *testing.T) {
		defer wd.as(t)()
		wd.open(d.StudioURL() + "/#/p/demo/d/" + temp)
		wd.find("#config-form")
		wd.fill("#config-form input[name=sampleIntervalSeconds]", "30")
		wd.click("#config-form button")
		wd.waitJS(90*time.Second, "the sensor's confirmation", `const s = document.getElementById('config-status'); return !!s && s.textContent.includes('IN_SYNC') && document.querySelector('td[data-reported=sampleIntervalSeconds]').textContent === '30'`)
		wd.screenshot("studio-configuration")
	})

	t.Run("claim from the inventory", func(t *testing.T) {
		defer wd.as(t)()
		dir := t.TempDir()
		out, err := d.Provision(ctx, "sensors", "-n", "1", "-out", dir)
		if err != nil {
			t.Fatal(err)
		}
		s, err := credentials.LoadSensor(strings.TrimSpace(out))
		if err != nil {
			t.Fatal(err)
		}
		wd.open(d.StudioURL() + "/#/p/demo/claim")
		wd.fill("#claim-id", s.DeviceID)
		wd.click("#main form button")
		wd.find("#claim-confirm")
		if txt := wd.text("#claim-result"); !strings.Contains(txt, s.DeviceID) {
			t.Errorf("the dry run shows %q, which does not name %s", txt, s.DeviceID)
		}
		if code := localtest.APICall(t, d, tok, "GET", "/v2/projects/demo/devices/"+s.DeviceID, nil, nil); code != 404 {
			t.Errorf("after the dry run the device answers %d in the project, want 404", code)
		}
		wd.screenshot("studio-claim")
		wd.click("#claim-confirm")
		wd.waitJS(20*time.Second, "the claim's result", `return document.getElementById('claim-result').textContent.startsWith('Claimed')`)
		if code := localtest.APICall(t, d, tok, "GET", "/v2/projects/demo/devices/"+s.DeviceID, nil, nil); code != 200 {
			t.Errorf("after claiming, the device answers %d in the project, want 200", code)
		}
	})

	t.Run("a data connector and its metrics", func(t *testing.T) {
		defer wd.as(t)()
		rx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
		t.Cleanup(rx.Close)
		wd.open(d.StudioURL() + "/#/p/demo/connectors")
		wd.fill("#connector-form input[name=displayName]", "Studio hook")
		wd.fill("#connector-form input[name=url]", rx.URL+"/in")
		wd.click("#connector-form button")
		wd.find("#signature-secret")
		if s := wd.text("#signature-secret"); len(s) < 20 {
			t.Errorf("the signature secret shown is %q", s)
		}
		wd.waitFor(60*time.Second, "deliveries in the metrics", func() bool {
			wd.click("table.connectors tr button")
			wd.find("#metrics-text")
			var n int
			wd.eval(&n, `return parseInt(document.getElementById('metrics-text').textContent, 10)`)
			return n > 0
		})
		var bars int
		wd.eval(&bars, `return document.querySelectorAll('#metrics svg rect').length`)
		if bars != 2 {
			t.Errorf("the metrics chart has %d bars, want 2", bars)
		}
		wd.screenshot("studio-connectors")
	})

	t.Run("every page is labelled and fits a phone", func(t *testing.T) {
		defer wd.as(t)()
		for _, page := range []string{"", "/d/" + temp, "/claim", "/connectors", "/people", "/audit", "/data", "/fleet"} {
			wd.open(d.StudioURL() + "/#/p/demo" + page)
			wd.waitJS(20*time.Second, "the page "+page, `return !!document.body.dataset.page && !document.querySelector('main').textContent.startsWith('Loading')`)
			var unlabelled []string
			wd.eval(&unlabelled, `return [...document.querySelectorAll('main input, main select, main button')].filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim()).map(e => e.outerHTML.slice(0, 80))`)
			if len(unlabelled) > 0 {
				t.Errorf("page %q: controls without a label a screen reader can read: %q", page, unlabelled)
			}
			if name := strings.Trim(strings.ReplaceAll(page, "/", "-"), "-"); name != "" && !strings.HasPrefix(name, "d-") {
				wd.screenshot("studio-" + name)
			}
		}
		wd.call("POST", "/session/"+wd.session+"/window/rect", map[string]any{"width": 390, "height": 844})
		defer wd.call("POST", "/session/"+wd.session+"/window/rect", map[string]any{"width": 1100, "height": 800})
		wd.open(d.StudioURL() + "/#/p/demo")
		wd.waitJS(20*time.Second, "the devices table on a phone", `return document.querySelectorAll('table.devices tbody tr').length > 0`)
		var overflow int
		wd.eval(&overflow, `return document.documentElement.scrollWidth - window.innerWidth`)
		if overflow > 1 {
			t.Errorf("on a phone-sized screen the page is %d px wider than the screen; only tables may scroll, inside their box", overflow)
		}
		wd.screenshot("studio-phone")
	})

	t.Run("by keyboard", func(t *testing.T) {
		defer wd.as(t)()
		wd.open("about:blank") // a fresh load: the focus starts at the top
		wd.open(d.StudioURL() + "/#/p/demo")
		wd.waitJS(20*time.Second, "the devices table", `return document.querySelectorAll('table.devices tbody tr').length > 0`)
		focused := func() string {
			var s string
			wd.eval(&s, `const e = document.activeElement; return e ? e.tagName + ' ' + (e.getAttribute('href') || e.id || e.textContent.trim().slice(0, 30)) : ''`)
			return s
		}
		wd.press(keyTab)
		if f := focused(); f != "A #main" {
			t.Fatalf("the first Tab focuses %q, want the skip link", f)
		}
		wd.press(keyEnter)
		if f := focused(); f != "MAIN main" {
			t.Fatalf("the skip link moved focus to %q, want the page's main", f)
		}
		var route string
		wd.eval(&route, `return location.hash`)
		if route != "#/p/demo" {
			t.Fatalf("the skip link changed the route to %q", route)
		}
		// From the page, Tab reaches a device's link; Enter opens it and
		// the focus lands on the device page.
		var path []string
		for f := focused(); !strings.HasPrefix(f, "A #/p/demo/d/"); path = append(path, f) {
			if len(path) == 40 {
				t.Fatalf("40 Tabs from the page reach no device link: %q", path)
			}
			wd.press(keyTab)
			f = focused()
		}
		wd.press(keyEnter)
		wd.waitJS(20*time.Second, "the device page, by keyboard", `return document.body.dataset.page === 'device' && document.activeElement === document.getElementById('main')`)
	})

	t.Run("a person without a role sees nothing", func(t *testing.T) {
		defer wd.as(t)()
		wd.click("#signout")
		wd.find("#signin")
		if code, _ := studioRequest(t, d, wd.cookies(), "GET", "/api/v2/projects/demo/devices", "", nil); code != 401 {
			t.Errorf("after signing out, the old cookies get %d, want 401", code)
		}
		signIn(wd, d, d.Visitor)
		wd.find("#no-projects")
		wd.open(d.StudioURL() + "/#/p/demo")
		wd.find("#error")
		var rows int
		wd.eval(&rows, `return document.querySelectorAll('table.devices tr').length`)
		if rows != 0 {
			t.Errorf("the visitor sees %d device rows", rows)
		}
		if code, b := studioRequest(t, d, wd.cookies(), "GET", "/api/v2/projects/demo/devices", "", nil); code != 403 {
			t.Errorf("the visitor's direct request: %d %s, want 403", code, b)
		}
		wd.screenshot("studio-no-role")
	})
}
