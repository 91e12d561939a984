package local_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/emulators/platform"
)

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

// elementKey names an element reference in WebDriver's answers.
const elementKey = "element-6066-11e4-a52e-4f735466cecf"

// eval runs a script with arguments and decodes what it returns into v.
func (wd *webdriver) eval(v any, src string, args ...any) {
	wd.t.Helper()
	if args == nil {
		args = []any{}
	}
	raw := wd.call("POST", "/session/"+wd.session+"/execute/sync", map[string]any{"script": src, "args": args})
	if v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			wd.t.Fatalf("script %q returned %s: %v", src, raw, err)
		}
	}
}

func (wd *webdriver) open(u string) {
	wd.t.Helper()
	wd.call("POST", "/session/"+wd.session+"/url", map[string]any{"url": u})
}

// find waits up to 20 s for an element matching css and returns its
// reference.
func (wd *webdriver) find(css string) string {
	wd.t.Helper()
	var ref string
	wd.waitFor(20*time.Second, "an element "+css, func() bool {
		var found []map[string]string
		_ = json.Unmarshal(wd.call("POST", "/session/"+wd.session+"/elements", map[string]any{"using": "css selector", "value": css}), &found)
		if len(found) > 0 {
			ref = found[0][elementKey]
		}
		return ref != ""
	})
	return ref
}

func (wd *webdriver) click(css string) {
	wd.t.Helper()
	wd.call("POST", "/session/"+wd.session+"/element/"+wd.find(css)+"/click", map[string]any{})
}

// fill types text into the input css names, as a person would.
func (wd *webdriver) fill(css, text string) {
	wd.t.Helper()
	ref := wd.find(css)
	wd.call("POST", "/session/"+wd.session+"/element/"+ref+"/clear", map[string]any{})
	wd.call("POST", "/session/"+wd.session+"/element/"+ref+"/value", map[string]any{"text": text})
}

// text is the visible text of the first element css names.
func (wd *webdriver) text(css string) string {
	wd.t.Helper()
	var s string
	_ = json.Unmarshal(wd.call("GET", "/session/"+wd.session+"/element/"+wd.find(css)+"/text", nil), &s)
	return s
}

// waitFor polls cond until it holds; on a timeout it fails with what the
// page shows, and keeps a screenshot.
func (wd *webdriver) waitFor(timeout time.Duration, what string, cond func() bool) {
	wd.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			var body, at string
			wd.eval(&body, `return document.body.innerText.slice(0, 1500)`)
			wd.eval(&at, `return location.href`)
			shot := wd.screenshot("timeout-" + strings.NewReplacer(" ", "-", "/", "-", "#", "").Replace(what))
			wd.t.Fatalf("no %s within %v at %s (screenshot %s); the page shows:\n%s", what, timeout, at, shot, body)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitJS waits until a script returns true.
func (wd *webdriver) waitJS(timeout time.Duration, what, src string, args ...any) {
	wd.t.Helper()
	wd.waitFor(timeout, what, func() bool {
		var ok bool
		wd.eval(&ok, src, args...)
		return ok
	})
}

// screenshot keeps a PNG of the page among the test's artifacts.
func (wd *webdriver) screenshot(name string) string {
	wd.t.Helper()
	var png string
	if err := json.Unmarshal(wd.call("GET", "/session/"+wd.session+"/screenshot", nil), &png); err != nil {
		wd.t.Fatal(err)
	}
	b, err := base64.StdEncoding.DecodeString(png)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		wd.t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	dir := os.Getenv("SEALEDSENSE_ARTIFACTS")
	if dir == "" {
		dir = wd.t.ArtifactDir()
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		wd.t.Fatal(err)
	}
	return path
}

type browserCookie struct {
	Name     string `json:"name"`
	Value    string `json:"value"`
	Path     string `json:"path"`
	Secure   bool   `json:"secure"`
	HTTPOnly bool   `json:"httpOnly"`
	SameSite string `json:"sameSite"`
}

func (wd *webdriver) cookies() map[string]browserCookie {
	wd.t.Helper()
	var cs []browserCookie
	if err := json.Unmarshal(wd.call("GET", "/session/"+wd.session+"/cookie", nil), &cs); err != nil {
		wd.t.Fatal(err)
	}
	out := map[string]browserCookie{}
	for _, c := range cs {
		out[c.Name] = c
	}
	return out
}

// as makes the browser's failures t's, for a subtest; the returned
// function gives them back to the test before.
func (wd *webdriver) as(t *testing.T) func() {
	old := wd.t
	wd.t = t
	return func() { wd.t = old }
}

// WebDriver's codes for the keys the tests press.
const (
	keyTab   = "\uE004"
	keyEnter = "\uE007"
)

// press presses and releases a key, as a person at a keyboard would,
// wherever the focus is.
func (wd *webdriver) press(key string) {
	wd.t.Helper()
	wd.call("POST", "/session/"+wd.session+"/actions", map[string]any{"actions": []map[string]any{{
		"type": "key", "id": "keyboard",
		"actions": []map[string]any{{"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}},
	}}})
}
