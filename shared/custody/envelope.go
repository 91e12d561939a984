package custody

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// ErrEnvelope means a sealed blob is malformed, names a KEK this Envelope
// does not hold, or fails authentication. It never says which bytes.
var ErrEnvelope = errors.New("custody: envelope cannot be opened")

// ErrUnknownKEK means a sealed blob names a KEK this Envelope does not
// hold: unlike a blob that fails authentication, it may open once the
// instance has loaded that KEK. It wraps ErrEnvelope.
var ErrUnknownKEK = fmt.Errorf("%w: unknown kek", ErrEnvelope)

// KEK is a key-encryption key for session keys. It is stored only
// KMS-wrapped; an instance unwraps it once and then seals and opens session
// keys locally, which is what makes a data packet cost zero KMS calls.
type KEK struct {
	ID  string // names the KEK inside every blob it seals, so rotation keeps old blobs readable
	Key Secret // 32 bytes
}

// KEKAAD binds a wrapped KEK to its id, so that KEK records cannot be swapped.
func KEKAAD(id string) []byte { return []byte("sealedsense/session-kek/" + id) }

// NewKEK makes a random KEK and returns it together with its KMS-wrapped form,
// which is what gets stored.
func NewKEK(ctx context.Context, w *Wrapper, id string) (KEK, []byte, error) {
	if id == "" || len(id) > 255 {
		return KEK{}, nil, fmt.Errorf("custody: kek id must be 1 to 255 bytes")
	}
	key := make(Secret, chacha20poly1305.KeySize)
	if _, err := rand.Read(key); err != nil {
		return KEK{}, nil, fmt.Errorf("custody: kek: %w", err)
	}
	wrapped, err := w.Wrap(ctx, key, KEKAAD(id))
	if err != nil {
		return KEK{}, nil, err
	}
	return KEK{ID: id, Key: key}, wrapped, nil
}

// UnwrapKEK turns a stored, wrapped KEK back into a KEK.
func UnwrapKEK(ctx context.Context, u Unwrapper, id string, wrapped []byte) (KEK, error) {
	key, err := u.Unwrap(ctx, wrapped, KEKAAD(id))
	if err != nil {
		return KEK{}, fmt.Errorf("custody: kek %q: %w", id, err)
	}
	if len(key) != chacha20poly1305.KeySize {
		return KEK{}, fmt.Errorf("custody: kek %q: %w", id, ErrEnvelope)
	}
	return KEK{ID: id, Key: key}, nil
}

// Envelope seals small secrets such as session keys under KEKs with
// XChaCha20-Poly1305, whose random 192-bit nonces are safe to draw at any
// volume without coordination between function instances.
type Envelope struct {
	current string
	aeads   map[string]cipher.AEAD
}

// envelopeVersion leads every blob, so the format can change without
// guessing.
const envelopeVersion = 1

// NewEnvelope seals with current and opens blobs sealed by current or by any
// of older, which keeps sessions readable across a KEK rotation.
func NewEnvelope(current KEK, older ...KEK) (*Envelope, error) {
	e := &Envelope{current: current.ID, aeads: make(map[string]cipher.AEAD, 1+len(older))}
	for _, k := range append([]KEK{current}, older...) {
		if k.ID == "" || len(k.ID) > 255 {
			return nil, fmt.Errorf("custody: kek id must be 1 to 255 bytes")
		}
		a, err := chacha20poly1305.NewX(k.Key)
		if err != nil {
			return nil, fmt.Errorf("custody: kek %q: %w", k.ID, ErrEnvelope)
		}
		e.aeads[k.ID] = a
	}
	return e, nil
}

// Seal encrypts plaintext; aad binds the blob to its record (for example the
// session's id), so a blob moved to another record does not open.
// The layout is version | len(kek id) | kek id | nonce | ciphertext.
func (e *Envelope) Seal(plaintext, aad []byte) ([]byte, error) {
	a := e.aeads[e.current]
	hdr := make([]byte, 0, 2+len(e.current)+a.NonceSize()+len(plaintext)+a.Overhead())
	hdr = append(hdr, envelopeVersion, byte(len(e.current)))
	hdr = append(hdr, e.current...)
	nonce := make([]byte, a.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("custody: envelope nonce: %w", err)
	}
	out := append(hdr, nonce...)
	return a.Seal(out, nonce, plaintext, envelopeAD(out[:len(hdr)], aad)), nil
}

// Open reverses Seal.
func (e *Envelope) Open(sealed, aad []byte) (Secret, error) {
	if len(sealed) < 2 || sealed[0] != envelopeVersion {
		return nil, ErrEnvelope
	}
	idLen := int(sealed[1])
	hdrLen := 2 + idLen
	if len(sealed) < hdrLen {
		return nil, ErrEnvelope
	}
	a, ok := e.aeads[string(sealed[2:hdrLen])]
	if !ok {
		return nil, ErrUnknownKEK
	}
	if len(sealed) < hdrLen+a.NonceSize()+a.Overhead() {
		return nil, ErrEnvelope
	}
	nonce := sealed[hdrLen : hdrLen+a.NonceSize()]
	pt, err := a.Open(nil, nonce, sealed[hdrLen+a.NonceSize():], envelopeAD(sealed[:hdrLen], aad))
	if err != nil {
		return nil, ErrEnvelope
	}
	return Secret(pt), nil
}

// SealedKEK returns the id of the KEK a blob names, unauthenticated: what
// a caller that cannot open the blob needs to tell why (a KEK retired, or
// one not loaded yet).
func SealedKEK(sealed []byte) (id string, ok bool) {
	if len(sealed) < 2 || sealed[0] != envelopeVersion || len(sealed) < 2+int(sealed[1]) {
		return "", false
	}
	return string(sealed[2 : 2+int(sealed[1])]), true
}

// envelopeAD authenticates the header too, so the KEK id cannot be altered.
func envelopeAD(hdr, aad []byte) []byte {
	ad := make([]byte, 0, len(hdr)+len(aad))
	return append(append(ad, hdr...), aad...)
}
