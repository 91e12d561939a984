package deliver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/sealedsense/sealedsense/shared/store"
	"github.com/sealedsense/sealedsense/shared/token"
	"github.com/sealedsense/sealedsense/shared/webhook"
)

// signingKey returns this instance's ES256 key. It makes and certifies
// a new one (one KMS call) at start and when a quarter of the current
// key's life is left. The key lives only in memory: an instance that
// stops takes it along.
func (s *Service) signingKey(ctx context.Context) (*instanceKey, error) {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	now := s.deps.Now()
	if s.next != nil && !now.Before(s.next.usableFrom) {
		s.key, s.next = s.next, nil
	}
	if k := s.key; k != nil && k.notAfter.Sub(now) > s.cfg.KeyLife/4 {
		return k, nil
	}
	if s.next == nil {
		next, err := s.newKey(ctx, now)
		if err != nil {
			if s.key != nil && s.key.notAfter.After(now) {
				return s.key, nil // rotation failed; the old key still signs
			}
			return nil, err
		}
		s.next = next
	}
	if s.key != nil && s.key.notAfter.After(now) {
		return s.key, nil
	}
	// At start there is no other key: wait until receivers can find it.
	time.Sleep(time.Until(s.next.usableFrom))
	s.key, s.next = s.next, nil
	return s.key, nil
}

// newKey makes a key and publishes its certificate. Receivers that meet
// a new kid fetch the JWKS, which the API caches for a second, so the key
// signs only from KeyPublishDelay on.
func (s *Service) newKey(ctx context.Context, now time.Time) (*instanceKey, error) {
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
	doc := store.DeliveryKey{Cert: cert, NotAfter: notAfter, ExpireAt: notAfter.Add(webhook.SignatureLife)}
	if err := s.db.CreateDeliveryKey(ctx, kid, doc); err != nil {
		return nil, fmt.Errorf("deliver: publish key: %w", err)
	}
	s.log.Info("webhook signing key published", "kid", kid, "notAfter", notAfter)
	return &instanceKey{priv: priv, kid: kid, notAfter: notAfter, usableFrom: now.Add(s.cfg.KeyPublishDelay)}, nil
}
