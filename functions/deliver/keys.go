package deliver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"github.com/sealedsense/sealedsense/shared/dataconnector"
	"github.com/sealedsense/sealedsense/shared/token"
	"github.com/sealedsense/sealedsense/shared/webhook"
)

// signingKey returns this instance's ES256 key, making and certifying a
// new one (one KMS call) at start and when a quarter of its life is left.
// The key lives only in memory: an instance that stops takes it along.
func (s *Service) signingKey(ctx context.Context) (*instanceKey, error) {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	now := s.deps.Now()
	if k := s.key; k != nil && k.notAfter.Sub(now) > s.cfg.KeyLife/4 {
		return k, nil
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	id := make([]byte, 12)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	kid := "dk-" + base64.RawURLEncoding.EncodeToString(id)
	jwk, err := token.PublicJWK(kid, &priv.PublicKey)
	if err != nil {
		return nil, err
	}
	cert, err := s.deps.Certifier.Certify(ctx, s.cfg.Issuer, jwk, now, s.cfg.KeyLife)
	if err != nil {
		return nil, fmt.Errorf("deliver: certify key: %w", err)
	}
	notAfter := now.Add(s.cfg.KeyLife)
	// Published before first use, so a receiver that fetches the JWKS on
	// seeing a new kid finds it.
	doc := dataconnector.KeyDoc{Cert: cert, NotAfter: notAfter, ExpireAt: notAfter.Add(webhook.SignatureLife)}
	if _, err := s.deps.Firestore.Collection(dataconnector.Keys).Doc(kid).Create(ctx, doc); err != nil {
		return nil, fmt.Errorf("deliver: publish key: %w", err)
	}
	s.key = &instanceKey{priv: priv, kid: kid, notAfter: notAfter}
	s.log.Info("webhook signing key published", "kid", kid, "notAfter", notAfter)
	return s.key, nil
}
