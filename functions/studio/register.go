package studio

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/functions/api"
	"github.com/sealedsense/sealedsense/shared/envconf"
	"github.com/sealedsense/sealedsense/shared/lazy"
	"github.com/sealedsense/sealedsense/shared/logging"
)

// Handler returns the Studio entry point. It runs the API in-process,
// from the same environment as the API function, so that what a person
// may do is decided by exactly the API's code.
func Handler() http.HandlerFunc {
	l := lazy.New(func(ctx context.Context) (*Server, error) { return FromEnv(ctx, os.Getenv) })
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := l.Get(r.Context())
		if err != nil {
			slog.Error("studio: start", "error", err.Error())
			writeJSONError(w, http.StatusServiceUnavailable, "Studio is starting: try again")
			return
		}
		s.ServeHTTP(w, r)
	}
}

// FromEnv builds the Server from the process environment.
func FromEnv(ctx context.Context, getenv func(string) string) (*Server, error) {
	log := logging.New(os.Stderr, slog.LevelInfo).With("function", "studio")
	env := envconf.New(getenv)
	project := env.Need("GOOGLE_CLOUD_PROJECT")
	// Without a client, Studio is deployed but its sign-in says it is not
	// configured: a first deployment does not need one.
	cfg := Config{BaseURL: env.Need("SEALEDSENSE_STUDIO_URL"), Issuer: env.Get("SEALEDSENSE_STUDIO_ISSUER", ""),
		ClientID: env.Get("SEALEDSENSE_STUDIO_CLIENT_ID", ""), ClientSecret: env.Get("SEALEDSENSE_STUDIO_CLIENT_SECRET", "")}
	env.Duration("SEALEDSENSE_STUDIO_IDLE", &cfg.Idle)
	env.Duration("SEALEDSENSE_STUDIO_ABSOLUTE", &cfg.Absolute)
	if err := env.Err("studio"); err != nil {
		return nil, err
	}
	svc, err := api.FromEnv(ctx, getenv)
	if err != nil {
		return nil, err
	}
	fs, err := firestore.NewClient(ctx, project)
	if err != nil {
		return nil, fmt.Errorf("studio: firestore: %w", err)
	}
	return New(cfg, Deps{Firestore: fs, API: svc, Logger: log}), nil
}
