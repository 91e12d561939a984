// Package custody keeps key material safe: it wraps and unwraps keys through
// Cloud KMS with the documented CRC32C integrity checks, caches unwrapped keys
// briefly, and seals session keys under an envelope key so that steady-state
// traffic costs no KMS calls.
package custody

import (
	"fmt"
	"log/slog"
)

// Secret is key material. Its printed forms are redacted, so that a secret
// passed by mistake to a logger, an error or fmt never reveals its bytes.
type Secret []byte

const redacted = "[redacted]"

// String returns a redaction, never the bytes.
func (Secret) String() string { return redacted }

// GoString returns a redaction, never the bytes, so %#v is safe too.
func (Secret) GoString() string { return redacted }

// Format prints a redaction for every verb (%x and %v included).
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue makes slog print a redaction.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText keeps encoders (JSON, YAML) from writing the bytes.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Clear overwrites the secret in place. Go cannot promise that no copy
// survives elsewhere, but clearing shortens the window for the copies we own.
func (s Secret) Clear() { clear(s) }
