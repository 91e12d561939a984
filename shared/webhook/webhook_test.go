package webhook_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/sealedsense/sealedsense/shared/token"
	"github.com/sealedsense/sealedsense/shared/webhook"
)

// receiver checks a delivery the way a customer would, with stock
// libraries only: golang-jwt with the secret for X-Dt-Signature, the
// Standard Webhooks library, and golang-jwt with a key taken from the JWKS.
type receiver struct {
	secret []byte
	jwks   []byte
}

func (rc receiver) check(h http.Header, body []byte) map[string]error {
	out := map[string]error{}
	// DT: verify the JWT, then compare its checksum with the body.
	var dt jwt.MapClaims
	_, err := jwt.ParseWithClaims(h.Get("x-dt-signature"), &dt, func(*jwt.Token) (any, error) { return rc.secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
	if err == nil {
		sum := sha256.Sum256(body)
		if dt["checksum_sha256"] != hex.EncodeToString(sum[:]) {
			err = errors.New("checksum_sha256 does not match the body")
		}
	}
	out["dt"] = err
	wh, _ := standardwebhooks.NewWebhookRaw(rc.secret)
	out["standard"] = wh.Verify(body, h)
	var set token.JWKSet
	if err := json.Unmarshal(rc.jwks, &set); err != nil {
		out["es256"] = err
		return out
	}
	var es webhook.Claims
	_, err = jwt.ParseWithClaims(h.Get(webhook.HeaderES256), &es, func(t *jwt.Token) (any, error) {
		for _, k := range set.Keys {
			if k.Kid == t.Header["kid"] {
				x, _ := base64.RawURLEncoding.DecodeString(k.X)
				y, _ := base64.RawURLEncoding.DecodeString(k.Y)
				return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
			}
		}
		return nil, errors.New("unknown kid")
	}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithExpirationRequired())
	if err == nil {
		sum := sha256.Sum256(body)
		if es.BodySHA256 != base64.RawURLEncoding.EncodeToString(sum[:]) {
			err = errors.New("body_sha256 does not match the body")
		}
	}
	out["es256"] = err
	return out
}

func TestSignaturesVerifyWithStockLibraries(t *testing.T) {
	t.Parallel()
	secret := []byte("customer-chosen signature secret")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, err := token.PublicJWK("delivery-1", &key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(token.JWKSet{Keys: []token.JWK{pub}})
	s := webhook.Signer{Secret: secret, Key: key, KeyID: "delivery-1", Issuer: "https://api.example"}
	body := []byte(`{"event":{"eventId":"c0ffee","eventType":"touch"},"labels":{},"metadata":{"deviceId":"d1"}}`)

	// Over real HTTP, as a receiver gets it.
	var got http.Header
	var gotBody []byte
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, gotBody = r.Header.Clone(), must(io.ReadAll(r.Body))
	}))
	defer srv.Close()
	h, err := s.Headers("c0ffee", body, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", srv.URL, bytes.NewReader(body))
	req.Header = h
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	rc := receiver{secret: secret, jwks: jwks}
	for scheme, err := range rc.check(got, gotBody) {
		if err != nil {
			t.Errorf("%s: %v", scheme, err)
		}
	}
	// One byte changed: all three fail.
	changed := bytes.Clone(gotBody)
	changed[10] ^= 1
	for scheme, err := range rc.check(got, changed) {
		if err == nil {
			t.Errorf("%s accepted a changed body", scheme)
		}
	}
	// Another secret or another key: refused.
	other := receiver{secret: []byte("another secret"), jwks: must(json.Marshal(token.JWKSet{Keys: []token.JWK{must(token.PublicJWK("delivery-1", &must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)).PublicKey))}}))}
	for scheme, err := range other.check(got, gotBody) {
		if err == nil {
			t.Errorf("%s accepted a signature made with other credentials", scheme)
		}
	}
	// The Standard Webhooks signature is the spec's HMAC.
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("c0ffee." + got.Get("webhook-timestamp") + "." + string(body)))
	if want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)); got.Get("webhook-signature") != want {
		t.Errorf("webhook-signature %q, want %q", got.Get("webhook-signature"), want)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
