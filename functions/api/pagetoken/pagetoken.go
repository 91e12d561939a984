// Package pagetoken seals where a listing stopped into an opaque page token,
// encrypted and authenticated, and bound to the query it continues.
package pagetoken

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// ErrInvalid means a token was not sealed under this key for this scope.
var ErrInvalid = errors.New("pagetoken: invalid")

// KeySize is the size of a sealing key.
const KeySize = chacha20poly1305.KeySize

// maxLen bounds the tokens Open reads; real ones are about 100 bytes.
const maxLen = 1024

// Cursor is where a page ended: the last document's id, and the value of
// the field the listing orders by first, if any.
type Cursor struct {
	T  *time.Time `json:"t,omitempty"`
	V  any        `json:"v,omitempty"`
	ID string     `json:"i"`
}

// scopeAD binds a token to its scope — the route, project and filters — so
// a token of one listing is refused by every other.
func scopeAD(scope string) []byte {
	h := sha256.Sum256([]byte("sealedsense/page-token\x00" + scope))
	return h[:]
}

// Seal makes the token of c within scope.
func Seal(key []byte, scope string, c Cursor) (string, error) {
	a, err := chacha20poly1305.NewX(key)
	if err != nil {
		return "", fmt.Errorf("pagetoken: %w", err)
	}
	pt, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("pagetoken: %w", err)
	}
	nonce := make([]byte, a.NonceSize(), a.NonceSize()+len(pt)+a.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("pagetoken: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(a.Seal(nonce, nonce, pt, scopeAD(scope))), nil
}

// Open returns the cursor of a token sealed by Seal with the same key and
// scope, and ErrInvalid for anything else.
func Open(key []byte, scope, tok string) (Cursor, error) {
	a, err := chacha20poly1305.NewX(key)
	if err != nil {
		return Cursor{}, fmt.Errorf("pagetoken: %w", err)
	}
	if len(tok) > maxLen {
		return Cursor{}, ErrInvalid
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) < a.NonceSize()+a.Overhead() {
		return Cursor{}, ErrInvalid
	}
	pt, err := a.Open(nil, b[:a.NonceSize()], b[a.NonceSize():], scopeAD(scope))
	if err != nil {
		return Cursor{}, ErrInvalid
	}
	var c Cursor
	if err := json.Unmarshal(pt, &c); err != nil || c.ID == "" {
		return Cursor{}, ErrInvalid
	}
	return c, nil
}
