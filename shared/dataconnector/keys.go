package dataconnector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/store"
	"github.com/sealedsense/sealedsense/shared/token"
	"github.com/sealedsense/sealedsense/shared/webhook"
)

// CertVerifier checks key certificates; *token.KeySet of the
// webhook-signing key is one.
type CertVerifier interface {
	VerifyCert(ctx context.Context, cert, issuer string) (token.CertClaims, error)
}

// PublishedKeys returns the delivery keys a receiver may meet now: every
// key whose certificate verifies and whose signatures can still be valid.
// A document whose certificate does not verify is left out.
func PublishedKeys(ctx context.Context, fs *firestore.Client, v CertVerifier, issuer string, now time.Time) ([]token.JWK, error) {
	keys, err := store.New(fs).LiveDeliveryKeys(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("dataconnector: %w", err)
	}
	var out []token.JWK
	for _, k := range keys {
		c, err := v.VerifyCert(ctx, k.Cert, issuer)
		if errors.Is(err, token.ErrInvalid) || (err == nil && c.Key.Kid != k.Kid) {
			continue
		}
		if err != nil {
			return nil, err // KMS unreachable: say so rather than publish too few
		}
		if now.After(c.ExpiresAt.Add(webhook.SignatureLife)) {
			continue
		}
		out = append(out, c.Key)
	}
	return out, nil
}
