package registry

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
)

// Connector is a registered Cloud Connector. Only its public key is stored;
// the private half never leaves the connector.
type Connector struct {
	ID          string    `firestore:"-"`
	DisplayName string    `firestore:"displayName"`
	ProjectID   string    `firestore:"projectId"` // the customer project its status events belong to
	PublicKey   []byte    `firestore:"publicKey"` // Ed25519
	Revoked     bool      `firestore:"revoked"`
	RevokeTime  time.Time `firestore:"revokeTime,omitempty"`
	CreateTime  time.Time `firestore:"createTime"`
}

// RegisterConnector records a connector's public key; an id in use is
// ErrExists, so a key cannot be replaced by registering again.
func (r *Registry) RegisterConnector(ctx context.Context, id, displayName, projectID string, pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("registry: connector %s: public key must be %d bytes", id, ed25519.PublicKeySize)
	}
	_, err := r.fs.Collection(ConnectorsCollection).Doc(id).Create(ctx, Connector{
		DisplayName: displayName,
		ProjectID:   projectID,
		PublicKey:   pub,
		CreateTime:  time.Now().UTC(),
	})
	if err != nil {
		return wrapErr("register connector "+id, err)
	}
	return nil
}

// Connector reads a connector, revoked or not.
func (r *Registry) Connector(ctx context.Context, id string) (Connector, error) {
	snap, err := r.fs.Collection(ConnectorsCollection).Doc(id).Get(ctx)
	if err != nil {
		return Connector{}, wrapErr("connector "+id, err)
	}
	var c Connector
	if err := snap.DataTo(&c); err != nil {
		return Connector{}, fmt.Errorf("registry: connector %s: %w", id, err)
	}
	c.ID = snap.Ref.ID
	return c, nil
}

// RevokeConnector stops a connector's envelopes from being accepted.
func (r *Registry) RevokeConnector(ctx context.Context, id string) error {
	_, err := r.fs.Collection(ConnectorsCollection).Doc(id).Update(ctx, []firestore.Update{
		{Path: "revoked", Value: true},
		{Path: "revokeTime", Value: time.Now().UTC()},
	})
	if err != nil {
		return wrapErr("revoke connector "+id, err)
	}
	return nil
}
