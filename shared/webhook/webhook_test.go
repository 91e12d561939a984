package webhook_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/token"
	"github.com/sealedsense/sealedsense/shared/webhook"
	"github.com/sealedsense/sealedsense/shared/webhook/webhooktest"
)

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

	for scheme, err := range webhooktest.Check(got, gotBody, secret, jwks) {
		if err != nil {
			t.Errorf("%s: %v", scheme, err)
		}
	}
	// One byte changed: all three fail.
	changed := bytes.Clone(gotBody)
	changed[10] ^= 1
	for scheme, err := range webhooktest.Check(got, changed, secret, jwks) {
		if err == nil {
			t.Errorf("%s accepted a changed body", scheme)
		}
	}
	// Another secret or another key: refused.
	otherJWKS := must(json.Marshal(token.JWKSet{Keys: []token.JWK{must(token.PublicJWK("delivery-1", &must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)).PublicKey))}}))
	for scheme, err := range webhooktest.Check(got, gotBody, []byte("another secret"), otherJWKS) {
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
