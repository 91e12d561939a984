package dataconnector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/token"
	"github.com/sealedsense/sealedsense/shared/webhook"
)

// KeyDoc is a deliver instance's public key as the API's JWKS reads it.
// Only the certificate carries the key, so a Firestore writer without KMS
// sign access cannot add a key receivers would trust.
type KeyDoc struct {
	Cert     string    `firestore:"cert"`
	NotAfter time.Time `firestore:"notAfter"`
	// ExpireAt outlives NotAfter by a signature's life, so a signature
	// made just before the key retired still verifies.
	ExpireAt time.Time `firestore:"expireAt"`
}

// CertVerifier checks key certificates; *token.KeySet of the
// webhook-signing key is one.
type CertVerifier interface {
	VerifyCert(ctx context.Context, cert, issuer string) (token.CertClaims, error)
}

// PublishedKeys returns the delivery keys a receiver may meet now: every
// key whose certificate verifies and whose signatures can still be valid.
// A document whose certificate does not verify is left out.
func PublishedKeys(ctx context.Context, fs *firestore.Client, v CertVerifier, issuer string, now time.Time) ([]token.JWK, error) {
	docs, err := fs.Collection(Keys).Where("expireAt", ">", now).Documents(ctx).GetAll()
	if err != nil {
		return nil, fmt.Errorf("dataconnector: delivery keys: %w", err)
	}
	var out []token.JWK
	for _, d := range docs {
		var k KeyDoc
		if err := d.DataTo(&k); err != nil {
			continue
		}
		c, err := v.VerifyCert(ctx, k.Cert, issuer)
		if errors.Is(err, token.ErrInvalid) || (err == nil && c.Key.Kid != d.Ref.ID) {
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
