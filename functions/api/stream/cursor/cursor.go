// Package cursor is the order of a project's events on the stream and the
// resume id a client sends back: either an event's own id or the opaque
// position token carried by a ping. It parses untrusted input, so it has
// no dependencies that a fuzz run would need to start.
package cursor

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrInvalid wraps every refusal of a resume id.
var ErrInvalid = errors.New("cursor: invalid resume id")

// tokenPrefix starts every position token. Event ids are base32hex
// (0-9 a-v), so a dot can never begin one and the two kinds of id never
// collide.
const tokenPrefix = "v1."

// MaxLen bounds a resume id; anything longer is refused unread.
const MaxLen = 200

// maxIDLen bounds an event id (ours are 20 characters).
const maxIDLen = 64

// Position is a place in a project's event order: events sort by the
// server time ingest stored them at, then by document id, so two events
// stored in the same microsecond still have a strict order.
type Position struct {
	// At is the event's storedAt (Firestore keeps microseconds).
	At time.Time
	// ID is the event's document id. "" sorts before every id at At, so
	// {At: t, ID: ""} means "every event stored before t".
	ID string
}

// Compare orders positions: -1 if p is before q, 0 if equal, +1 if after.
func (p Position) Compare(q Position) int {
	if c := p.At.Compare(q.At); c != 0 {
		return c
	}
	return strings.Compare(p.ID, q.ID)
}

// IsZero says whether p is the zero position.
func (p Position) IsZero() bool { return p.At.IsZero() && p.ID == "" }

// Max returns the later of p and q.
func (p Position) Max(q Position) Position {
	if q.Compare(p) > 0 {
		return q
	}
	return p
}

// Token is p's opaque form: "v1." and base64url of the big-endian Unix
// nanoseconds followed by the id. It is not secret and not signed: a
// forged token only moves its holder within its own project's events,
// and the server bounds its time.
func (p Position) Token() string {
	b := make([]byte, 8, 8+len(p.ID))
	binary.BigEndian.PutUint64(b, uint64(p.At.UnixNano()))
	b = append(b, p.ID...)
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// Resume is a parsed resume id: exactly one of EventID and Position is
// set.
type Resume struct {
	// EventID is set when the client sent the id of an event it received;
	// the server looks the event up to learn its position.
	EventID string
	// Position is set when the client sent a ping's token.
	Position Position
}

// IsToken says whether r came from a position token.
func (r Resume) IsToken() bool { return r.EventID == "" }

// Parse reads a resume id from a client (the Last-Event-ID header or the
// last_event_id parameter).
func Parse(s string) (Resume, error) {
	if len(s) == 0 || len(s) > MaxLen {
		return Resume{}, fmt.Errorf("%w: length %d", ErrInvalid, len(s))
	}
	rest, isToken := strings.CutPrefix(s, tokenPrefix)
	if !isToken {
		if !ValidID(s) {
			return Resume{}, fmt.Errorf("%w: not an event id", ErrInvalid)
		}
		return Resume{EventID: s}, nil
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	if err != nil || len(b) < 8 {
		return Resume{}, fmt.Errorf("%w: malformed token", ErrInvalid)
	}
	ns := int64(binary.BigEndian.Uint64(b))
	id := string(b[8:])
	if ns <= 0 {
		return Resume{}, fmt.Errorf("%w: token time", ErrInvalid)
	}
	if id != "" && !ValidID(id) {
		return Resume{}, fmt.Errorf("%w: token id", ErrInvalid)
	}
	return Resume{Position: Position{At: time.Unix(0, ns).UTC(), ID: id}}, nil
}

// ValidID says whether s can be an event id: 1 to 64 characters of
// A-Z a-z 0-9 _ and -, which keeps it a legal Firestore document id and
// free of anything a log or header could misread.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > maxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
