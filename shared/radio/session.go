package radio

import (
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// Limits bound a session. When either is reached the session is expired and
// the sensor starts a new handshake, which bounds what one compromised
// session key exposes and keeps counters far from wrapping.
type Limits struct {
	MaxAge     time.Duration
	MaxPackets uint64 // in each direction
}

// DefaultLimits give a sensor one handshake a day: a handshake costs two
// radio packets and a KMS call, a day keeps the window a stolen session key
// opens short, and 2^20 packets is a hundred times what a sensor reporting
// every ten seconds sends in a day.
func DefaultLimits() Limits { return Limits{MaxAge: 24 * time.Hour, MaxPackets: 1 << 20} }

// Session is one side's state of an established session. It is not safe
// for concurrent use. MarshalBinary includes the keys: callers store it only
// envelope-encrypted.
type Session struct {
	LocalIndex  uint32 // this side's index: incoming packets carry it
	RemoteIndex uint32 // the peer's index: outgoing packets carry it
	Created     time.Time
	SendCounter uint64 // the next counter Seal uses
	Received    uint64 // packets accepted
	Window      ReplayWindow
	// Limits is configuration, not state: it is not serialised.
	Limits Limits

	sendKey, recvKey [32]byte
	send, recv       cipher.AEAD
	nonce            [chacha20poly1305.NonceSize]byte
}

func newSession(local, remote uint32, sendKey, recvKey [32]byte, now time.Time) *Session {
	s := &Session{LocalIndex: local, RemoteIndex: remote, Created: now, Limits: DefaultLimits(), sendKey: sendKey, recvKey: recvKey}
	s.initAEAD()
	return s
}

func (s *Session) initAEAD() {
	// Key sizes are fixed at 32 bytes, so New cannot fail.
	s.send, _ = chacha20poly1305.New(s.sendKey[:])
	s.recv, _ = chacha20poly1305.New(s.recvKey[:])
}

// Expired reports whether the session's age limit has passed.
func (s *Session) Expired(now time.Time) bool {
	return now.Sub(s.Created) >= s.Limits.MaxAge
}

// Seal encrypts plaintext into a transport packet appended to dst, and
// returns the packet and the counter it used.
func (s *Session) Seal(dst, plaintext []byte, now time.Time) ([]byte, uint64, error) {
	if s.send == nil {
		return nil, 0, fmt.Errorf("%w: no keys", ErrMalformed)
	}
	if s.Expired(now) || s.SendCounter >= s.Limits.MaxPackets {
		return nil, 0, ErrExpired
	}
	if len(plaintext) > MaxPayload {
		return nil, 0, fmt.Errorf("%w: payload of %d bytes, limit %d", ErrOversized, len(plaintext), MaxPayload)
	}
	counter := s.SendCounter
	s.SendCounter++
	start := len(dst)
	dst = appendTransportHeader(dst, s.RemoteIndex, counter)
	binary.LittleEndian.PutUint64(s.nonce[4:], counter)
	dst = s.send.Seal(dst, s.nonce[:], plaintext, dst[start:start+TransportHeaderSize])
	return dst, counter, nil
}

// Open authenticates and decrypts a transport packet, appending the
// plaintext to dst. The replay window is checked before decryption and
// updated only after it, so a forged packet can never move it.
func (s *Session) Open(dst, pkt []byte, now time.Time) ([]byte, uint64, error) {
	if s.recv == nil {
		return nil, 0, fmt.Errorf("%w: no keys", ErrMalformed)
	}
	t, err := ParseTransport(pkt)
	if err != nil {
		return nil, 0, err
	}
	switch {
	case t.ReceiverIndex != s.LocalIndex:
		return nil, 0, ErrUnknownIndex
	case s.Expired(now), t.Counter >= s.Limits.MaxPackets:
		return nil, 0, ErrExpired
	}
	if err := s.Window.Check(t.Counter); err != nil {
		return nil, 0, err
	}
	binary.LittleEndian.PutUint64(s.nonce[4:], t.Counter)
	out, err := s.recv.Open(dst, s.nonce[:], t.Ciphertext, pkt[:TransportHeaderSize])
	if err != nil {
		return nil, 0, ErrAuth
	}
	_ = s.Window.Update(t.Counter) // Check passed and nothing ran in between
	s.Received++
	return out, t.Counter, nil
}

const (
	sessionVersion = 1
	sessionSize    = 1 + 4 + 4 + 32 + 32 + 8 + 8 + 8 + replayWindowSize
)

// MarshalBinary encodes the whole session, keys included.
func (s *Session) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, sessionSize)
	b = append(b, sessionVersion)
	b = binary.LittleEndian.AppendUint32(b, s.LocalIndex)
	b = binary.LittleEndian.AppendUint32(b, s.RemoteIndex)
	b = append(b, s.sendKey[:]...)
	b = append(b, s.recvKey[:]...)
	b = binary.LittleEndian.AppendUint64(b, uint64(s.Created.UnixNano()))
	b = binary.LittleEndian.AppendUint64(b, s.SendCounter)
	b = binary.LittleEndian.AppendUint64(b, s.Received)
	return s.Window.AppendBinary(b)
}

// UnmarshalBinary restores a session encoded by MarshalBinary, with
// DefaultLimits; callers set Limits after if they use others.
func (s *Session) UnmarshalBinary(b []byte) error {
	if len(b) != sessionSize || b[0] != sessionVersion {
		return fmt.Errorf("%w: session encoding", ErrMalformed)
	}
	var n Session
	n.LocalIndex = binary.LittleEndian.Uint32(b[1:])
	n.RemoteIndex = binary.LittleEndian.Uint32(b[5:])
	copy(n.sendKey[:], b[9:41])
	copy(n.recvKey[:], b[41:73])
	n.Created = time.Unix(0, int64(binary.LittleEndian.Uint64(b[73:]))).UTC()
	n.SendCounter = binary.LittleEndian.Uint64(b[81:])
	n.Received = binary.LittleEndian.Uint64(b[89:])
	if err := n.Window.UnmarshalBinary(b[97:]); err != nil {
		return err
	}
	n.Limits = DefaultLimits()
	n.initAEAD()
	*s = n
	return nil
}

// String never shows keys.
func (s *Session) String() string {
	return fmt.Sprintf("radio session %d->%d created %s (keys redacted)", s.LocalIndex, s.RemoteIndex, s.Created.Format(time.RFC3339))
}
