package radio

import (
	"crypto/ecdh"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"

	"github.com/flynn/noise"
)

// KeyPair is a static X25519 key pair. Its printed forms show only the
// public half.
type KeyPair struct {
	Private [32]byte
	Public  [32]byte
}

// GenerateKeyPair draws a key pair from random (crypto/rand when nil).
func GenerateKeyPair(random io.Reader) (KeyPair, error) {
	if random == nil {
		random = rand.Reader
	}
	// Read the private key ourselves rather than through GenerateKey, which
	// may ignore its reader: provisioning wants crypto/rand, golden tests a
	// fixed stream.
	var priv [32]byte
	if _, err := io.ReadFull(random, priv[:]); err != nil {
		return KeyPair{}, fmt.Errorf("radio: generate key: %w", err)
	}
	k, err := ecdh.X25519().NewPrivateKey(priv[:])
	clear(priv[:])
	if err != nil {
		return KeyPair{}, fmt.Errorf("radio: generate key: %w", err)
	}
	var kp KeyPair
	copy(kp.Private[:], k.Bytes())
	copy(kp.Public[:], k.PublicKey().Bytes())
	return kp, nil
}

func (k KeyPair) dh() noise.DHKey {
	return noise.DHKey{Private: append([]byte(nil), k.Private[:]...), Public: append([]byte(nil), k.Public[:]...)}
}

// String shows the public key only.
func (k KeyPair) String() string { return fmt.Sprintf("x25519 public %x (private redacted)", k.Public) }

// GoString shows the public key only.
func (k KeyPair) GoString() string { return k.String() }

// Format shows the public key only, whatever the verb.
func (k KeyPair) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// LogValue shows the public key only.
func (k KeyPair) LogValue() slog.Value { return slog.StringValue(k.String()) }
