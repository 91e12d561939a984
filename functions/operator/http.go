package operator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sealedsense/sealedsense/shared/function"
	"github.com/sealedsense/sealedsense/shared/lazy"
	"github.com/sealedsense/sealedsense/shared/rollout"
	"github.com/sealedsense/sealedsense/shared/store"
)

// Handler is the Operator function: the operators' internal routes.
//
//	POST /rollouts                      start: {"projectId", "releaseId", "stages": [{"percent", "soak", "minDevices"}]}
//	GET  /rollouts/{id}                 read
//	POST /rollouts/{id}:pause|resume|advance|abort   {"reason"}
//
// It is deployed without public access: Cloud Run admits only the
// operators IAM names as its invokers, having verified their identity
// token, so the caller this reads from the token is for the record only.
func Handler() http.HandlerFunc {
	log := function.Logger("operator")
	svc := function.Lazy(func(ctx context.Context, getenv func(string) string) (*Rollouts, error) {
		o, err := FromEnv(ctx, getenv)
		if o != nil {
			o.Log = log
		}
		return o, err
	})
	return NewHandler(svc, log).ServeHTTP
}

// FromEnv builds the service from the function's environment.
func FromEnv(ctx context.Context, getenv func(string) string) (*Rollouts, error) {
	setup := function.NewSetup("operator", getenv)
	if err := setup.Err(); err != nil {
		return nil, err
	}
	fs, err := setup.Firestore(ctx)
	if err != nil {
		return nil, err
	}
	return &Rollouts{DB: store.New(fs), Now: time.Now, Log: setup.Log}, nil
}

// NewHandler serves the routes over svc.
func NewHandler(svc *lazy.Value[*Rollouts], log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /rollouts", func(w http.ResponseWriter, r *http.Request) {
		var req startRequest
		if err := decode(r, &req); err != nil {
			answer(w, log, store.Rollout{}, err)
			return
		}
		plan, err := req.plan()
		if err != nil {
			answer(w, log, store.Rollout{}, err)
			return
		}
		with(w, r, svc, log, func(o *Rollouts) (store.Rollout, error) {
			return o.Start(r.Context(), req.ProjectID, req.ReleaseID, plan, caller(r))
		})
	})
	mux.HandleFunc("GET /rollouts/{id}", func(w http.ResponseWriter, r *http.Request) {
		if !validID(r.PathValue("id")) {
			answer(w, log, store.Rollout{}, fmt.Errorf("%w: rollout id %q", ErrInvalid, r.PathValue("id")))
			return
		}
		with(w, r, svc, log, func(o *Rollouts) (store.Rollout, error) { return o.DB.Rollout(r.Context(), r.PathValue("id")) })
	})
	mux.HandleFunc("POST /rollouts/{name}", func(w http.ResponseWriter, r *http.Request) {
		id, action, ok := strings.Cut(r.PathValue("name"), ":")
		if !ok || !validID(id) {
			answer(w, log, store.Rollout{}, fmt.Errorf("%w: want /rollouts/{id}:pause|resume|advance|abort", ErrInvalid))
			return
		}
		var req struct {
			Reason string `json:"reason"`
		}
		if err := decode(r, &req); err != nil {
			answer(w, log, store.Rollout{}, err)
			return
		}
		with(w, r, svc, log, func(o *Rollouts) (store.Rollout, error) {
			return o.Move(r.Context(), id, action, caller(r), req.Reason)
		})
	})
	return mux
}

type startRequest struct {
	ProjectID string `json:"projectId"`
	ReleaseID string `json:"releaseId"`
	Stages    []struct {
		Percent    float64 `json:"percent"`
		Soak       string  `json:"soak"`
		MinDevices int     `json:"minDevices"`
	} `json:"stages"`
}

// plan is the request's stages, or the default plan when it names none.
func (s startRequest) plan() (rollout.Plan, error) {
	if len(s.Stages) == 0 {
		return rollout.DefaultPlan(), nil
	}
	plan := make(rollout.Plan, len(s.Stages))
	for i, st := range s.Stages {
		soak, err := time.ParseDuration(st.Soak)
		if err != nil {
			return nil, fmt.Errorf("%w: stage %d soak %q: %v", ErrInvalid, i, st.Soak, err)
		}
		plan[i] = rollout.Stage{Percent: st.Percent, Soak: soak, MinDevices: st.MinDevices}
	}
	return plan, nil
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: body: %v", ErrInvalid, err)
	}
	return nil
}

func with(w http.ResponseWriter, r *http.Request, svc *lazy.Value[*Rollouts], log *slog.Logger, do func(*Rollouts) (store.Rollout, error)) {
	o, err := svc.Get(r.Context())
	if err != nil {
		log.Error("operator service unavailable", "error", err.Error())
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	ro, err := do(o)
	answer(w, log, ro, err)
}

// answer writes the rollout, or the error with its status.
func answer(w http.ResponseWriter, log *slog.Logger, r store.Rollout, err error) {
	status := http.StatusOK
	switch {
	case err == nil:
	case errors.Is(err, ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, store.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, store.ErrRolloutActive), errors.Is(err, store.ErrRolloutMoved):
		status = http.StatusConflict
	default:
		log.Error("operator request failed", "error", err.Error())
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err != nil {
		_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	_ = json.NewEncoder(w).Encode(ViewOf(r))
}

// caller is who the identity token Cloud Run verified was issued to, for
// the rollout's steps and the log; "unauthenticated" without one (a local
// run, where no IAM stands in front).
func caller(r *http.Request) string {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return "unauthenticated"
	}
	var claims struct {
		jwt.RegisteredClaims
		Email string `json:"email"`
	}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &claims); err != nil {
		return "unreadable-token"
	}
	if claims.Email != "" {
		return claims.Email
	}
	return claims.Subject
}

// validID reports whether id could be a rollout's: Firestore's generated
// ids are 20 letters and digits.
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
