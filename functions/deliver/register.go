package deliver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"cloud.google.com/go/firestore"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/egress"
	"github.com/sealedsense/sealedsense/shared/envconf"
	"github.com/sealedsense/sealedsense/shared/lazy"
	"github.com/sealedsense/sealedsense/shared/logging"
	"github.com/sealedsense/sealedsense/shared/token"
)

// Handler returns the Deliver entry point for the events topic. Its
// Service is built from the environment on first use, so that a cold
// start that fails is retried by the next message.
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

// SweepHandler returns the HTTP entry point Cloud Scheduler calls to run
// retries, backfills and syncs.
func SweepHandler() http.HandlerFunc {
	l := lazy.New(func(ctx context.Context) (*Service, error) { return FromEnv(ctx, os.Getenv) })
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := l.Get(r.Context())
		if err != nil {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		res, err := s.Sweep(r.Context())
		if err != nil {
			s.log.Error("delivery sweep failed", "error", err.Error())
			http.Error(w, "sweep failed", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(res)
	}
}

// FromEnv builds the Service from the process environment, as Cloud Run
// and the local functions server provide it.
func FromEnv(ctx context.Context, getenv func(string) string) (*Service, error) {
	log := logging.New(os.Stderr, slog.LevelInfo).With("function", "deliver")
	env := envconf.New(getenv)
	project := env.Need("GOOGLE_CLOUD_PROJECT")
	secretsKey := env.Need("SEALEDSENSE_WEBHOOK_SECRETS_KEY")
	signingKey := env.Need("SEALEDSENSE_WEBHOOK_SIGNING_KEY")
	cfg := Config{Issuer: strings.TrimSuffix(env.Need("SEALEDSENSE_API_BASE_URL"), "/")}
	// The first listed version certifies; the API trusts all listed.
	version := env.KeyVersions("SEALEDSENSE_WEBHOOK_SIGNING_KEY_VERSIONS", signingKey)[0]
	env.Duration("SEALEDSENSE_DELIVER_TIMEOUT", &cfg.Timeout)
	env.Duration("SEALEDSENSE_DELIVER_MAX_AGE", &cfg.MaxAge)
	env.Duration("SEALEDSENSE_DELIVER_BACKOFF_BASE", &cfg.BackoffBase)
	env.Duration("SEALEDSENSE_DELIVER_BACKOFF_MAX", &cfg.BackoffMax)
	env.Duration("SEALEDSENSE_DELIVER_DISABLE_AFTER", &cfg.DisableAfter)
	local := env.Get("SEALEDSENSE_LOCAL_MODE", "") == "true"
	caFile := ""
	if local {
		// Local runs may trust a test receiver's CA, so that they use
		// HTTPS end to end; the cloud never reads the variable.
		caFile = env.Get("SEALEDSENSE_DELIVER_CA_FILE", "")
	}
	if err := env.Err("deliver"); err != nil {
		return nil, err
	}
	dialer := &egress.Dialer{AllowLoopback: local}
	if f := caFile; f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("deliver: %w", err)
		}
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("deliver: %s holds no certificate", f)
		}
		dialer.TLS = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}

	fs, err := firestore.NewClient(ctx, project)
	if err != nil {
		return nil, fmt.Errorf("deliver: firestore: %w", err)
	}
	kc, err := custody.NewKMSClient(ctx)
	if err != nil {
		return nil, err
	}
	cfgd := cfg.withDefaults()
	return New(cfg, Deps{
		Firestore: fs,
		// An hour bounds how long a warm instance keeps a replaced secret
		// in memory; a replaced secret has a new ciphertext, so it is
		// never used after the connector's cache turns over.
		Secrets:   custody.NewCache(custody.NewWrapper(kc, secretsKey), time.Hour),
		Certifier: token.NewSigner(kc, version),
		Client:    dialer.Client(cfgd.Timeout),
		Check:     func(raw string) error { _, err := dialer.CheckURL(raw); return err },
		Logger:    log,
	}), nil
}
