// Package registry stores what provisioning creates — the cloud's own keys,
// devices with their public-key lookup, kits and connectors — in Firestore,
// with every secret KMS-wrapped before it is written.
package registry

import (
	"context"
	"errors"
	"fmt"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sealedsense/sealedsense/shared/custody"
)

// Collection names. Devices live in one top-level collection with a
// projectId field rather than under their project, so that claiming or
// transferring a device is an update, not a move of its document.
const (
	DevicesCollection    = "devices"
	DeviceKeysCollection = "deviceKeys"
	KitsCollection       = "kits"
	ConnectorsCollection = "connectors"
	CloudCollection      = "cloud"
)

// Sentinel errors.
var (
	ErrNotFound = errors.New("registry: not found")
	ErrExists   = errors.New("registry: already exists")
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
	fs   *firestore.Client
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
	return &Registry{fs: fs, keys: keys, read: read}
}

// Firestore is the client the registry writes through.
func (r *Registry) Firestore() *firestore.Client { return r.fs }

func notFound(err error) bool { return status.Code(err) == codes.NotFound }
func exists(err error) bool   { return status.Code(err) == codes.AlreadyExists }

func wrapErr(op string, err error) error {
	switch {
	case notFound(err):
		return fmt.Errorf("registry: %s: %w", op, ErrNotFound)
	case exists(err):
		return fmt.Errorf("registry: %s: %w", op, ErrExists)
	}
	return fmt.Errorf("registry: %s: %w", op, err)
}
