package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/envconf"
	"github.com/sealedsense/sealedsense/shared/lazy"
	"github.com/sealedsense/sealedsense/shared/logging"
	"github.com/sealedsense/sealedsense/shared/registry"
)

// Handler returns the Ingest entry point for the uplinks and connector
// status topics. Its Service is built from the environment on first use, so
// that a cold start that fails (KMS briefly unreachable) is retried by the
// next message rather than fixed into the instance.
func Handler() func(context.Context, event.Event) error {
	l := lazy.New(func(ctx context.Context) (*Service, error) { return FromEnv(ctx, os.Getenv) })
	return func(ctx context.Context, e event.Event) error {
		s, err := l.Get(ctx)
		if err != nil {
			return err
		}
		return s.Handle(ctx, e)
	}
}

// SweepHandler returns the HTTP entry point Cloud Scheduler calls to mark
// silent connectors offline.
func SweepHandler() http.HandlerFunc {
	l := lazy.New(func(ctx context.Context) (*Service, error) { return FromEnv(ctx, os.Getenv) })
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := l.Get(r.Context())
		if err != nil {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		n, err := s.Sweep(r.Context())
		if err != nil {
			s.log.Error("sweep failed", "error", err.Error())
			http.Error(w, "sweep failed", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "{\"offline\":%d}\n", n)
	}
}

// FromEnv builds the Service from the process environment, as Cloud Run
// and the local functions server provide it.
func FromEnv(ctx context.Context, getenv func(string) string) (*Service, error) {
	log := logging.New(os.Stderr, slog.LevelInfo).With("function", "ingest")
	env := envconf.New(getenv)
	project := env.Need("GOOGLE_CLOUD_PROJECT")
	deviceKey := env.Need("SEALEDSENSE_DEVICE_KEY")
	kekKey := env.Need("SEALEDSENSE_SESSION_KEK_KEY")
	var cfg Config
	env.Duration("SEALEDSENSE_INGEST_WINDOW", &cfg.Window)
	env.Duration("SEALEDSENSE_NETWORK_STATUS_EVERY", &cfg.NetworkStatusEvery)
	env.Duration("SEALEDSENSE_CONNECTOR_OFFLINE_AFTER", &cfg.OfflineAfter)
	env.Duration("SEALEDSENSE_EVENT_RETENTION", &cfg.Retention)
	cfg.StatusTopic = env.Get("SEALEDSENSE_TOPIC_STATUS", "connector-status")
	// Everything is read before any client exists, so that the Terraform
	// tests can list the variables ingest reads without a cloud.
	eventsTopic := env.Get("SEALEDSENSE_TOPIC_EVENTS", "events")
	downlinksTopic := env.Get("SEALEDSENSE_TOPIC_DOWNLINKS", "downlinks")
	if err := env.Err("ingest"); err != nil {
		return nil, err
	}

	fs, err := firestore.NewClient(ctx, project)
	if err != nil {
		return nil, fmt.Errorf("ingest: firestore: %w", err)
	}
	kc, err := custody.NewKMSClient(ctx)
	if err != nil {
		return nil, err
	}
	ps, err := pubsub.NewClient(ctx, project)
	if err != nil {
		return nil, fmt.Errorf("ingest: pubsub: %w", err)
	}
	deviceKeys := custody.NewWrapper(kc, deviceKey)
	// An hour bounds how long a disabled KMS key version keeps working in
	// a warm instance; PSKs are read once per handshake, so this is cheap.
	cache := custody.NewCache(deviceKeys, time.Hour)
	return New(cfg, Deps{
		Firestore: fs,
		Registry:  registry.New(fs, deviceKeys, cache),
		KEKReader: custody.NewCache(custody.NewWrapper(kc, kekKey), time.Hour),
		Events:    ps.Publisher(eventsTopic),
		Downlinks: ps.Publisher(downlinksTopic),
		Logger:    log,
	}), nil
}
