package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/custody"
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
	var missing []string
	need := func(k string) string {
		v := getenv(k)
		if v == "" {
			missing = append(missing, k)
		}
		return v
	}
	project := need("GOOGLE_CLOUD_PROJECT")
	secretKey := need("SEALEDSENSE_API_SECRETS_KEY")
	signingKey := need("SEALEDSENSE_SIGNING_KEY")
	baseURL := need("SEALEDSENSE_API_BASE_URL")
	webhookSecrets := need("SEALEDSENSE_WEBHOOK_SECRETS_KEY")
	webhookSigning := need("SEALEDSENSE_WEBHOOK_SIGNING_KEY")
	if len(missing) > 0 {
		return nil, fmt.Errorf("api: %s not set", strings.Join(missing, ", "))
	}
	// The first version signs; all listed verify, so a rotation lists the
	// new version first and keeps the old one until its tokens expire.
	versions := strings.Split(getenv("SEALEDSENSE_SIGNING_KEY_VERSIONS"), ",")
	if versions[0] == "" {
		versions = []string{signingKey + "/cryptoKeyVersions/1"}
	}
	cfg := Config{BaseURL: baseURL, Domain: getenv("SEALEDSENSE_SERVICE_ACCOUNT_DOMAIN"), LocalMode: getenv("SEALEDSENSE_LOCAL_MODE") == "true"}
	if v := getenv("SEALEDSENSE_EVENT_RETENTION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("api: SEALEDSENSE_EVENT_RETENTION must be a positive duration")
		}
		cfg.EventRetention = d
	}
	// Every version of the webhook-signing key that may have certified a
	// live delivery key; a rotation lists the new one first.
	certVersions := strings.Split(getenv("SEALEDSENSE_WEBHOOK_SIGNING_KEY_VERSIONS"), ",")
	if certVersions[0] == "" {
		certVersions = []string{webhookSigning + "/cryptoKeyVersions/1"}
	}
	if v := getenv("SEALEDSENSE_API_RATE"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r <= 0 {
			return nil, fmt.Errorf("api: SEALEDSENSE_API_RATE must be a positive number of requests per second")
		}
		cfg.Rate = r
	}
	if v := getenv("SEALEDSENSE_API_ACCESS_TTL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, fmt.Errorf("api: SEALEDSENSE_API_ACCESS_TTL: %w", err)
		}
		cfg.AccessTTL = d
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
	return New(cfg, Deps{
		Firestore: fs,
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
