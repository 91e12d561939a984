package platform

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/storage"
)

const testBucket = "exports"

// storageFixture is the platform's storage part alone (no gcloud
// emulators): fake-gcs-server behind the gate, started by startGCS, with
// objects uploaded through the Go client as functions do.
type storageFixture struct {
	p       *Platform
	email   string
	pemKey  []byte
	objects map[string][]byte
}

func startStorage(t *testing.T) *storageFixture {
	t.Helper()
	addr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	p := &Platform{cfg: Config{DataDir: t.TempDir(), Project: "test"}, log: slog.New(slog.DiscardHandler), StorageAddr: addr}
	if err := p.startGCS(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	for _, kv := range p.Env() {
		if k, v, _ := strings.Cut(kv, "="); k == "STORAGE_EMULATOR_HOST" {
			t.Setenv(k, v)
		}
	}
	f := &storageFixture{p: p, objects: map[string][]byte{
		"report.csv":                    bytes.Repeat([]byte("id,value\n"), 40_000), // > one chunk: a resumable upload
		"dir/a b+c ü~!.txt":             []byte("odd name\n"),
		"unsigned/read-as-before.bin":   {0, 1, 2, 3},
		"other/not-the-signed-one.json": []byte("{}"),
	}}
	f.email, f.pemKey = readSignerEnv(t, p)
	f.upload(t)
	return f
}

// readSignerEnv reads the credentials file the way a local function would:
// from the path in SEALEDSENSE_URL_SIGNER.
func readSignerEnv(t *testing.T, p *Platform) (string, []byte) {
	t.Helper()
	var path string
	for _, kv := range p.Env() {
		if k, v, _ := strings.Cut(kv, "="); k == URLSignerEnv {
			path = v
		}
	}
	if path == "" || path != p.URLSigner() {
		t.Fatalf("Env has %s=%q, URLSigner() is %q", URLSignerEnv, path, p.URLSigner())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var sa serviceAccountFile
	if err := json.Unmarshal(b, &sa); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return sa.ClientEmail, []byte(sa.PrivateKey)
}

func (f *storageFixture) upload(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	c, err := storage.NewClient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Bucket(testBucket).Create(ctx, "test", nil); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	for name, data := range f.objects {
		w := c.Bucket(testBucket).Object(name).NewWriter(ctx)
		w.ChunkSize = 256 << 10
		if _, err := w.Write(data); err != nil {
			t.Fatalf("upload %s: %v", name, err)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("upload %s: %v", name, err)
		}
	}
}

func (f *storageFixture) sign(t *testing.T, object, method, email string, key []byte, expires time.Time) string {
	t.Helper()
	u, err := storage.SignedURL(testBucket, object, &storage.SignedURLOptions{
		Scheme: storage.SigningSchemeV4, Method: method, GoogleAccessID: email, PrivateKey: key,
		Expires: expires, Hostname: f.p.StorageAddr, Insecure: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func otherKeyPEM(t *testing.T) []byte {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// editQuery returns raw with f applied to its query.
func editQuery(t *testing.T, raw string, f func(q url.Values)) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	f(q)
	u.RawQuery = q.Encode()
	return u.String()
}

// waitPast sleeps until the signed URL raw has expired, plus a second.
func waitPast(t *testing.T, raw string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	start, err := time.Parse(v4DateLayout, u.Query().Get("X-Goog-Date"))
	if err != nil {
		t.Fatal(err)
	}
	secs, err := strconv.Atoi(u.Query().Get("X-Goog-Expires"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(start.Add(time.Duration(secs)*time.Second + time.Second)))
}

// TestSignedURLGate shows the local storage treating V4 signed URLs as
// Cloud Storage does: a valid one downloads, a tampered, foreign or
// expired one is refused with Cloud Storage's status and error code, and
// unsigned requests behave as before.
func TestSignedURLGate(t *testing.T) {
	f := startStorage(t)
	hour := time.Now().Add(time.Hour)
	valid := f.sign(t, "report.csv", "GET", f.email, f.pemKey, hour)
	// Signed first so that its wait overlaps the rows before it.
	expiring := f.sign(t, "report.csv", "GET", f.email, f.pemKey, time.Now().Add(2*time.Second))
	rows := []struct {
		name     string
		method   string
		url      func() string
		status   int
		code     string // the XML error code wanted, "" for success
		wantBody []byte
	}{
		{"valid URL downloads the object", "GET", func() string { return valid }, 200, "", f.objects["report.csv"]},
		{"valid URL for an odd object name", "GET", func() string {
			return f.sign(t, "dir/a b+c ü~!.txt", "GET", f.email, f.pemKey, hour)
		}, 200, "", f.objects["dir/a b+c ü~!.txt"]},
		{"unsigned XML API download works as before", "GET", func() string {
			return "http://" + f.p.StorageAddr + "/" + testBucket + "/unsigned/read-as-before.bin"
		}, 200, "", f.objects["unsigned/read-as-before.bin"]},
		{"unsigned JSON API media download works as before", "GET", func() string {
			return "http://" + f.p.StorageAddr + "/download/storage/v1/b/" + testBucket + "/o/" + url.PathEscape("unsigned/read-as-before.bin") + "?alt=media"
		}, 200, "", f.objects["unsigned/read-as-before.bin"]},
		{"X-Goog-Expires changed", "GET", func() string {
			return editQuery(t, valid, func(q url.Values) { q.Set("X-Goog-Expires", "7200") })
		}, 403, "SignatureDoesNotMatch", nil},
		{"query parameter added", "GET", func() string {
			return editQuery(t, valid, func(q url.Values) { q.Set("generation", "1") })
		}, 403, "SignatureDoesNotMatch", nil},
		{"signature altered", "GET", func() string {
			return editQuery(t, valid, func(q url.Values) {
				s := []byte(q.Get("X-Goog-Signature"))
				if s[len(s)-1] == '0' {
					s[len(s)-1] = '1'
				} else {
					s[len(s)-1] = '0'
				}
				q.Set("X-Goog-Signature", string(s))
			})
		}, 403, "SignatureDoesNotMatch", nil},
		{"another object's path", "GET", func() string {
			return strings.Replace(valid, "/report.csv?", "/other/not-the-signed-one.json?", 1)
		}, 403, "SignatureDoesNotMatch", nil},
		{"signed for GET, sent as HEAD", "HEAD", func() string { return valid }, 403, "", nil},
		{"signed by another key", "GET", func() string {
			return f.sign(t, "report.csv", "GET", f.email, otherKeyPEM(t), hour)
		}, 403, "SignatureDoesNotMatch", nil},
		{"signed by an unknown email", "GET", func() string {
			return f.sign(t, "report.csv", "GET", "someone@test.iam.gserviceaccount.com", f.pemKey, hour)
		}, 403, "SignatureDoesNotMatch", nil},
		{"unsupported algorithm", "GET", func() string {
			return editQuery(t, valid, func(q url.Values) { q.Set("X-Goog-Algorithm", "GOOG4-HMAC-SHA256") })
		}, 400, "AuthorizationQueryParametersError", nil},
		{"X-Goog-Date missing", "GET", func() string {
			return editQuery(t, valid, func(q url.Values) { q.Del("X-Goog-Date") })
		}, 400, "AuthorizationQueryParametersError", nil},
		{"expired URL", "GET", func() string { waitPast(t, expiring); return expiring }, 400, "ExpiredToken", nil},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			u := r.url()
			status, body := do(t, r.method, u)
			if status != r.status || r.code != "" && !bytes.Contains(body, []byte("<Code>"+r.code+"</Code>")) {
				t.Fatalf("%s %s\ngot %d, body:\n%s\nwant %d with code %q", r.method, u, status, body, r.status, r.code)
			}
			if r.wantBody != nil && !bytes.Equal(body, r.wantBody) {
				t.Fatalf("%s %s: got %d bytes %.60q, want %d bytes %.60q", r.method, u, len(body), body, len(r.wantBody), r.wantBody)
			}
		})
	}
}

func do(t *testing.T, method, u string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// TestSignedURLCanonicalRequest pins the canonical request to the spec's
// form, written out by hand, for the cases clients differ on: encoding of
// path and query, header whitespace and repeats, a signed payload hash.
func TestSignedURLCanonicalRequest(t *testing.T) {
	const base = "X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=a%40p.iam.gserviceaccount.com%2F20260102%2Fauto%2Fstorage%2Fgoog4_request&X-Goog-Date=20260102T030405Z&X-Goog-Expires=60&X-Goog-SignedHeaders=host"
	rows := []struct {
		name, method, target string
		header               http.Header
		signed               []string
		want                 string
	}{
		{"path segments and query encoded, signature left out", "GET",
			"/b/dir/a%20b%2Bc%20%C3%BC~%21.txt?generation=5&" + base + "&X-Goog-Signature=ab&x=a+b", nil, []string{"host"},
			"GET\n/b/dir/a%20b%2Bc%20%C3%BC~%21.txt\n" + base + "&generation=5&x=a%20b\nhost:127.0.0.1\n\nhost\nUNSIGNED-PAYLOAD"},
		{"header values trimmed, spaces collapsed, repeats joined", "PUT", "/b/o?" + base,
			http.Header{"Content-Type": {"text/csv"}, "X-Goog-Meta-K": {"  a   b ", "c"}}, []string{"content-type", "host", "x-goog-meta-k"},
			"PUT\n/b/o\n" + base + "\ncontent-type:text/csv\nhost:127.0.0.1\nx-goog-meta-k:a b,c\n\ncontent-type;host;x-goog-meta-k\nUNSIGNED-PAYLOAD"},
		{"signed payload hash replaces UNSIGNED-PAYLOAD", "PUT", "/b/o?" + base,
			http.Header{"X-Goog-Content-Sha256": {"e3b0"}}, []string{"host", "x-goog-content-sha256"},
			"PUT\n/b/o\n" + base + "\nhost:127.0.0.1\nx-goog-content-sha256:e3b0\n\nhost;x-goog-content-sha256\ne3b0"},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			req := httptest.NewRequest(r.method, "http://127.0.0.1:8684"+r.target, nil)
			req.Header = r.header
			if req.Header == nil {
				req.Header = http.Header{}
			}
			q, err := url.ParseQuery(req.URL.RawQuery)
			if err != nil {
				t.Fatal(err)
			}
			if got := canonicalRequest(req, q, r.signed, "127.0.0.1"); got != r.want {
				t.Fatalf("canonical request of %s %s\ngot:\n%s\nwant:\n%s", r.method, r.target, got, r.want)
			}
		})
	}
}

// TestSignedURLQueryParsing covers the checks made before any signature
// is computed: the query's form and the validity window.
func TestSignedURLQueryParsing(t *testing.T) {
	valid := url.Values{
		"X-Goog-Algorithm": {v4Algorithm}, "X-Goog-Credential": {"a@p.iam.gserviceaccount.com/20260102/auto/storage/goog4_request"},
		"X-Goog-Date": {"20260102T030405Z"}, "X-Goog-Expires": {"3600"}, "X-Goog-SignedHeaders": {"host"}, "X-Goog-Signature": {"00ff"},
	}
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rows := []struct {
		name string
		edit func(q url.Values)
		now  time.Time
		code string // "" when the URL is accepted
	}{
		{"valid, at its start", nil, start, ""},
		{"valid, a second before its end", nil, start.Add(time.Hour - time.Second), ""},
		{"expired, at its end", nil, start.Add(time.Hour), "ExpiredToken"},
		{"not yet valid", nil, start.Add(-time.Second), "ExpiredToken"},
		{"signature missing", func(q url.Values) { q.Del("X-Goog-Signature") }, start, "AuthorizationQueryParametersError"},
		{"parameter repeated", func(q url.Values) { q.Add("X-Goog-Date", "20260102T030405Z") }, start, "AuthorizationQueryParametersError"},
		{"other algorithm", func(q url.Values) { q.Set("X-Goog-Algorithm", "GOOG4-HMAC-SHA256") }, start, "AuthorizationQueryParametersError"},
		{"date without Z", func(q url.Values) { q.Set("X-Goog-Date", "20260102T030405") }, start, "AuthorizationQueryParametersError"},
		{"credential day not the date's", func(q url.Values) {
			q.Set("X-Goog-Credential", "a@p.iam.gserviceaccount.com/20260101/auto/storage/goog4_request")
		}, start, "AuthorizationQueryParametersError"},
		{"credential not for storage", func(q url.Values) {
			q.Set("X-Goog-Credential", "a@p.iam.gserviceaccount.com/20260102/auto/s3/goog4_request")
		}, start, "AuthorizationQueryParametersError"},
		{"expires zero", func(q url.Values) { q.Set("X-Goog-Expires", "0") }, start, "AuthorizationQueryParametersError"},
		{"expires over 7 days", func(q url.Values) { q.Set("X-Goog-Expires", "604801") }, start, "AuthorizationQueryParametersError"},
		{"expires 7 days", func(q url.Values) { q.Set("X-Goog-Expires", "604800") }, start.Add(6 * 24 * time.Hour), ""},
		{"host not signed", func(q url.Values) { q.Set("X-Goog-SignedHeaders", "content-type") }, start, "AuthorizationQueryParametersError"},
		{"signed headers unsorted", func(q url.Values) { q.Set("X-Goog-SignedHeaders", "host;content-type") }, start, "AuthorizationQueryParametersError"},
		{"signature not hex", func(q url.Values) { q.Set("X-Goog-Signature", "zz") }, start, "AuthorizationQueryParametersError"},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			q := url.Values{}
			for k, v := range valid {
				q[k] = slices.Clone(v)
			}
			if r.edit != nil {
				r.edit(q)
			}
			p, err := parseV4Query(q)
			if err == nil {
				err = p.checkWindow(r.now)
			}
			if got := errCode(err); got != r.code {
				t.Fatalf("query %s at %s: got code %q (%v), want %q", q.Encode(), r.now.Format(time.RFC3339), got, err, r.code)
			}
			if err == nil && (p.email != "a@p.iam.gserviceaccount.com" || p.scope != "20260102/auto/storage/goog4_request") {
				t.Fatalf("parsed email %q scope %q", p.email, p.scope)
			}
		})
	}
}

func errCode(err error) string {
	if err == nil {
		return ""
	}
	var e *gcsError
	if errors.As(err, &e) {
		return e.Code
	}
	return "not a gcsError: " + err.Error()
}

// TestURLSignerFile checks the credentials file: private to its owner, in
// the service-account form, and the same key again on the next run.
func TestURLSignerFile(t *testing.T) {
	dir := t.TempDir()
	first, err := loadOrCreateURLSigner(dir, "local")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(first.path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(first.path)
	var sa serviceAccountFile
	if err := json.Unmarshal(b, &sa); err != nil {
		t.Fatal(err)
	}
	t.Run("file form", func(t *testing.T) {
		if fi.Mode().Perm() != 0o600 || first.path != filepath.Join(dir, "url-signer.json") {
			t.Fatalf("%s has mode %v, want 0600 at %s", first.path, fi.Mode().Perm(), filepath.Join(dir, "url-signer.json"))
		}
		if sa.Type != "service_account" || sa.ClientEmail != "url-signer@local.iam.gserviceaccount.com" || sa.PrivateKeyID == "" ||
			!strings.HasPrefix(sa.PrivateKey, "-----BEGIN PRIVATE KEY-----") || first.key.N.BitLen() != 2048 {
			t.Fatalf("file %s:\ntype %q email %q key id %q, %d-bit key, key PEM starts %.30q", first.path, sa.Type, sa.ClientEmail, sa.PrivateKeyID, first.key.N.BitLen(), sa.PrivateKey)
		}
	})
	t.Run("next run reuses the key", func(t *testing.T) {
		again, err := loadOrCreateURLSigner(dir, "local")
		if err != nil {
			t.Fatal(err)
		}
		if !again.key.Equal(first.key) || again.email != first.email {
			t.Fatalf("second load made a new identity: email %q, want %q with the first key", again.email, first.email)
		}
	})
	t.Run("another project gets its own identity", func(t *testing.T) {
		other, err := loadOrCreateURLSigner(dir, "other")
		if err != nil {
			t.Fatal(err)
		}
		if other.email != "url-signer@other.iam.gserviceaccount.com" || other.key.Equal(first.key) {
			t.Fatalf("load for another project: email %q, same key as before %v", other.email, other.key.Equal(first.key))
		}
	})
	t.Run("a damaged file is an error, not replaced", func(t *testing.T) {
		if err := os.WriteFile(first.path, []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := loadOrCreateURLSigner(dir, "other"); err == nil {
			t.Fatal("a damaged url-signer.json was accepted")
		}
	})
}

// FuzzParseV4Query: any query string either parses into a query whose
// window and canonical form can be computed, or is refused with one of
// Cloud Storage's error codes; never a panic.
func FuzzParseV4Query(f *testing.F) {
	for _, s := range []string{
		"X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=a%40b%2F20261202%2Fauto%2Fstorage%2Fgoog4_request&X-Goog-Date=20261202T100000Z&X-Goog-Expires=3600&X-Goog-SignedHeaders=host&X-Goog-Signature=00ff",
		"X-Goog-Signature=zz",
		"X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=%2F%2F%2F%2F&X-Goog-Date=2&X-Goog-Expires=-1&X-Goog-SignedHeaders=b%3Ba&X-Goog-Signature=",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		p, err := parseV4Query(q)
		if err != nil {
			var ge *gcsError
			if !errors.As(err, &ge) || ge.Code == "" {
				t.Fatalf("refused without a Cloud Storage code: %v", err)
			}
			return
		}
		_ = p.checkWindow(time.Now())
		r, err := http.NewRequest("GET", "http://127.0.0.1:1/b/o", nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = stringToSign(p, canonicalRequest(r, q, p.signedHeaders, r.Host))
	})
}
