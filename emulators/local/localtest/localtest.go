// Package localtest starts local deployments for tests and talks to them
// as a customer program would: the helpers the end-to-end test packages
// share.
package localtest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sealedsense/sealedsense/emulators/local"
	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/shared/credentials"
)

// Start starts a deployment of cfg on the test binary's emulators, in a
// project of the test's own, and closes it when the test ends. The
// simulator's log goes to a file whose tail a failing test prints.
// Interval defaults to 2s and the ingest window is 400ms, wider than the
// default: CI runs these next to other test binaries on two cores.
func Start(t testing.TB, cfg local.Config) *local.Deployment {
	t.Helper()
	dir := t.TempDir()
	logFile, err := os.Create(filepath.Join(dir, "simulator.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			t.Logf("last simulator log lines:\n%s", strings.Join(lines[max(0, len(lines)-30):], "\n"))
		}
	})
	cfg.Platform, cfg.Project, cfg.DataDir = platformtest.Platform(), platformtest.ProjectID(t), dir
	cfg.Logger = slog.New(slog.NewTextHandler(logFile, nil))
	cfg.Interval = cmp.Or(cfg.Interval, 2*time.Second)
	cfg.Window = cmp.Or(cfg.Window, 400*time.Millisecond)
	cfg.Seed = cmp.Or(cfg.Seed, 1)
	d, err := local.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// CustomerToken exchanges the deployment's customer service-account key
// for an access token, by the OAuth2 JWT-bearer grant.
func CustomerToken(t *testing.T, d *local.Deployment) string {
	t.Helper()
	creds, err := credentials.LoadServiceAccount(d.APICredentials())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	assertion := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "aud": creds.TokenEndpoint, "iss": creds.Email})
	assertion.Header["kid"] = creds.KeyID
	signed, err := assertion.SignedString([]byte(creds.Secret))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.PostForm(creds.TokenEndpoint, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {signed}})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("token: %d %v", resp.StatusCode, err)
	}
	return tok.AccessToken
}

// APICall sends a request with token to the deployment's API and decodes
// a successful answer into out; it returns the status and logs the body
// of a failure.
func APICall(t *testing.T, d *local.Deployment, token, method, path string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+d.FunctionsAddr+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	if resp.StatusCode >= 300 {
		t.Logf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

// WaitUntil polls cond until it holds, failing with its last reason after
// timeout.
func WaitUntil(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %v: %s", what, timeout, why)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
