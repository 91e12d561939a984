package operator_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/functions/operator"
	"github.com/sealedsense/sealedsense/shared/lazy"
	"github.com/sealedsense/sealedsense/shared/store"
)

// TestRolloutRoutes: the internal routes start a rollout, refuse a second
// one for the same devices, move it with the operator's reason and name
// (from the identity token Cloud Run verified), read it, and refuse what
// the rules do not allow with the status a client can act on.
func TestRolloutRoutes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := store.New(platformtest.Firestore(t, platformtest.ProjectID(t)))
	rel := store.Release{ID: "0123456789abcdef0123456789abcdef", Target: "ccon", Version: 2, Size: 100, ChunkSize: 64, Created: time.Now()}
	if err := db.CreateRelease(ctx, rel); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := lazy.New(func(context.Context) (*operator.Rollouts, error) {
		return &operator.Rollouts{DB: db, Now: time.Now, Log: log}, nil
	})
	srv := httptest.NewServer(operator.NewHandler(svc, log))
	defer srv.Close()
	// An identity token as Cloud Run passes it on (its signature is
	// Cloud Run's to check, before the request reaches the function).
	claims := base64.RawURLEncoding.EncodeToString([]byte(`{"email":"ops@example.com","sub":"1"}`))
	token := "eyJhbGciOiJSUzI1NiJ9." + claims + ".c2ln"
	call := func(method, path, body string) (int, operator.View, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var v operator.View
		_ = json.Unmarshal(b, &v)
		return resp.StatusCode, v, string(b)
	}
	start := `{"projectId":"p","releaseId":"` + rel.ID + `","stages":[{"percent":50,"soak":"0s","minDevices":1},{"percent":100,"soak":"1h","minDevices":1}]}`
	code, v, body := call("POST", "/rollouts", start)
	if code != http.StatusOK || v.Status != store.RolloutRunning || v.Target != "ccon" || v.Stages != 2 {
		t.Fatalf("start: %d %s", code, body)
	}
	id := v.RolloutID
	if code, _, body := call("POST", "/rollouts", start); code != http.StatusConflict {
		t.Fatalf("a second rollout for p's connectors: %d %s; want 409", code, body)
	}
	code, v, body = call("POST", "/rollouts/"+id+":pause", `{"reason":"ticket 7"}`)
	if code != http.StatusOK || v.Status != store.RolloutPaused {
		t.Fatalf("pause: %d %s", code, body)
	}
	if last := v.Steps[len(v.Steps)-1]; !strings.Contains(last.Reason, "ops@example.com") || !strings.Contains(last.Reason, "ticket 7") {
		t.Errorf("the pause's step %+v names neither the operator nor the reason", last)
	}
	if code, v, body = call("GET", "/rollouts/"+id, ""); code != http.StatusOK || v.Status != store.RolloutPaused || len(v.Steps) != 1 {
		t.Fatalf("read: %d %s", code, body)
	}
	for _, tc := range []struct {
		name, method, path, body string
		want                     int
	}{
		{"pausing a paused rollout", "POST", "/rollouts/" + id + ":pause", `{}`, http.StatusBadRequest},
		{"an unknown action", "POST", "/rollouts/" + id + ":delete", `{}`, http.StatusBadRequest},
		{"no action", "POST", "/rollouts/" + id, `{}`, http.StatusBadRequest},
		{"an unknown rollout", "GET", "/rollouts/nosuchrollout", "", http.StatusNotFound},
		{"an id that is no id", "GET", "/rollouts/..%2Fdevices", "", http.StatusBadRequest},
		{"an unknown release", "POST", "/rollouts", `{"projectId":"p","releaseId":"ffff"}`, http.StatusNotFound},
		{"a plan that does not reach 100%", "POST", "/rollouts", `{"projectId":"q","releaseId":"` + rel.ID + `","stages":[{"percent":50,"soak":"0s","minDevices":1}]}`, http.StatusBadRequest},
		{"an unknown field", "POST", "/rollouts", `{"projectId":"q","releaseId":"` + rel.ID + `","force":true}`, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, _, body := call(tc.method, tc.path, tc.body); code != tc.want {
				t.Fatalf("%d %s; want %d", code, body, tc.want)
			}
		})
	}
	if code, v, body = call("POST", "/rollouts/"+id+":abort", `{"reason":"bad build"}`); code != http.StatusOK || v.Status != store.RolloutAborted {
		t.Fatalf("abort: %d %s", code, body)
	}
}

func TestMain(m *testing.M) { platformtest.Main(m) }
