package registry

import (
	"context"
	"crypto/ed25519"
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

// RegisterConnector records a connector's public key; an id in use is
// ErrExists, so a key cannot be replaced by registering again.
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
