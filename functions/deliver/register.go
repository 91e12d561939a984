package deliver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/egress"
	"github.com/sealedsense/sealedsense/shared/function"
	"github.com/sealedsense/sealedsense/shared/token"
)

// Handler returns the Deliver entry point for the events topic. Its
// Service is built from the environment on first use, so that a cold
// start that fails is retried by the next message.
func Handler() func(context.Context, event.Event) error {
	return function.Events(function.Lazy(FromEnv), (*Service).Handle)
}

// SweepHandler returns the HTTP entry point Cloud Scheduler calls to run
// retries, backfills and syncs.
func SweepHandler() http.HandlerFunc {
	return function.Sweep(function.Lazy(FromEnv), (*Service).Sweep, function.Logger("deliver"), "delivery sweep failed")
}

// env is deliver's configuration as the environment gives it.
type env struct {
	cfg                    Config
	secretsKey, signingKey string // the webhook-secrets and -signing CryptoKeys
	version                string // the signing key's version that certifies
	local                  bool
	caFile                 string
}

// readEnv reads deliver's variables; st.Err says what is missing.
func readEnv(st *function.Setup) env {
	e := st.Env
	v := env{secretsKey: e.Need("SEALEDSENSE_WEBHOOK_SECRETS_KEY"), signingKey: e.Need("SEALEDSENSE_WEBHOOK_SIGNING_KEY")}
	v.cfg.Issuer = strings.TrimSuffix(e.Need("SEALEDSENSE_API_BASE_URL"), "/")
	// The first listed version certifies; the API trusts all listed.
	v.version = e.KeyVersions("SEALEDSENSE_WEBHOOK_SIGNING_KEY_VERSIONS", v.signingKey)[0]
	e.Duration("SEALEDSENSE_DELIVER_TIMEOUT", &v.cfg.Timeout)
	e.Duration("SEALEDSENSE_DELIVER_MAX_AGE", &v.cfg.MaxAge)
	e.Duration("SEALEDSENSE_DELIVER_BACKOFF_BASE", &v.cfg.BackoffBase)
	e.Duration("SEALEDSENSE_DELIVER_BACKOFF_MAX", &v.cfg.BackoffMax)
	e.Duration("SEALEDSENSE_DELIVER_DISABLE_AFTER", &v.cfg.DisableAfter)
	v.local = e.Get("SEALEDSENSE_LOCAL_MODE", "") == "true"
	if v.local {
		// Local runs may trust a test receiver's CA, so that they use
		// HTTPS end to end; the cloud never reads the variable.
		v.caFile = e.Get("SEALEDSENSE_DELIVER_CA_FILE", "")
	}
	return v
}

// dialer is the egress dialer: loopback only in local mode, and the
// local CA file's roots when one is named.
func (v env) dialer() (*egress.Dialer, error) {
	d := &egress.Dialer{AllowLoopback: v.local}
	if v.caFile == "" {
		return d, nil
	}
	pem, err := os.ReadFile(v.caFile)
	if err != nil {
		return nil, fmt.Errorf("deliver: %w", err)
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("deliver: %s holds no certificate", v.caFile)
	}
	d.TLS = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	return d, nil
}

// FromEnv builds the Service from the process environment, as Cloud Run
// and the local functions server provide it.
func FromEnv(ctx context.Context, getenv func(string) string) (*Service, error) {
	st := function.NewSetup("deliver", getenv)
	v := readEnv(st)
	if err := st.Err(); err != nil {
		return nil, err
	}
	dialer, err := v.dialer()
	if err != nil {
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
	return New(v.cfg, Deps{
		Firestore: fs,
		// An hour bounds how long a warm instance keeps a replaced secret
		// in memory; a replaced secret has a new ciphertext, so it is
		// never used after the connector's cache turns over.
		Secrets:   custody.NewCache(custody.NewWrapper(kc, v.secretsKey), time.Hour),
		Certifier: token.NewSigner(kc, v.version),
		Client:    dialer.Client(v.cfg.withDefaults().Timeout),
		Check:     func(raw string) error { _, err := dialer.CheckURL(raw); return err },
		Logger:    st.Log,
	}), nil
}
