package registry

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/sealedsense/sealedsense/shared/store"
)

// Connector is a registered Cloud Connector. Only its public key is stored;
// the private half never leaves the connector.
type Connector struct {
	ID string
	store.Connector
}

// RegisterConnector records a connector's public key and, in projectID,
// its device of type ccon, which the API lists and its status events
// belong to. An id in use, a sensor's included, is ErrExists, so a key
// cannot be replaced by registering again.
func (r *Registry) RegisterConnector(ctx context.Context, id, displayName, projectID string, pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("registry: connector %s: public key must be %d bytes", id, ed25519.PublicKeySize)
	}
	return r.db.CreateConnector(ctx, id, store.Connector{
		DisplayName: displayName,
		ProjectID:   projectID,
		PublicKey:   pub,
		CreateTime:  time.Now().UTC(),
	})
}

// Connector reads a connector, revoked or not.
func (r *Registry) Connector(ctx context.Context, id string) (Connector, error) {
	c, err := r.db.Connector(ctx, id)
	if err != nil {
		return Connector{}, err
	}
	return Connector{ID: id, Connector: c}, nil
}

// RevokeConnector stops a connector's envelopes from being accepted.
func (r *Registry) RevokeConnector(ctx context.Context, id string) error {
	return r.db.RevokeConnector(ctx, id, time.Now().UTC())
}

// RotateConnector makes pub connector id's key. Its current key is still
// accepted for grace, so the connector can switch to its new credentials
// meanwhile; after that only pub is. A revoked connector is not rotated.
func (r *Registry) RotateConnector(ctx context.Context, id string, pub ed25519.PublicKey, grace time.Duration) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("registry: connector %s: public key must be %d bytes", id, ed25519.PublicKeySize)
	}
	if grace < 0 {
		return fmt.Errorf("registry: connector %s: negative grace period %v", id, grace)
	}
	now := time.Now().UTC()
	err := r.db.RotateConnectorKey(ctx, id, pub, now, now.Add(grace))
	if errors.Is(err, store.ErrRevokedConnector) {
		return fmt.Errorf("registry: connector %s: %w", id, ErrRevoked)
	}
	return err
}

// Keys are the connector's keys at now: the current one, and the previous
// one until its grace period ends; valid is empty for a revoked connector.
// retired is a previous key whose grace has ended.
func (c Connector) Keys(now time.Time) (valid, retired []ed25519.PublicKey) {
	if c.Revoked {
		return nil, nil
	}
	valid = []ed25519.PublicKey{c.PublicKey}
	if len(c.PreviousPublicKey) == 0 {
		return valid, nil
	}
	if now.Before(c.PreviousUntil) {
		return append(valid, c.PreviousPublicKey), nil
	}
	return valid, []ed25519.PublicKey{c.PreviousPublicKey}
}
