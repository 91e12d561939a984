package keybackup

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/store"
)

// Wrapper wraps a backup's data key with the backup KEK and names the
// CryptoKeyVersion that did. *custody.Wrapper is one.
type Wrapper interface {
	WrapVersion(ctx context.Context, plaintext custody.Secret, aad []byte) ([]byte, string, error)
}

// Seal makes a backup object of recs for project, to be stored under the
// name object.
func Seal(ctx context.Context, w Wrapper, project, object string, created time.Time, recs []store.Record) ([]byte, Manifest, error) {
	m := Manifest{Format: Version, Project: project, Object: object, Created: created.UTC(), Counts: map[string]int{}}
	for _, kind := range store.BackupKinds() {
		m.Counts[kind] = 0
	}
	for _, r := range recs {
		m.Counts[r.Kind]++
		if k := store.WrapKeyOf(r); k != "" && !slices.Contains(m.WrapKeys, k) {
			m.WrapKeys = append(m.WrapKeys, k)
		}
	}
	slices.Sort(m.WrapKeys)

	key := make(custody.Secret, dataKeySize)
	defer key.Clear()
	_, _ = rand.Read(key) // crypto/rand.Read never fails
	var err error
	if m.WrappedKey, m.KMSVersion, err = w.WrapVersion(ctx, key, kmsAAD(project, object)); err != nil {
		return nil, Manifest{}, fmt.Errorf("keybackup: wrap data key: %w", err)
	}
	plain, err := encodeRecords(recs)
	if err != nil {
		return nil, Manifest{}, err
	}
	defer clear(plain)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, Manifest{}, fmt.Errorf("keybackup: %w", err)
	}
	m.BodyBytes = nonceSize + len(plain) + aead.Overhead()
	sealed := make([]byte, nonceSize, m.BodyBytes)
	_, _ = rand.Read(sealed)
	sealed = aead.Seal(sealed, sealed[:nonceSize], plain, associatedData(m))
	sum := sha256.Sum256(sealed)
	m.BodySHA256 = hex.EncodeToString(sum[:])
	return frame(m, sealed), m, nil
}

// Unwrapper unwraps a backup's data key. *custody.Wrapper is one.
type Unwrapper interface {
	Unwrap(ctx context.Context, ciphertext, aad []byte) (custody.Secret, error)
}

// Expect is what a backup must match to be opened.
type Expect struct {
	Project string
	Object  string // the name it was read from
	// BackupKey is the backup KEK's CryptoKey name; the data key must have
	// been wrapped by one of its versions.
	BackupKey string
}

// Open checks and opens a backup object, in the order the package
// comment lists, and returns its manifest and records.
func Open(ctx context.Context, data []byte, want Expect, u Unwrapper) (Manifest, []store.Record, error) {
	m, sealed, err := Parse(data)
	if err != nil {
		return Manifest{}, nil, err
	}
	switch {
	case m.Project != want.Project:
		return m, nil, fmt.Errorf("%w: made for %q, restoring into %q", ErrForeignProject, m.Project, want.Project)
	case m.Object != want.Object:
		return m, nil, fmt.Errorf("%w: written as %q, read from %q", ErrMisnamed, m.Object, want.Object)
	case !strings.HasPrefix(m.KMSVersion, want.BackupKey+"/cryptoKeyVersions/"):
		return m, nil, fmt.Errorf("%w: wrapped by %q, the backup key is %q", ErrKMSVersion, m.KMSVersion, want.BackupKey)
	}
	if err := checkHash(m, sealed); err != nil {
		return m, nil, err
	}
	key, err := u.Unwrap(ctx, m.WrappedKey, kmsAAD(m.Project, m.Object))
	switch {
	case status.Code(err) == codes.InvalidArgument:
		// KMS's answer to a ciphertext or AAD that does not authenticate.
		return m, nil, fmt.Errorf("%w: %w", ErrTampered, err)
	case err != nil:
		return m, nil, fmt.Errorf("%w: %w", ErrUnwrap, err)
	}
	defer key.Clear()
	recs, err := openBody(key, m, sealed)
	return m, recs, err
}
