package radio

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/flynn/noise"
)

// Prologue names the protocol and its version; both sides mix it into the
// handshake, so a peer speaking anything else fails at once.
const Prologue = "SealedSense radio v1"

// cipherSuite is Noise_*_25519_ChaChaPoly_BLAKE2s.
func cipherSuite() noise.CipherSuite {
	return noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashBLAKE2s)
}

func config(static KeyPair, initiator bool, random io.Reader) noise.Config {
	return noise.Config{
		CipherSuite:           cipherSuite(),
		Random:                random,
		Pattern:               noise.HandshakeIK,
		Initiator:             initiator,
		Prologue:              []byte(Prologue),
		PresharedKeyPlacement: 2,
		StaticKeypair:         static.dh(),
	}
}

// tai64nEpoch is TAI64's label for 1970 plus the 10 s TAI-UTC offset, as
// WireGuard writes it.
const tai64nEpoch = 0x400000000000000a

func appendTAI64N(b []byte, t time.Time) []byte {
	b = binary.BigEndian.AppendUint64(b, tai64nEpoch+uint64(t.Unix()))
	return binary.BigEndian.AppendUint32(b, uint32(t.Nanosecond()))
}

func parseTAI64N(b []byte) (time.Time, error) {
	if len(b) != timestampSize {
		return time.Time{}, fmt.Errorf("%w: timestamp of %d bytes", ErrMalformed, len(b))
	}
	secs := binary.BigEndian.Uint64(b)
	nanos := binary.BigEndian.Uint32(b[8:])
	if secs < tai64nEpoch || secs-tai64nEpoch > 1<<40 || nanos >= 1e9 {
		return time.Time{}, fmt.Errorf("%w: timestamp out of range", ErrMalformed)
	}
	return time.Unix(int64(secs-tai64nEpoch), int64(nanos)).UTC(), nil
}

// CheckTimestamp is the cloud's handshake replay rule: ts must be strictly
// after the last timestamp it accepted from the same sensor.
func CheckTimestamp(lastAccepted, ts time.Time) error {
	if !ts.After(lastAccepted) {
		return ErrStaleTimestamp
	}
	return nil
}

// InitiatorConfig is what a sensor starts a handshake with.
type InitiatorConfig struct {
	Static      KeyPair
	PSK         [32]byte
	CloudPublic [32]byte
	SenderIndex uint32
	Now         time.Time
	Random      io.Reader // nil means crypto/rand; tests fix it for golden vectors
}

// InitiatorHandshake is a sensor's handshake waiting for the response.
type InitiatorHandshake struct {
	hs    *noise.HandshakeState
	index uint32
}

// Initiate starts a handshake and returns the initiation packet to send.
func Initiate(cfg InitiatorConfig) (*InitiatorHandshake, []byte, error) {
	c := config(cfg.Static, true, cfg.Random)
	c.PresharedKey = cfg.PSK[:]
	c.PeerStatic = cfg.CloudPublic[:]
	hs, err := noise.NewHandshakeState(c)
	if err != nil {
		return nil, nil, fmt.Errorf("radio: handshake: %w", err)
	}
	msg, _, _, err := hs.WriteMessage(nil, binary.LittleEndian.AppendUint32(appendTAI64N(nil, cfg.Now), cfg.SenderIndex))
	if err != nil {
		return nil, nil, fmt.Errorf("radio: handshake: %w", err)
	}
	pkt, err := Initiation{SenderIndex: cfg.SenderIndex, Noise: msg}.MarshalBinary()
	if err != nil {
		return nil, nil, err
	}
	return &InitiatorHandshake{hs: hs, index: cfg.SenderIndex}, pkt, nil
}

// SenderIndex is the index the sensor chose; the response is addressed to it.
func (h *InitiatorHandshake) SenderIndex() uint32 { return h.index }

// Finish reads the cloud's response and returns the session. A response
// that fails authentication leaves the handshake able to accept the genuine
// one, so a forged packet cannot abort it.
func (h *InitiatorHandshake) Finish(pkt []byte, now time.Time) (*Session, error) {
	r, err := ParseResponse(pkt)
	if err != nil {
		return nil, err
	}
	if r.ReceiverIndex != h.index {
		return nil, ErrUnknownIndex
	}
	payload, toCloud, toSensor, err := h.hs.ReadMessage(nil, r.Noise)
	if err != nil {
		return nil, fmt.Errorf("%w: handshake response", ErrAuth)
	}
	if len(payload) != 4 || binary.LittleEndian.Uint32(payload) != r.SenderIndex {
		return nil, fmt.Errorf("%w: response sender index differs from its header", ErrAuth)
	}
	if toCloud == nil {
		return nil, fmt.Errorf("%w: handshake incomplete", ErrMalformed)
	}
	return newSession(h.index, r.SenderIndex, toCloud.UnsafeKey(), toSensor.UnsafeKey(), now), nil
}

// ResponderHandshake is the cloud's side after reading message 1.
type ResponderHandshake struct {
	hs        *noise.HandshakeState
	index     uint32
	timestamp time.Time
	peer      [32]byte
}

// ReadInitiation reads message 1 with the cloud's static key. It needs no
// PSK (psk2), so the caller can look the sensor up by PeerStatic first.
func ReadInitiation(cloudStatic KeyPair, pkt []byte, random io.Reader) (*ResponderHandshake, error) {
	in, err := ParseInitiation(pkt)
	if err != nil {
		return nil, err
	}
	hs, err := noise.NewHandshakeState(config(cloudStatic, false, random))
	if err != nil {
		return nil, fmt.Errorf("radio: handshake: %w", err)
	}
	payload, _, _, err := hs.ReadMessage(nil, in.Noise)
	if err != nil {
		return nil, fmt.Errorf("%w: handshake initiation", ErrAuth)
	}
	if len(payload) != timestampSize+4 || binary.LittleEndian.Uint32(payload[timestampSize:]) != in.SenderIndex {
		return nil, fmt.Errorf("%w: initiation sender index differs from its header", ErrAuth)
	}
	t, err := parseTAI64N(payload[:timestampSize])
	if err != nil {
		return nil, err
	}
	r := &ResponderHandshake{hs: hs, index: in.SenderIndex, timestamp: t}
	copy(r.peer[:], hs.PeerStatic())
	return r, nil
}

// PeerStatic is the sensor's static public key, read from message 1.
func (h *ResponderHandshake) PeerStatic() [32]byte { return h.peer }

// SenderIndex is the sensor's index; replies are addressed to it.
func (h *ResponderHandshake) SenderIndex() uint32 { return h.index }

// Timestamp is the sensor's handshake time, for CheckTimestamp.
func (h *ResponderHandshake) Timestamp() time.Time { return h.timestamp }

// Respond completes the handshake with the sensor's PSK and the cloud's own
// receiver index, and returns the response packet and the session. It can
// be called once.
func (h *ResponderHandshake) Respond(psk [32]byte, localIndex uint32, now time.Time) ([]byte, *Session, error) {
	if err := h.hs.SetPresharedKey(psk[:]); err != nil {
		return nil, nil, fmt.Errorf("radio: handshake: %w", err)
	}
	msg, toCloud, toSensor, err := h.hs.WriteMessage(nil, binary.LittleEndian.AppendUint32(nil, localIndex))
	if err != nil {
		return nil, nil, fmt.Errorf("radio: handshake: %w", err)
	}
	pkt, err := Response{SenderIndex: localIndex, ReceiverIndex: h.index, Noise: msg}.MarshalBinary()
	if err != nil {
		return nil, nil, err
	}
	return pkt, newSession(localIndex, h.index, toSensor.UnsafeKey(), toCloud.UnsafeKey(), now), nil
}
