package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/storage"
	"github.com/golang-jwt/jwt/v5"

	"github.com/sealedsense/sealedsense/emulators/platform"
	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/emulators/stack"
	"github.com/sealedsense/sealedsense/functions/api"
	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/registry"
)

func TestMain(m *testing.M) { platformtest.Main(m) }

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// localserver builds the local functions server once per test binary.
func localserver(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binPath = filepath.Join(platformtest.Platform().DataDir(), "bin", "localserver")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/sealedsense/sealedsense/functions/cmd/localserver").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build localserver: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// world is one test's GCP project with the functions server running on it,
// an organization with one project, and its organization admin.
type world struct {
	t       testing.TB
	project string // the GCP project, i.e. the Firestore database
	base    string
	keys    stack.Keys
	fs      *firestore.Client
	store   *api.Store
	reg     *registry.Registry
	tenant  api.Tenant
	admin   *client
	logPath string
	env     []string // the functions server's
	// people serves the API as Studio does, for the person a request
	// names (personAuth); started on first use.
	people string
}

func newWorld(t testing.TB, extraEnv ...string) *world {
	t.Helper()
	ctx := context.Background()
	project := platformtest.ProjectID(t)
	kc := platformtest.KMS(t)
	keys, err := stack.EnsureKMS(ctx, kc, "projects/"+project+"/locations/europe/keyRings/sealedsense")
	if err != nil {
		t.Fatal(err)
	}
	gcs, err := storage.NewClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer gcs.Close()
	if err := stack.EnsureBucket(ctx, gcs, project, stack.ExportsBucket(project)); err != nil {
		t.Fatal(err)
	}
	addr, err := platform.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	w := &world{t: t, project: project, base: "http://" + addr, keys: keys, fs: platformtest.Firestore(t, project)}
	w.logPath = filepath.Join(t.TempDir(), "functions.log")
	logf, err := os.Create(w.logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(localserver(t))
	cmd.Env = append(append(append(os.Environ(), platformtest.Platform().Env()...), keys.Env()...),
		"GOOGLE_CLOUD_PROJECT="+project, "PORT="+port, "SEALEDSENSE_API_BASE_URL="+w.base, "SEALEDSENSE_EXPORT_BUCKET="+stack.ExportsBucket(project))
	cmd.Env = append(cmd.Env, extraEnv...)
	w.env = cmd.Env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		logf.Close()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("functions server did not start; log %s", w.logPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
	w.store = api.NewStore(w.fs, custody.NewWrapper(kc, keys.APISecrets), "")
	w.reg = registry.New(w.fs, custody.NewWrapper(kc, keys.Device), nil)
	if w.tenant, err = w.store.Bootstrap(ctx, "Acme", "", "Acme main", w.base+"/oauth2/token"); err != nil {
		t.Fatal(err)
	}
	w.admin = w.client(w.tenant.Credentials)
	return w
}

// client is a customer program using the API as DT's clients do.
type client struct {
	w     *world
	creds credentials.ServiceAccount
	tok   string
}

func (w *world) client(c credentials.ServiceAccount) *client { return &client{w: w, creds: c} }

// assertion is signed exactly as DT's Python client signs it.
func (c *client) assertion(mod func(h map[string]any, cl jwt.MapClaims)) string {
	now := time.Now()
	cl := jwt.MapClaims{"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "aud": c.creds.TokenEndpoint, "iss": c.creds.Email}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, cl)
	tok.Header["kid"] = c.creds.KeyID
	secret := c.creds.Secret
	if mod != nil {
		mod(tok.Header, cl)
		if s, ok := tok.Header["secret"].(string); ok {
			secret = s
			delete(tok.Header, "secret")
		}
	}
	s, err := tok.SignedString([]byte(secret))
	if err != nil {
		c.w.t.Fatal(err)
	}
	return s
}

// exchange posts an assertion to the token endpoint.
func (c *client) exchange(assertion string) (int, map[string]any) {
	resp, err := http.PostForm(c.creds.TokenEndpoint, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {assertion}})
	if err != nil {
		c.w.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (c *client) token() string {
	if c.tok == "" {
		code, out := c.exchange(c.assertion(nil))
		if code != 200 {
			c.w.t.Fatalf("token exchange: %d %v", code, out)
		}
		c.tok = out["access_token"].(string)
	}
	return c.tok
}

// call sends an authenticated request; body is JSON-encoded unless it is
// a string, sent as is.
func (c *client) call(method, path string, body any) (int, []byte) {
	return c.w.request(method, path, "Bearer "+c.token(), body)
}

func (w *world) request(method, path, auth string, body any) (int, []byte) {
	code, b, _ := w.requestHeaders(method, path, auth, body)
	return code, b
}

func (w *world) requestHeaders(method, path, auth string, body any) (int, []byte, http.Header) {
	w.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			w.t.Fatal(err)
		}
		r = bytes.NewReader(js)
	}
	base := w.base
	email, person := strings.CutPrefix(auth, personScheme)
	if person {
		base = w.peopleBase()
	}
	req, err := http.NewRequest(method, base+path, r)
	if err != nil {
		w.t.Fatal(err)
	}
	switch {
	case person:
		req.Header.Set(personHeader, email)
	case auth != "":
		req.Header.Set("Authorization", auth)
	}
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	recordResponse(w.t, method, path, resp.StatusCode, out)
	return resp.StatusCode, out, resp.Header
}

// must asserts a status and decodes the answer.
func must[T any](t testing.TB, want int) func(int, []byte) T {
	return func(code int, b []byte) T {
		t.Helper()
		if code != want {
			t.Fatalf("status %d, want %d: %s", code, want, b)
		}
		var v T
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		return v
	}
}

// account creates a service account in project with a role (none if
// role is empty) and returns a client holding a key of it.
func (w *world) account(project, role string) *client {
	w.t.Helper()
	acc := must[map[string]any](w.t, 200)(w.admin.call("POST", "/v2/projects/"+project+"/serviceaccounts", map[string]any{"displayName": "acct " + role}))
	name := acc["name"].(string)
	creds := must[credentials.ServiceAccount](w.t, 200)(w.admin.call("POST", "/"+"v2/"+name+"/keys:createCredentialsFile", nil))
	if role != "" {
		must[map[string]any](w.t, 200)(w.admin.call("POST", "/v2/projects/"+project+"/members", map[string]any{"roles": []string{role}, "email": creds.Email}))
	}
	return w.client(creds)
}

// devices manufactures n sensors into project ("" leaves them unclaimed).
func (w *world) devices(project, kit string, n int) []string {
	w.t.Helper()
	var ids []string
	for range n {
		m, err := w.reg.Manufacture(context.Background(), registry.Spec{Type: "temperature", ProductNumber: "SS-temperature", ProjectID: project, KitID: kit, KitName: "kit " + kit}, w.keys.Device)
		if err != nil {
			w.t.Fatal(err)
		}
		ids = append(ids, m.Device.ID)
	}
	return ids
}

func (w *world) newProject(org, name string) string {
	w.t.Helper()
	p := must[map[string]any](w.t, 200)(w.admin.call("POST", "/v2/projects", map[string]any{"displayName": name, "organization": "organizations/" + org}))
	return strings.TrimPrefix(p["name"].(string), "projects/")
}

// personScheme marks an auth argument that names a person: the request
// is served as Studio serves a signed-in person's.
const (
	personScheme = "Person "
	personHeader = "X-Test-Person"
)

// personAuth is the auth argument for requests as the person with email.
func personAuth(email string) string { return personScheme + email }

// peopleBase starts, once per world, the API in this process as Studio
// runs it, built from the functions server's own environment, answering
// each request as the person its test header names.
func (w *world) peopleBase() string {
	w.t.Helper()
	if w.people != "" {
		return w.people
	}
	env := map[string]string{}
	for _, kv := range w.env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	svc, err := api.FromEnv(context.Background(), func(k string) string { return env[k] })
	if err != nil {
		w.t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		svc.ServeUser(rw, r, r.Header.Get(personHeader))
	}))
	w.t.Cleanup(srv.Close)
	w.people = srv.URL
	return w.people
}
