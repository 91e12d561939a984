package ingest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/storage"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/function"
	"github.com/sealedsense/sealedsense/shared/registry"
	"github.com/sealedsense/sealedsense/shared/release"
	"github.com/sealedsense/sealedsense/shared/usage"
)

// Handler returns the Ingest entry point for the uplinks and connector
// status topics. Its Service is built from the environment on first use, so
// that a cold start that fails (KMS briefly unreachable) is retried by the
// next message rather than fixed into the instance.
func Handler() func(context.Context, event.Event) error {
	return function.Events(function.Lazy(FromEnv), (*Service).Handle)
}

// sweepResult is the sweep's answer.
type sweepResult struct {
	Offline int `json:"offline"` // connectors marked offline
}

// SweepHandler returns the HTTP entry point Cloud Scheduler calls to mark
// silent connectors offline.
func SweepHandler() http.HandlerFunc {
	sweep := func(s *Service, ctx context.Context) (sweepResult, error) {
		n, err := s.Sweep(ctx)
		return sweepResult{Offline: n}, err
	}
	return function.Sweep(function.Lazy(FromEnv), sweep, function.Logger("ingest"), "sweep failed")
}

// FromEnv builds the Service from the process environment, as Cloud Run
// and the local functions server provide it.
func FromEnv(ctx context.Context, getenv func(string) string) (*Service, error) {
	st := function.NewSetup("ingest", getenv)
	env := st.Env
	deviceKey := env.Need("SEALEDSENSE_DEVICE_KEY")
	kekKey := env.Need("SEALEDSENSE_SESSION_KEK_KEY")
	var cfg Config
	env.Duration("SEALEDSENSE_INGEST_WINDOW", &cfg.Window)
	env.Duration("SEALEDSENSE_NETWORK_STATUS_EVERY", &cfg.NetworkStatusEvery)
	env.Duration("SEALEDSENSE_CONNECTOR_OFFLINE_AFTER", &cfg.OfflineAfter)
	env.Duration("SEALEDSENSE_CONFIG_EXPIRE_AFTER", &cfg.ConfigExpireAfter)
	env.Duration("SEALEDSENSE_CONNECTOR_OFFLINE_ALERT_AFTER", &cfg.OfflineAlertAfter)
	env.Float("SEALEDSENSE_ANOMALY_SILENT_FACTOR", &cfg.Anomaly.SilentFactor)
	env.Duration("SEALEDSENSE_ANOMALY_SILENT_FLOOR", &cfg.Anomaly.SilentFloor)
	env.Duration("SEALEDSENSE_EVENT_RETENTION", &cfg.Retention)
	env.Float("SEALEDSENSE_INGEST_HANDSHAKE_RATE", &cfg.HandshakeRate)
	env.Float("SEALEDSENSE_INGEST_UNKNOWN_RATE", &cfg.UnknownRate)
	env.Duration("SEALEDSENSE_INGEST_KEY_REFRESH_EVERY", &cfg.KeyRefresh)
	cfg.StatusTopic = env.Get("SEALEDSENSE_TOPIC_STATUS", "connector-status")
	// Everything is read before any client exists, so that the Terraform
	// tests can list the variables ingest reads without a cloud.
	eventsTopic := env.Get("SEALEDSENSE_TOPIC_EVENTS", "events")
	downlinksTopic := env.Get("SEALEDSENSE_TOPIC_DOWNLINKS", "downlinks")
	if err := st.Err(); err != nil {
		return nil, err
	}

	fs, err := st.Firestore(ctx)
	if err != nil {
		return nil, err
	}
	kc, err := st.KMS(ctx)
	if err != nil {
		return nil, err
	}
	ps, err := pubsub.NewClient(ctx, st.Project, usage.ClientOptions()...)
	if err != nil {
		return nil, fmt.Errorf("ingest: pubsub: %w", err)
	}
	gcs, err := storage.NewClient(ctx)
	if err != nil {
		return nil, fmt.Errorf("ingest: storage: %w", err)
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
		Logger:    st.Log,
		ReadObject: func(ctx context.Context, bucket, object string) ([]byte, error) {
			r, err := gcs.Bucket(bucket).Object(object).NewReader(ctx)
			if err != nil {
				return nil, err
			}
			defer r.Close()
			// A release image is at most release.MaxImage; a larger
			// object is not one.
			return io.ReadAll(io.LimitReader(r, release.MaxImage+1))
		},
	}), nil
}
