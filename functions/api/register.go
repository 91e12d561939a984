package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/storage"

	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/envconf"
	"github.com/sealedsense/sealedsense/shared/lazy"
	"github.com/sealedsense/sealedsense/shared/logging"
	"github.com/sealedsense/sealedsense/shared/token"
)

// Handler returns the API entry point. Its Service is built from the
// environment on first use, so a cold start that fails is retried by the
// next request rather than fixed into the instance.
func Handler() http.HandlerFunc {
	l := lazy.New(func(ctx context.Context) (*Service, error) { return FromEnv(ctx, os.Getenv) })
	return func(w http.ResponseWriter, r *http.Request) {
		svc, err := l.Get(r.Context())
		if err != nil {
			slog.Error("api: start", "error", err.Error())
			writeError(w, errUnavailable(err))
			return
		}
		svc.ServeHTTP(w, r)
	}
}

// StreamHandler returns the Stream entry point: the API, answering only
// devices:stream, deployed on its own so that its long requests get their
// own timeout, concurrency and instances.
func StreamHandler() http.HandlerFunc {
	h := Handler()
	return func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(muxPath(r.URL.Path), "/devices/:stream") {
			writeError(w, errNotFound("this service answers only devices:stream"))
			return
		}
		h(w, r)
	}
}

// FromEnv builds the Service from the process environment, as Cloud Run
// and the local functions server provide it.
func FromEnv(ctx context.Context, getenv func(string) string) (*Service, error) {
	log := logging.New(os.Stderr, slog.LevelInfo).With("function", "api")
	env := envconf.New(getenv)
	project := env.Need("GOOGLE_CLOUD_PROJECT")
	secretKey := env.Need("SEALEDSENSE_API_SECRETS_KEY")
	signingKey := env.Need("SEALEDSENSE_SIGNING_KEY")
	webhookSecrets := env.Need("SEALEDSENSE_WEBHOOK_SECRETS_KEY")
	webhookSigning := env.Need("SEALEDSENSE_WEBHOOK_SIGNING_KEY")
	cfg := Config{BaseURL: env.Need("SEALEDSENSE_API_BASE_URL"), Domain: env.Get("SEALEDSENSE_SERVICE_ACCOUNT_DOMAIN", ""),
		LocalMode: env.Get("SEALEDSENSE_LOCAL_MODE", "") == "true"}
	env.Duration("SEALEDSENSE_EVENT_RETENTION", &cfg.EventRetention)
	exportBucket := env.Need("SEALEDSENSE_EXPORT_BUCKET")
	env.Duration("SEALEDSENSE_EXPORT_URL_TTL", &cfg.ExportURLTTL)
	// Set only locally: GCP signs through IAM (exporturl.go).
	urlSigner := env.Get("SEALEDSENSE_URL_SIGNER", "")
	storageEmulator := env.Get("STORAGE_EMULATOR_HOST", "")
	eventsTopic := env.Get("SEALEDSENSE_TOPIC_EVENTS", "events")
	env.Duration("SEALEDSENSE_API_ACCESS_TTL", &cfg.AccessTTL)
	env.Float("SEALEDSENSE_API_RATE", &cfg.Rate)
	env.Float("SEALEDSENSE_EMULATOR_RATE", &cfg.EmulatorRate)
	// How long after its storedAt the stream emits an event: the commit
	// delay it must cover is Firestore's (milliseconds), or a loaded
	// emulator's (longer).
	env.Duration("SEALEDSENSE_STREAM_SETTLE_AFTER", &cfg.Stream.SettleLag)
	// The first version signs; all listed verify.
	versions := env.KeyVersions("SEALEDSENSE_SIGNING_KEY_VERSIONS", signingKey)
	// Every version that may have certified a live delivery key.
	certVersions := env.KeyVersions("SEALEDSENSE_WEBHOOK_SIGNING_KEY_VERSIONS", webhookSigning)
	if err := env.Err("api"); err != nil {
		return nil, err
	}

	fs, err := firestore.NewClient(ctx, project)
	if err != nil {
		return nil, fmt.Errorf("api: firestore: %w", err)
	}
	kc, err := custody.NewKMSClient(ctx)
	if err != nil {
		return nil, err
	}
	secrets := custody.NewWrapper(kc, secretKey)
	ps, err := pubsub.NewClient(ctx, project)
	if err != nil {
		return nil, fmt.Errorf("api: pubsub: %w", err)
	}
	gcs, err := storage.NewClient(ctx)
	if err != nil {
		return nil, fmt.Errorf("api: storage: %w", err)
	}
	exports, err := newURLSigner(gcs, exportBucket, urlSigner, storageEmulator)
	if err != nil {
		return nil, err
	}
	return New(cfg, Deps{
		Firestore: fs,
		Exports:   exports,
		Events:    ps.Publisher(eventsTopic),
		Secrets:   secrets,
		// An hour bounds how long a warm instance keeps a deleted key's
		// secret; the key itself stops working within AccessTTL.
		SecretReader:   custody.NewCache(secrets, time.Hour),
		Signer:         token.NewSigner(kc, versions[0]),
		Verifier:       token.NewKeySet(kc, versions...),
		WebhookSecrets: custody.NewWrapper(kc, webhookSecrets),
		DeliveryKeys:   token.NewKeySet(kc, certVersions...),
		Logger:         log,
	}), nil
}
