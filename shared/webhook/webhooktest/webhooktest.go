// Package webhooktest is a customer's HTTPS webhook receiver for tests: it
// records every delivery and checks its three signatures the way a
// customer would, with stock libraries only (golang-jwt, the Standard
// Webhooks library, and an ES256 key taken from the published JWKS). The
// ES256 check includes the audience: a receiver accepts only deliveries
// signed for its own data connector.
package webhooktest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/sealedsense/sealedsense/shared/token"
	"github.com/sealedsense/sealedsense/shared/webhook"
)

// Schemes checked on every delivery.
var schemes = []string{"dt", "standard", "es256"}

// Check verifies a delivery's three signatures for the receiver of the
// data connector named connector (projects/{p}/dataconnectors/{id}); a
// nil map entry is a pass.
func Check(h http.Header, body, secret, jwks []byte, connector string) map[string]error {
	out := map[string]error{}
	// DT: verify the JWT with the secret, then compare its checksum.
	var dt jwt.MapClaims
	_, err := jwt.ParseWithClaims(h.Get("x-dt-signature"), &dt, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err == nil {
		sum := sha256.Sum256(body)
		if dt["checksum_sha256"] != hex.EncodeToString(sum[:]) {
			err = errors.New("checksum_sha256 does not match the body")
		} else if _, ok := dt["jti"].(string); !ok {
			err = errors.New("no jti")
		}
	}
	out["dt"] = err
	wh, err := standardwebhooks.NewWebhookRaw(secret)
	if err == nil {
		err = wh.Verify(body, h)
	}
	out["standard"] = err
	var set token.JWKSet
	if err := json.Unmarshal(jwks, &set); err != nil {
		out["es256"] = err
		return out
	}
	out["es256"] = checkES256(h, body, set, connector)
	return out
}

// checkES256 verifies the ES256 header with a key of the JWKS, and that it
// was signed for this receiver's connector (aud) and the body.
func checkES256(h http.Header, body []byte, set token.JWKSet, connector string) error {
	if connector == "" {
		return errors.New("the receiver knows no connector name to check aud against")
	}
	var es webhook.Claims
	_, err := jwt.ParseWithClaims(h.Get(webhook.HeaderES256), &es, func(t *jwt.Token) (any, error) {
		for _, k := range set.Keys {
			if k.Kid == t.Header["kid"] {
				x, _ := base64.RawURLEncoding.DecodeString(k.X)
				y, _ := base64.RawURLEncoding.DecodeString(k.Y)
				return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
			}
		}
		return nil, errors.New("unknown kid")
	}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithExpirationRequired(), jwt.WithAudience(connector))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	if es.BodySHA256 != base64.RawURLEncoding.EncodeToString(sum[:]) {
		return errors.New("body_sha256 does not match the body")
	}
	if es.Project != webhook.ConnectorProject(connector) {
		return errors.New("project does not match the connector")
	}
	return nil
}

// Delivery is one request the receiver got.
type Delivery struct {
	ID     string // webhook-id: the event id
	At     time.Time
	Body   []byte
	Header http.Header
	// Err is the first signature that failed, nil when all three passed.
	Err error
	// Status is what the receiver answered.
	Status int
}

// Receiver is an HTTPS endpoint answering Status (200 by default).
type Receiver struct {
	URL    string
	srv    *httptest.Server
	secret []byte
	name   string // the data connector's resource name, set with SetConnector
	jwks   func() ([]byte, error)
	status atomic.Int32

	mu     sync.Mutex
	cached []byte
	got    []Delivery
}

// New starts a receiver for deliveries signed with secret whose ES256
// keys are in the JWKS that jwks fetches. Like a real receiver, it keeps
// the JWKS and fetches it again when it meets an unknown kid.
func New(t testing.TB, secret []byte, jwks func() ([]byte, error)) *Receiver {
	r := &Receiver{secret: secret, jwks: jwks}
	r.status.Store(http.StatusOK)
	r.srv = httptest.NewTLSServer(http.HandlerFunc(r.serve))
	r.URL = r.srv.URL
	t.Cleanup(r.srv.Close)
	return r
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	d := Delivery{ID: req.Header.Get("webhook-id"), At: time.Now(), Body: body, Header: req.Header.Clone()}
	d.Err = r.verify(req.Header, body)
	d.Status = int(r.status.Load())
	r.mu.Lock()
	r.got = append(r.got, d)
	r.mu.Unlock()
	w.WriteHeader(d.Status)
}

func (r *Receiver) verify(h http.Header, body []byte) error {
	for try := 0; try < 2; try++ {
		r.mu.Lock()
		jwks := r.cached
		r.mu.Unlock()
		if jwks == nil || try == 1 {
			var err error
			if jwks, err = r.jwks(); err != nil {
				return err
			}
			r.mu.Lock()
			r.cached = jwks
			r.mu.Unlock()
		}
		r.mu.Lock()
		secret, name := r.secret, r.name
		r.mu.Unlock()
		errs := Check(h, body, secret, jwks, name)
		var first error
		for _, s := range schemes {
			if errs[s] != nil && first == nil {
				first = errors.New(s + ": " + errs[s].Error())
			}
		}
		if first == nil || try == 1 {
			return first
		}
	}
	return nil
}

// CloseClientConnections drops the kept-alive connections, so the next
// delivery dials again.
func (r *Receiver) CloseClientConnections() { r.srv.CloseClientConnections() }

// SetSecret changes the secret deliveries are checked with, for a
// connector whose secret the API generated.
func (r *Receiver) SetSecret(secret []byte) {
	r.mu.Lock()
	r.secret = secret
	r.mu.Unlock()
}

// SetConnector names the data connector this receiver is the endpoint
// of (projects/{p}/dataconnectors/{id}): deliveries whose ES256 header
// names another are refused. Until it is set, every delivery is.
func (r *Receiver) SetConnector(name string) {
	r.mu.Lock()
	r.name = name
	r.mu.Unlock()
}

// SetStatus makes the receiver answer code from now on.
func (r *Receiver) SetStatus(code int) { r.status.Store(int32(code)) }

// Deliveries returns what arrived so far, in order.
func (r *Receiver) Deliveries() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Delivery(nil), r.got...)
}

// Certificate is the receiver's self-signed TLS certificate, for a
// client's trusted roots.
func (r *Receiver) Certificate() *x509.Certificate { return r.srv.Certificate() }

// CAFile writes the receivers' certificates as PEM, for a process that
// must trust them (SEALEDSENSE_DELIVER_CA_FILE).
func CAFile(t testing.TB, rs ...*Receiver) string {
	f := filepath.Join(t.TempDir(), "receivers-ca.pem")
	var b []byte
	for _, r := range rs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.srv.Certificate().Raw})...)
	}
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}
