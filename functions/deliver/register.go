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
	var missing []string
	need := func(k string) string {
		v := getenv(k)
		if v == "" {
			missing = append(missing, k)
		}
		return v
	}
	project := need("GOOGLE_CLOUD_PROJECT")
	secretsKey := need("SEALEDSENSE_WEBHOOK_SECRETS_KEY")
	signingKey := need("SEALEDSENSE_WEBHOOK_SIGNING_KEY")
	issuer := need("SEALEDSENSE_API_BASE_URL")
	if len(missing) > 0 {
		return nil, fmt.Errorf("deliver: %s not set", strings.Join(missing, ", "))
	}
	// The first listed version certifies; the API trusts all listed.
	version, _, _ := strings.Cut(getenv("SEALEDSENSE_WEBHOOK_SIGNING_KEY_VERSIONS"), ",")
	if version == "" {
		version = signingKey + "/cryptoKeyVersions/1"
	}
	cfg := Config{Issuer: strings.TrimSuffix(issuer, "/")}
	for k, d := range map[string]*time.Duration{
		"SEALEDSENSE_DELIVER_TIMEOUT":       &cfg.Timeout,
		"SEALEDSENSE_DELIVER_MAX_AGE":       &cfg.MaxAge,
		"SEALEDSENSE_DELIVER_BACKOFF_BASE":  &cfg.BackoffBase,
		"SEALEDSENSE_DELIVER_BACKOFF_MAX":   &cfg.BackoffMax,
		"SEALEDSENSE_DELIVER_DISABLE_AFTER": &cfg.DisableAfter,
	} {
		if v := getenv(k); v != "" {
			var err error
			if *d, err = time.ParseDuration(v); err != nil || *d <= 0 {
				return nil, fmt.Errorf("deliver: %s must be a positive duration", k)
			}
		}
	}
	dialer := &egress.Dialer{AllowLoopback: getenv("SEALEDSENSE_LOCAL_MODE") == "true"}
	// Local runs may trust a test receiver's CA, so that they use HTTPS
	// end to end.
	if f := localCA(getenv, dialer.AllowLoopback); f != "" {
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

// localCA is the test receivers' CA file, read in local mode only.
func localCA(getenv func(string) string, local bool) string {
	if !local {
		return ""
	}
	return getenv("SEALEDSENSE_DELIVER_CA_FILE")
}
