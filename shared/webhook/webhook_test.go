package webhook_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
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
	conn := webhook.ConnectorName("p1", "c1")
	s := webhook.Signer{Secret: secret, Key: key, KeyID: "delivery-1", Issuer: "https://api.example", Connector: conn}
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

	for scheme, err := range webhooktest.Check(got, gotBody, secret, jwks, conn) {
		if err != nil {
			t.Errorf("%s: %v", scheme, err)
		}
	}
	// One byte changed: all three fail.
	changed := bytes.Clone(gotBody)
	changed[10] ^= 1
	for scheme, err := range webhooktest.Check(got, changed, secret, jwks, conn) {
		if err == nil {
			t.Errorf("%s accepted a changed body", scheme)
		}
	}
	// Another secret or another key: refused.
	otherJWKS := must(json.Marshal(token.JWKSet{Keys: []token.JWK{must(token.PublicJWK("delivery-1", &must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)).PublicKey))}}))
	for scheme, err := range webhooktest.Check(got, gotBody, []byte("another secret"), otherJWKS, conn) {
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

// TestForwardedDeliveryRefused: the JWKS is the same for every customer,
// so the ES256 header names its recipient. Customer A forwarding a
// delivery it received to customer B's endpoint within the hour gets it
// refused there, even where A and B share a secret (only the ES256
// header is checked against the recipient; the secret-based schemes are
// bound to it by the connector's own secret).
func TestForwardedDeliveryRefused(t *testing.T) {
	t.Parallel()
	secret := []byte("a secret both customers happen to use")
	key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	jwks := must(json.Marshal(token.JWKSet{Keys: []token.JWK{must(token.PublicJWK("delivery-1", &key.PublicKey))}}))
	nameA, nameB := webhook.ConnectorName("pa", "ca"), webhook.ConnectorName("pb", "cb")
	jwksOf := func() ([]byte, error) { return jwks, nil }
	a, b := webhooktest.New(t, secret, jwksOf), webhooktest.New(t, secret, jwksOf)
	a.SetConnector(nameA)
	b.SetConnector(nameB)
	body := []byte(`{"event":{"eventId":"c0ffee","eventType":"touch"},"labels":{},"metadata":{"deviceId":"d1","projectId":"pa"}}`)
	h := must(webhook.Signer{Secret: secret, Key: key, KeyID: "delivery-1", Issuer: "https://api.example", Connector: nameA}.Headers("c0ffee", body, time.Now()))
	post := func(r *webhooktest.Receiver) webhooktest.Delivery {
		t.Helper()
		req, _ := http.NewRequest("POST", r.URL, bytes.NewReader(body))
		req.Header = h.Clone()
		pool := x509.NewCertPool()
		pool.AddCert(r.Certificate())
		resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		ds := r.Deliveries()
		return ds[len(ds)-1]
	}
	if d := post(a); d.Err != nil {
		t.Fatalf("the recipient refused its own delivery: %v", d.Err)
	}
	if d := post(b); d.Err == nil || !strings.Contains(d.Err.Error(), "es256") {
		t.Fatalf("another connector's receiver accepted a forwarded delivery: %v", d.Err)
	}
	tests := []struct {
		name, connector string
		ok              bool
	}{
		{"its recipient", nameA, true},
		{"another connector", nameB, false},
		{"another connector of the same project", webhook.ConnectorName("pa", "other"), false},
		{"a receiver that knows no name", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := webhooktest.Check(h, body, secret, jwks, tc.connector)["es256"]; (err == nil) != tc.ok {
				t.Fatalf("es256 check: %v, want ok=%v", err, tc.ok)
			}
		})
	}
	// A signer with no recipient does not sign.
	if _, err := (webhook.Signer{Secret: secret, Key: key, KeyID: "delivery-1"}).Headers("c0ffee", body, time.Now()); err == nil {
		t.Fatal("signed an ES256 header with no recipient")
	}
}

func TestConnectorProject(t *testing.T) {
	for name, want := range map[string]string{
		"projects/p/dataconnectors/c":   "p",
		"projects//dataconnectors/c":    "",
		"projects/p/dataconnectors/":    "",
		"projects/p/x/dataconnectors/c": "",
		"projects/p/dataconnectors/c/d": "",
		"p/dataconnectors/c":            "",
		"":                              "",
	} {
		if got := webhook.ConnectorProject(name); got != want {
			t.Errorf("ConnectorProject(%q) = %q, want %q", name, got, want)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
