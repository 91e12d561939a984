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
	"github.com/sealedsense/sealedsense/shared/store"
)

// Device is a provisioned sensor, with its id.
type Device struct {
	ID string
	store.Device
}

// PublicKeyHash is the lookup id of a sensor's static public key.
func PublicKeyHash(pub [32]byte) string {
	h := sha256.Sum256(pub[:])
	return hex.EncodeToString(h[:])
}

// PSKAAD binds a device's wrapped PSK to the device: a wrapped PSK copied
// onto another device's record does not unwrap there.
func PSKAAD(deviceID string) []byte { return []byte("sealedsense/psk/" + deviceID) }

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
	wrapped, err := r.keys.Wrap(ctx, psk, PSKAAD(id))
	if err != nil {
		return Manufactured{}, fmt.Errorf("registry: manufacture %s: %w", id, err)
	}
	d := Device{ID: id, Device: store.Device{
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
	}}
	err = r.db.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		var addToKit func() error
		if spec.KitID != "" {
			var err error
			if addToKit, err = r.db.AddToKit(tx, spec.KitID, spec.KitName, id); err != nil {
				return err
			}
		}
		if err := r.db.CreateDevice(tx, id, d.Device); err != nil {
			return err
		}
		if addToKit != nil {
			return addToKit()
		}
		return nil
	})
	if err != nil {
		return Manufactured{}, fmt.Errorf("registry: manufacture %s: %w", id, err)
	}
	return Manufactured{Device: d, Static: static, PSK: psk}, nil
}

// Device reads one device.
func (r *Registry) Device(ctx context.Context, id string) (Device, error) {
	d, err := r.db.Device(ctx, id)
	if err != nil {
		return Device{}, err
	}
	return Device{ID: id, Device: d}, nil
}

// DeviceByPublicKey finds the device whose static public key is pub; an
// unknown sensor is ErrNotFound.
func (r *Registry) DeviceByPublicKey(ctx context.Context, pub [32]byte) (Device, error) {
	id, err := r.db.DeviceIDByKeyHash(ctx, PublicKeyHash(pub))
	if err != nil {
		return Device{}, err
	}
	return r.Device(ctx, id)
}

// PSK unwraps a device's PSK.
func (r *Registry) PSK(ctx context.Context, d Device) ([32]byte, error) {
	psk, err := r.read.Unwrap(ctx, d.WrappedPSK, PSKAAD(d.ID))
	if err != nil {
		return [32]byte{}, fmt.Errorf("registry: psk of %s: %w", d.ID, err)
	}
	if len(psk) != 32 {
		return [32]byte{}, fmt.Errorf("registry: psk of %s has the wrong size", d.ID)
	}
	return [32]byte(psk), nil
}
