// Package function is the start-up skeleton the event-driven Cloud
// Functions share: a service built from the environment on first use, so
// that a cold start that fails (KMS or Firestore briefly unreachable) is
// retried by the next message rather than fixed into the instance; the
// CloudEvent and sweep entry points over it; the function's logger; and
// its configuration read from the environment before any client is made,
// so that the Terraform tests can list the variables a function reads
// without a cloud.
package function

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"cloud.google.com/go/firestore"
	kms "cloud.google.com/go/kms/apiv1"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/envconf"
	"github.com/sealedsense/sealedsense/shared/lazy"
	"github.com/sealedsense/sealedsense/shared/logging"
	"github.com/sealedsense/sealedsense/shared/usage"
)

// Lazy is the service build makes from the process environment, built on
// first use.
func Lazy[S any](build func(ctx context.Context, getenv func(string) string) (S, error)) *lazy.Value[S] {
	return lazy.New(func(ctx context.Context) (S, error) { return build(ctx, os.Getenv) })
}

// Events is a CloudEvent entry point that hands each event to the
// service's handle. A service that cannot be built fails the event, so
// that Pub/Sub redelivers it.
func Events[S any](svc *lazy.Value[S], handle func(S, context.Context, event.Event) error) func(context.Context, event.Event) error {
	return func(ctx context.Context, e event.Event) error {
		s, err := svc.Get(ctx)
		if err != nil {
			return err
		}
		return handle(s, ctx, e)
	}
}

// Sweep is the HTTP entry point Cloud Scheduler calls: it runs the
// service's sweep and answers its result as JSON. A failed sweep is
// logged to log as failed and answered 500; a service that cannot be
// built is answered 503.
func Sweep[S, R any](svc *lazy.Value[S], sweep func(S, context.Context) (R, error), log *slog.Logger, failed string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := svc.Get(r.Context())
		if err != nil {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		res, err := sweep(s, r.Context())
		if err != nil {
			log.Error(failed, "error", err.Error())
			http.Error(w, "sweep failed", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(res)
	}
}

// Logger is the structured logger of the function named name.
func Logger(name string) *slog.Logger {
	return logging.New(os.Stderr, slog.LevelInfo).With("function", name)
}

// Setup is a function's start: its name, its configuration as read so far,
// its logger and its Google Cloud project.
type Setup struct {
	Name    string
	Env     *envconf.Reader
	Log     *slog.Logger
	Project string // GOOGLE_CLOUD_PROJECT
}

// NewSetup starts reading the configuration of the function named name
// through getenv (os.Getenv, or a test's map).
func NewSetup(name string, getenv func(string) string) *Setup {
	env := envconf.New(getenv)
	return &Setup{Name: name, Env: env, Log: Logger(name), Project: env.Need("GOOGLE_CLOUD_PROJECT")}
}

// Err is every variable read that is missing or malformed, in one error
// naming the function; nil when all are well.
func (s *Setup) Err() error { return s.Env.Err(s.Name) }

// Firestore is a client of the project's Firestore.
func (s *Setup) Firestore(ctx context.Context) (*firestore.Client, error) {
	opts, err := usage.FirestoreOptions()
	if err != nil {
		return nil, fmt.Errorf("%s: firestore: %w", s.Name, err)
	}
	fs, err := firestore.NewClient(ctx, s.Project, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: firestore: %w", s.Name, err)
	}
	return fs, nil
}

// KMS is a Cloud KMS client.
func (s *Setup) KMS(ctx context.Context) (*kms.KeyManagementClient, error) {
	return custody.NewKMSClient(ctx)
}
