package registry

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/radio"
)

// Device is a provisioned sensor.
type Device struct {
	ID            string            `firestore:"-"`
	Type          string            `firestore:"type"`
	ProductNumber string            `firestore:"productNumber"`
	KitID         string            `firestore:"kitId"`
	ProjectID     string            `firestore:"projectId"` // empty while the device is unclaimed
	Labels        map[string]string `firestore:"labels"`
	PublicKey     []byte            `firestore:"publicKey"`
	PublicKeyHash string            `firestore:"publicKeyHash"`
	WrappedPSK    []byte            `firestore:"wrappedPsk"`
	PSKKey        string            `firestore:"pskKey"` // the CryptoKey that wrapped the PSK, for re-wrapping after rotation
	CreateTime    time.Time         `firestore:"createTime"`
}

// deviceKey is the lookup from a public-key hash to a device. psk2 lets the
// cloud learn a sensor's static key only from inside message 1, so this is
// how a handshake finds the device it came from.
type deviceKey struct {
	DeviceID string `firestore:"deviceId"`
}

// kit groups the devices sold together; a customer can claim a whole kit.
type kit struct {
	DisplayName string   `firestore:"displayName"`
	DeviceIDs   []string `firestore:"deviceIds"`
}

// PublicKeyHash is the lookup id of a sensor's static public key.
func PublicKeyHash(pub [32]byte) string {
	h := sha256.Sum256(pub[:])
	return hex.EncodeToString(h[:])
}

func pskAAD(deviceID string) []byte { return []byte("sealedsense/psk/" + deviceID) }

// idEncoding gives DT-style identifiers: lowercase base32hex, no padding.
// idEncoding gives DT-style identifiers: lowercase base32hex, no padding.
func idEncoding() *base32.Encoding {
	return base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)
}

// NewID returns a random 20-character identifier in DT's style.
func NewID() (string, error) {
	var b [13]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("registry: id: %w", err)
	}
	return idEncoding().EncodeToString(b[:])[:20], nil
}

// Manufactured is what making one sensor yields: its registered record and
// the secrets that go into the sensor (and so into its 0600 file), never into
// Firestore.
type Manufactured struct {
	Device Device
	Static radio.KeyPair
	PSK    custody.Secret
}

// Spec describes sensors to manufacture.
type Spec struct {
	Type          string
	ProductNumber string
	KitID         string // optional; the devices are added to this kit
	KitName       string
	// ProjectID assigns the devices to a customer project at once, for
	// sensors made to order; empty leaves them in the unclaimed inventory.
	ProjectID string
}

// Manufacture makes one sensor: a static X25519 key pair and a PSK. It stores
// the device with its PSK KMS-wrapped, its public-key lookup and its kit
// membership in one transaction, so a partly registered device never exists.
func (r *Registry) Manufacture(ctx context.Context, spec Spec, wrapKeyName string) (Manufactured, error) {
	id, err := NewID()
	if err != nil {
		return Manufactured{}, err
	}
	static, err := radio.GenerateKeyPair(rand.Reader)
	if err != nil {
		return Manufactured{}, fmt.Errorf("registry: manufacture: %w", err)
	}
	psk := make(custody.Secret, 32)
	if _, err := rand.Read(psk); err != nil {
		return Manufactured{}, fmt.Errorf("registry: manufacture: %w", err)
	}
	wrapped, err := r.keys.Wrap(ctx, psk, pskAAD(id))
	if err != nil {
		return Manufactured{}, fmt.Errorf("registry: manufacture %s: %w", id, err)
	}
	d := Device{
		ID:            id,
		Type:          spec.Type,
		ProductNumber: spec.ProductNumber,
		KitID:         spec.KitID,
		ProjectID:     spec.ProjectID,
		Labels:        map[string]string{},
		PublicKey:     static.Public[:],
		PublicKeyHash: PublicKeyHash(static.Public),
		WrappedPSK:    wrapped,
		PSKKey:        wrapKeyName,
		CreateTime:    time.Now().UTC(),
	}
	err = r.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		var kitRef *firestore.DocumentRef
		var k kit
		if spec.KitID != "" {
			kitRef = r.fs.Collection(KitsCollection).Doc(spec.KitID)
			snap, err := tx.Get(kitRef)
			switch {
			case err == nil:
				if err := snap.DataTo(&k); err != nil {
					return err
				}
			case notFound(err):
				k.DisplayName = spec.KitName
			default:
				return err
			}
		}
		if err := tx.Create(r.fs.Collection(DevicesCollection).Doc(id), d); err != nil {
			return err
		}
		if err := tx.Create(r.fs.Collection(DeviceKeysCollection).Doc(d.PublicKeyHash), deviceKey{DeviceID: id}); err != nil {
			return err
		}
		if kitRef != nil {
			k.DeviceIDs = append(k.DeviceIDs, id)
			return tx.Set(kitRef, k)
		}
		return nil
	})
	if err != nil {
		return Manufactured{}, wrapErr("manufacture "+id, err)
	}
	return Manufactured{Device: d, Static: static, PSK: psk}, nil
}

// Device reads one device.
func (r *Registry) Device(ctx context.Context, id string) (Device, error) {
	snap, err := r.fs.Collection(DevicesCollection).Doc(id).Get(ctx)
	if err != nil {
		return Device{}, wrapErr("device "+id, err)
	}
	var d Device
	if err := snap.DataTo(&d); err != nil {
		return Device{}, fmt.Errorf("registry: device %s: %w", id, err)
	}
	d.ID = snap.Ref.ID
	return d, nil
}

// DeviceByPublicKey finds the device whose static public key is pub; an
// unknown sensor is ErrNotFound.
func (r *Registry) DeviceByPublicKey(ctx context.Context, pub [32]byte) (Device, error) {
	snap, err := r.fs.Collection(DeviceKeysCollection).Doc(PublicKeyHash(pub)).Get(ctx)
	if err != nil {
		return Device{}, wrapErr("device lookup", err)
	}
	var k deviceKey
	if err := snap.DataTo(&k); err != nil {
		return Device{}, fmt.Errorf("registry: device lookup: %w", err)
	}
	return r.Device(ctx, k.DeviceID)
}

// PSK unwraps a device's PSK.
func (r *Registry) PSK(ctx context.Context, d Device) ([32]byte, error) {
	psk, err := r.read.Unwrap(ctx, d.WrappedPSK, pskAAD(d.ID))
	if err != nil {
		return [32]byte{}, fmt.Errorf("registry: psk of %s: %w", d.ID, err)
	}
	if len(psk) != 32 {
		return [32]byte{}, fmt.Errorf("registry: psk of %s has the wrong size", d.ID)
	}
	return [32]byte(psk), nil
}
