package function_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/sealedsense/sealedsense/shared/function"
	"github.com/sealedsense/sealedsense/shared/lazy"
)

type service struct {
	events []string
	swept  int
	err    error
}

func (s *service) handle(_ context.Context, e event.Event) error {
	s.events = append(s.events, e.ID())
	return s.err
}

func (s *service) sweep(context.Context) (map[string]int, error) {
	s.swept++
	return map[string]int{"offline": s.swept}, s.err
}

// builder fails its first fails builds, then builds svc.
func builder(svc *service, fails int) *lazy.Value[*service] {
	return lazy.New(func(context.Context) (*service, error) {
		if fails > 0 {
			fails--
			return nil, errors.New("kms unreachable")
		}
		return svc, nil
	})
}

func TestEvents(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		fails   int
		handled error
		wantErr bool
		want    int // events handed to the service
	}{
		{"handled", 0, nil, false, 1},
		{"handler fails", 0, errors.New("firestore down"), true, 1},
		{"cold start fails", 1, nil, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := &service{err: tc.handled}
			h := function.Events(builder(svc, tc.fails), (*service).handle)
			e := event.New()
			e.SetID("m1")
			if err := h(context.Background(), e); (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if len(svc.events) != tc.want {
				t.Fatalf("%d events handled, want %d", len(svc.events), tc.want)
			}
		})
	}
	t.Run("a failed cold start is retried", func(t *testing.T) {
		svc := &service{}
		h := function.Events(builder(svc, 1), (*service).handle)
		if err := h(context.Background(), event.New()); err == nil {
			t.Fatal("first build should fail")
		}
		if err := h(context.Background(), event.New()); err != nil || len(svc.events) != 1 {
			t.Fatalf("second event: %v, %d handled", err, len(svc.events))
		}
	})
}

func TestSweep(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		fails     int
		err       error
		code      int
		body      string
		logged    bool
		wantCType string
	}{
		{"swept", 0, nil, 200, "{\"offline\":1}\n", false, "application/json"},
		{"sweep fails", 0, errors.New("firestore down"), 500, "sweep failed\n", true, "text/plain; charset=utf-8"},
		{"cold start fails", 1, nil, 503, "unavailable\n", false, "text/plain; charset=utf-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs strings.Builder
			log := slog.New(slog.NewJSONHandler(&logs, nil))
			h := function.Sweep(builder(&service{err: tc.err}, tc.fails), (*service).sweep, log, "the sweep failed")
			rec := httptest.NewRecorder()
			h(rec, httptest.NewRequest(http.MethodPost, "/Sweep", nil))
			if rec.Code != tc.code || rec.Body.String() != tc.body || rec.Header().Get("Content-Type") != tc.wantCType {
				t.Fatalf("%d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
			}
			if got := strings.Contains(logs.String(), `"msg":"the sweep failed"`) && strings.Contains(logs.String(), "firestore down"); got != tc.logged {
				t.Fatalf("logged = %v: %s", got, logs.String())
			}
		})
	}
}

func TestSetupCollectsEveryProblem(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string // "" for no error
	}{
		{"all set", map[string]string{"GOOGLE_CLOUD_PROJECT": "p", "KEY": "k"}, ""},
		{"none set", map[string]string{}, "fn: GOOGLE_CLOUD_PROJECT is not set; KEY is not set"},
		{"key missing", map[string]string{"GOOGLE_CLOUD_PROJECT": "p"}, "fn: KEY is not set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := function.NewSetup("fn", func(k string) string { return tc.env[k] })
			st.Env.Need("KEY")
			err := st.Err()
			if (tc.want == "") != (err == nil) || (err != nil && err.Error() != tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if st.Project != tc.env["GOOGLE_CLOUD_PROJECT"] {
				t.Fatalf("project %q", st.Project)
			}
		})
	}
}
