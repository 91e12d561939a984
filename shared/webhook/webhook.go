// Package webhook signs Data Connector deliveries three ways, so that a
// receiver can check them with stock tools: DT's X-Dt-Signature (an HS256
// JWT carrying the body's checksums), the Standard Webhooks headers (HMAC
// with the same secret), and an ES256 JWT over the body's SHA-256 that
// verifies against the API's JWKS. The ES256 JWT names its recipient, the
// data connector, as its audience: the JWKS is the same for every
// customer, so without it a delivery one customer received would verify
// at another's endpoint.
package webhook

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Header names. DT's receivers match X-Dt-Signature case-insensitively.
const (
	HeaderDT    = "X-Dt-Signature"
	HeaderES256 = "X-Sealedsense-Signature"
)

// SignatureLife is how long a signature is valid: as DT's, an hour.
const SignatureLife = time.Hour

// Signer signs deliveries for one Data Connector.
type Signer struct {
	// Secret is the connector's signatureSecret.
	Secret []byte
	// Key signs the ES256 header; KeyID names its public half in the
	// JWKS, and Issuer is the API's base URL.
	Key    *ecdsa.PrivateKey
	KeyID  string
	Issuer string
	// Connector is the recipient: the data connector's resource name,
	// projects/{project}/dataconnectors/{id} (ConnectorName). The ES256
	// header carries it as aud and its project as project.
	Connector string
}

// Claims of the ES256 header. A receiver checks aud against its own
// connector's name.
type Claims struct {
	jwt.RegisteredClaims
	BodySHA256 string `json:"body_sha256"` // base64url, unpadded
	Project    string `json:"project"`     // the connector's project
}

// ConnectorName is a data connector's resource name, the audience of its
// deliveries' ES256 header.
func ConnectorName(project, id string) string {
	return "projects/" + project + "/dataconnectors/" + id
}

// ConnectorProject is the project of a connector's resource name, or ""
// when name is not one.
func ConnectorProject(name string) string {
	rest, ok := strings.CutPrefix(name, "projects/")
	p, id, ok2 := strings.Cut(rest, "/dataconnectors/")
	if !ok || !ok2 || p == "" || id == "" || strings.Contains(p, "/") || strings.Contains(id, "/") {
		return ""
	}
	return p
}

// Headers returns the signature headers of one delivery of body. id is the
// event id: Standard Webhooks receivers dedupe on webhook-id, and a retry
// is the same message.
func (s Signer) Headers(id string, body []byte, now time.Time) (http.Header, error) {
	if len(s.Secret) == 0 {
		return nil, errors.New("webhook: no signature secret")
	}
	h := http.Header{}
	sum := sha256.Sum256(body)
	legacy := sha1.Sum(body) // DT's legacy checksum claim is SHA-1; receivers check SHA-256
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return nil, err
	}
	dt, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iat": now.Unix(), "exp": now.Add(SignatureLife).Unix(), "jti": hex.EncodeToString(jti),
		"checksum_sha256": hex.EncodeToString(sum[:]), "checksum": hex.EncodeToString(legacy[:]),
	}).SignedString(s.Secret)
	if err != nil {
		return nil, fmt.Errorf("webhook: dt signature: %w", err)
	}
	h.Set(HeaderDT, dt)

	wh, err := standardwebhooks.NewWebhookRaw(s.Secret)
	if err != nil {
		return nil, fmt.Errorf("webhook: standard signature: %w", err)
	}
	sig, err := wh.Sign(id, now, body)
	if err != nil {
		return nil, fmt.Errorf("webhook: standard signature: %w", err)
	}
	h.Set(standardwebhooks.HeaderWebhookID, id)
	h.Set(standardwebhooks.HeaderWebhookTimestamp, fmt.Sprint(now.Unix()))
	h.Set(standardwebhooks.HeaderWebhookSignature, sig)

	if s.Key != nil {
		project := ConnectorProject(s.Connector)
		if project == "" {
			return nil, errors.New("webhook: es256 signature: no recipient connector name")
		}
		t := jwt.NewWithClaims(jwt.SigningMethodES256, Claims{
			RegisteredClaims: jwt.RegisteredClaims{Issuer: s.Issuer, ID: id, Audience: jwt.ClaimStrings{s.Connector},
				IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(SignatureLife))},
			BodySHA256: base64.RawURLEncoding.EncodeToString(sum[:]),
			Project:    project,
		})
		t.Header["kid"] = s.KeyID
		es, err := t.SignedString(s.Key)
		if err != nil {
			return nil, fmt.Errorf("webhook: es256 signature: %w", err)
		}
		h.Set(HeaderES256, es)
	}
	return h, nil
}
