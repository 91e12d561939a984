package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"github.com/golang-jwt/jwt/v5"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/shared/token"
)

// storeEvent writes an event as ingest does, storedAt included.
func (w *world) storeEvent(project, device, typ string, n int) string {
	w.t.Helper()
	id := fmt.Sprintf("ev-%s-%d", device, n)
	ts := time.Now().UTC()
	js, _ := json.Marshal(map[string]any{"eventId": id, "targetName": "projects/" + project + "/devices/" + device, "eventType": typ,
		"data": map[string]any{typ: map[string]any{"updateTime": ts}}, "timestamp": ts})
	_, err := w.fs.Collection("events").Doc(id).Set(context.Background(), map[string]any{"projectId": project, "deviceId": device,
		"eventType": typ, "timestamp": ts, "json": js, "expireAt": ts.Add(time.Hour), "storedAt": firestore.ServerTimestamp})
	if err != nil {
		w.t.Fatal(err)
	}
	return id
}

type frame struct {
	Result *struct {
		Event struct {
			EventID   string `json:"eventId"`
			EventType string `json:"eventType"`
		} `json:"event"`
	} `json:"result"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// openStream opens an NDJSON stream and sends its frames, pings left out.
func (w *world) openStream(project, auth string) (int, <-chan frame) {
	w.t.Helper()
	req, _ := http.NewRequest("GET", w.base+"/v2/projects/"+project+"/devices:stream?ping_interval=1s", nil)
	req.Header.Set("Accept", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	frames := make(chan frame, 100)
	if resp.StatusCode != 200 {
		resp.Body.Close()
		close(frames)
		return resp.StatusCode, frames
	}
	w.t.Cleanup(func() { resp.Body.Close() })
	go func() {
		defer close(frames)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var f frame
			if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
				continue
			}
			if f.Result != nil && f.Result.Event.EventType == "ping" {
				continue
			}
			frames <- f
		}
	}()
	return 200, frames
}

func next(t *testing.T, frames <-chan frame, limit time.Duration) (frame, bool) {
	t.Helper()
	select {
	case f, ok := <-frames:
		return f, ok
	case <-time.After(limit):
		t.Fatalf("no frame within %v", limit)
		return frame{}, false
	}
}

// TestStreamAuthorization: no token, another project's user and an
// expired token are refused; a user streams until its role is removed,
// and then gets a 403 error frame within the revocation bound.
func TestStreamAuthorization(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "SEALEDSENSE_API_ACCESS_TTL=1s")
	p := w.tenant.Project
	dev := w.devices(p, "", 1)[0]
	user := w.account(p, "roles/project.user")
	other := w.account(w.newProject(w.tenant.Organization, "other"), "roles/project.user")

	signer := token.NewSigner(platformtest.KMS(t), w.keys.Signing+"/cryptoKeyVersions/1")
	iat := time.Now().Add(-2 * time.Hour)
	expired, err := signer.Sign(context.Background(), token.Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: w.base, Audience: jwt.ClaimStrings{w.base},
		IssuedAt: jwt.NewNumericDate(iat), ExpiresAt: jwt.NewNumericDate(iat.Add(time.Hour))}, Account: strings.Split(user.creds.Email, "@")[0], Key: user.creds.KeyID})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"no token", "", 401},
		{"a user of another project", "Bearer " + other.token(), 403},
		{"an expired token", "Bearer " + expired, 401},
	} {
		if code, _ := w.openStream(p, tc.auth); code != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, code, tc.want)
		}
	}

	code, frames := w.openStream(p, "Bearer "+user.token())
	if code != 200 {
		t.Fatalf("user: %d", code)
	}
	time.Sleep(time.Second) // the stream's live position is set
	want := w.storeEvent(p, dev, "touch", 1)
	if f, _ := next(t, frames, 10*time.Second); f.Result == nil || f.Result.Event.EventID != want {
		t.Fatalf("first frame %+v, want event %s", f, want)
	}
	// The role goes: within AccessTTL (1 s here) plus the stream's check
	// interval (5 s), the stream ends with a 403 frame.
	acc := strings.Split(user.creds.Email, "@")[0]
	must[map[string]any](t, 200)(w.admin.call("DELETE", "/v2/projects/"+p+"/members/"+acc, nil))
	revoked := time.Now()
	for {
		f, ok := next(t, frames, 15*time.Second)
		if !ok {
			t.Fatal("the stream ended without an error frame")
		}
		if f.Error != nil {
			if f.Error.Code != 403 {
				t.Fatalf("error frame %+v, want 403", f.Error)
			}
			t.Logf("stream ended %v after the role was removed", time.Since(revoked).Round(100*time.Millisecond))
			break
		}
	}
	// Opening and closing are in the customer's audit log. The close is
	// written once the handler has returned, after the error frame was
	// flushed, so the test waits for it rather than reading once.
	var missing []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		log := must[map[string]any](t, 200)(w.admin.call("GET", "/v2/projects/"+p+"/auditLog?pageSize=1000", nil))
		b, _ := json.Marshal(log)
		missing = missing[:0]
		for _, action := range []string{"stream.open", "stream.close", "closed=revoked"} {
			if !strings.Contains(string(b), action) {
				missing = append(missing, action)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(missing) > 0 {
		t.Errorf("10 s after the stream ended, the audit log still lacks %q", missing)
	}
}
