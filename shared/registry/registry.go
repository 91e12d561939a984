// Package registry is what provisioning creates — the cloud's own keys,
// devices with their public-key lookup, kits and connectors — with every
// secret KMS-wrapped before shared/store writes it.
package registry

import (
	"context"
	"errors"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/store"
)

// Sentinel errors.
var (
	ErrNotFound = store.ErrNotFound
	ErrExists   = store.ErrExists
	ErrRevoked  = errors.New("registry: revoked")
)

// Wrapper is the KMS wrapping that the registry needs; *custody.Wrapper is
// one.
type Wrapper interface {
	Wrap(ctx context.Context, plaintext custody.Secret, aad []byte) ([]byte, error)
	Unwrap(ctx context.Context, ciphertext, aad []byte) (custody.Secret, error)
}

// Registry reads and writes provisioned records.
type Registry struct {
	db   *store.DB
	keys Wrapper           // the device-key CryptoKey: PSKs and the cloud's private keys
	read custody.Unwrapper // usually a custody.Cache in front of keys
}

// New returns a Registry. keys wraps with the device-key CryptoKey; read is
// used for unwrapping and is typically a cache in front of keys, so that
// each wrapped key costs one KMS call per instance.
func New(fs *firestore.Client, keys Wrapper, read custody.Unwrapper) *Registry {
	if read == nil {
		read = keys
	}
	return &Registry{db: store.New(fs), keys: keys, read: read}
}
