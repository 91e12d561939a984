package studio_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/emulators/oidc"
	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/functions/studio"
)

func TestMain(m *testing.M) { platformtest.Main(m) }

// recorder stands for the API: it answers with who it was asked to
// serve, so the test sees what Studio passes on.
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (a *recorder) ServeUser(w http.ResponseWriter, r *http.Request, email string) {
	a.mu.Lock()
	a.calls = append(a.calls, r.Method+" "+r.URL.Path+" as "+email+" cookie="+r.Header.Get("Cookie"))
	a.mu.Unlock()
	_, _ = io.WriteString(w, `{"ok":true}`)
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type fixture struct {
	t      *testing.T
	base   string // Studio's URL, ending in /studio
	idp    *oidc.Provider
	api    *recorder
	clock  *clock
	user   oidc.User
	client *http.Client
}

func start(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, api: &recorder{}, clock: &clock{t: time.Now()},
		user:   oidc.User{Email: "Facility@Acme.example", Password: "a-long-test-password", Name: "Facility"},
		client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.base = srv.URL + studio.Prefix
	var err error
	f.idp, err = oidc.Start(oidc.Config{Addr: "127.0.0.1:0", ClientID: "studio", ClientSecret: "studio-secret",
		RedirectURIs: []string{f.base + "/callback"}, Users: []oidc.User{f.user}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.idp.Close() })
	s := studio.New(studio.Config{BaseURL: f.base, Issuer: f.idp.Issuer, ClientID: "studio", ClientSecret: "studio-secret",
		Idle: 10 * time.Minute, Absolute: time.Hour},
		studio.Deps{Firestore: platformtest.Firestore(t, platformtest.ProjectID(t)), API: f.api, Now: f.clock.now})
	mux.Handle("/", s)
	return f
}

// do sends a request with the cookies given, without following redirects.
func (f *fixture) do(method, u string, cookies []*http.Cookie, hdr map[string]string, form url.Values) *http.Response {
	f.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		f.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, c := range cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// atProvider signs in at the provider's form, as the person would, and
// returns the callback URL the provider redirects to.
func (f *fixture) atProvider(authURL string) string {
	f.t.Helper()
	jar := &cookieJar{}
	u := authURL
	for range 10 {
		resp := f.do("GET", u, jar.all, nil, nil)
		jar.add(resp.Cookies())
		if resp.StatusCode != http.StatusFound {
			break
		}
		next, _ := resp.Request.URL.Parse(resp.Header.Get("Location"))
		u = next.String()
	}
	login, _ := url.Parse(u)
	if login.Path != oidc.LoginPath {
		f.t.Fatalf("the provider did not show its sign-in form: %s", u)
	}
	resp := f.do("POST", u, jar.all, nil, url.Values{"username": {f.user.Email}, "password": {f.user.Password}, "id": {login.Query().Get("authRequestID")}})
	for range 10 {
		loc := resp.Header.Get("Location")
		if strings.HasPrefix(loc, f.base+"/callback") {
			return loc
		}
		if resp.StatusCode != http.StatusFound {
			f.t.Fatalf("the provider answered %d after sign-in", resp.StatusCode)
		}
		next, _ := resp.Request.URL.Parse(loc)
		resp = f.do("GET", next.String(), jar.all, nil, nil)
	}
	f.t.Fatal("the provider never redirected back to Studio")
	return ""
}

type cookieJar struct{ all []*http.Cookie }

func (j *cookieJar) add(cs []*http.Cookie) { j.all = append(j.all, cs...) }

func cookie(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// TestSignIn: a sign-in starts with PKCE (S256), a nonce and a state
// bound to the browser; the callback is refused without that browser's
// state cookie and when replayed; it sets the session and CSRF cookies
// with the flags stated; the API is then served as the person, without
// Studio's cookies, and writes need the CSRF token; signing out ends the
// session for any copy of the cookie.
func TestSignIn(t *testing.T) {
	t.Parallel()
	f := start(t)
	resp := f.do("GET", f.base+"/login", nil, nil, nil)
	loginC := cookie(resp, "__Host-studio-login")
	auth, _ := url.Parse(resp.Header.Get("Location"))
	q := auth.Query()
	switch {
	case resp.StatusCode != http.StatusFound || !strings.HasPrefix(auth.String(), f.idp.Issuer):
		t.Fatalf("login: %d to %s, want a redirect to the provider", resp.StatusCode, auth)
	case q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) < 43 || q.Get("nonce") == "" || q.Get("state") == "":
		t.Fatalf("the authorization request lacks PKCE S256, a nonce or a state: %s", auth.RawQuery)
	case loginC == nil || !loginC.HttpOnly || !loginC.Secure || loginC.SameSite != http.SameSiteLaxMode || loginC.Value != q.Get("state"):
		t.Fatalf("login cookie %+v: want the state, HttpOnly, Secure, SameSite=Lax", loginC)
	}
	callback := f.atProvider(auth.String())

	if r := f.do("GET", callback, nil, nil, nil); r.StatusCode != http.StatusBadRequest || cookie(r, "__Host-studio-session") != nil {
		t.Errorf("a callback without the browser's state cookie: %d, want 400 and no session", r.StatusCode)
	}
	r := f.do("GET", callback, []*http.Cookie{loginC}, nil, nil)
	sess, csrf := cookie(r, "__Host-studio-session"), cookie(r, "__Host-studio-csrf")
	if r.StatusCode != 200 || sess == nil || csrf == nil {
		t.Fatalf("callback: %d, cookies %v", r.StatusCode, r.Cookies())
	}
	for _, c := range []*http.Cookie{sess, csrf} {
		if !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.HttpOnly != (c == sess) {
			t.Errorf("cookie %s: %+v, want Secure, SameSite=Strict, Path=/, HttpOnly only on the session", c.Name, c)
		}
	}
	if r := f.do("GET", callback, []*http.Cookie{loginC}, nil, nil); r.StatusCode != http.StatusUnauthorized || cookie(r, "__Host-studio-session") != nil {
		t.Errorf("the same callback again: %d, want 401 and no session", r.StatusCode)
	}

	both := []*http.Cookie{sess, csrf}
	if r := f.do("GET", f.base+"/api/v2/projects", both, nil, nil); r.StatusCode != 200 {
		t.Fatalf("API read: %d", r.StatusCode)
	}
	for _, tc := range []struct {
		name, token string
		want        int
	}{{"no token", "", 403}, {"another token", "x" + csrf.Value, 403}, {"the session's token", csrf.Value, 200}} {
		if r := f.do("POST", f.base+"/api/v2/projects/p/serviceaccounts", both, map[string]string{"X-CSRF-Token": tc.token}, nil); r.StatusCode != tc.want {
			t.Errorf("a write with %s: %d, want %d", tc.name, r.StatusCode, tc.want)
		}
	}
	f.api.mu.Lock()
	calls := strings.Join(f.api.calls, "\n")
	f.api.mu.Unlock()
	if want := "GET /v2/projects as facility@acme.example cookie=\nPOST /v2/projects/p/serviceaccounts as facility@acme.example cookie="; calls != want {
		t.Errorf("the API was asked:\n%s\nwant:\n%s", calls, want)
	}

	if r := f.do("POST", f.base+"/logout", both, nil, nil); r.StatusCode != http.StatusForbidden {
		t.Errorf("sign-out without the CSRF token: %d, want 403", r.StatusCode)
	}
	if r := f.do("POST", f.base+"/logout", both, map[string]string{"X-CSRF-Token": csrf.Value}, nil); r.StatusCode != 200 {
		t.Errorf("sign-out: %d", r.StatusCode)
	}
	if r := f.do("GET", f.base+"/api/v2/projects", both, nil, nil); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("the signed-out session's cookie: %d, want 401", r.StatusCode)
	}
}

// TestSessionTimeouts: a session ends after its idle time without use,
// and after its absolute life however busy it is.
func TestSessionTimeouts(t *testing.T) {
	t.Parallel()
	f := start(t)
	signIn := func() []*http.Cookie {
		resp := f.do("GET", f.base+"/login", nil, nil, nil)
		loginC := cookie(resp, "__Host-studio-login")
		r := f.do("GET", f.atProvider(resp.Header.Get("Location")), []*http.Cookie{loginC}, nil, nil)
		return []*http.Cookie{cookie(r, "__Host-studio-session")}
	}
	status := func(cs []*http.Cookie) int { return f.do("GET", f.base+"/session", cs, nil, nil).StatusCode }

	idle := signIn()
	f.clock.add(9 * time.Minute)
	if got := status(idle); got != 200 {
		t.Fatalf("used after 9 min: %d, want 200", got)
	}
	f.clock.add(9 * time.Minute) // 9 min since its last use
	if got := status(idle); got != 200 {
		t.Errorf("used again 9 min later: %d, want 200", got)
	}
	f.clock.add(11 * time.Minute)
	if got := status(idle); got != 401 {
		t.Errorf("used after 11 idle minutes: %d, want 401", got)
	}

	busy := signIn()
	for range 7 { // 63 minutes, never idle for long
		f.clock.add(9 * time.Minute)
		status(busy)
	}
	if got := status(busy); got != 401 {
		t.Errorf("used past its absolute hour: %d, want 401", got)
	}
}

// TestHeaders: every answer, page, asset or refusal, carries the
// security headers.
func TestHeaders(t *testing.T) {
	t.Parallel()
	f := start(t)
	for _, path := range []string{"/", "/assets/studio.js", "/session", "/api/v2/projects", "/nowhere"} {
		resp := f.do("GET", f.base+path, nil, nil, nil)
		h := resp.Header
		if !strings.HasPrefix(h.Get("Content-Security-Policy"), "default-src 'self'; script-src 'self'") ||
			h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s (%d) headers %v", path, resp.StatusCode, h)
		}
	}
	if r := f.do("GET", f.base+"/session", nil, nil, nil); r.StatusCode != 401 {
		t.Errorf("/session without a cookie: %d, want 401", r.StatusCode)
	}
}
