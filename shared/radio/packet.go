package radio

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Packet types.
const (
	TypeInitiation byte = 1
	TypeResponse   byte = 2
	TypeTransport  byte = 3
)

// Sizes on the wire.
const (
	// MaxPacketSize is the largest packet; anything larger is refused
	// before it is parsed.
	MaxPacketSize = 1024
	// TransportHeaderSize is type, receiver index and counter.
	TransportHeaderSize = 1 + 4 + 8
	// TransportOverhead is what sealing adds to a payload.
	TransportOverhead = TransportHeaderSize + tagSize
	// MaxPayload is the largest plaintext a transport packet carries.
	MaxPayload = MaxPacketSize - TransportOverhead

	tagSize         = 16
	timestampSize   = 12
	noiseMsg1Size   = 32 + (32 + tagSize) + (timestampSize + 4 + tagSize)
	noiseMsg2Size   = 32 + (4 + tagSize)
	initiationSize  = 1 + 4 + noiseMsg1Size
	responseSize    = 1 + 4 + 4 + noiseMsg2Size
	minTransportLen = TransportHeaderSize + tagSize
)

// Errors. Every rejection wraps one of them; none carries key material or
// plaintext.
var (
	ErrTruncated      = errors.New("radio: packet truncated")
	ErrOversized      = errors.New("radio: packet too large")
	ErrUnknownType    = errors.New("radio: unknown packet type")
	ErrMalformed      = errors.New("radio: malformed packet")
	ErrAuth           = errors.New("radio: authentication failed")
	ErrReplay         = errors.New("radio: counter already seen")
	ErrTooOld         = errors.New("radio: counter too old for the replay window")
	ErrExpired        = errors.New("radio: session expired")
	ErrStaleTimestamp = errors.New("radio: handshake timestamp not newer than the last accepted")
	ErrUnknownIndex   = errors.New("radio: packet for another receiver index")
)

// Type returns a packet's type after the size checks every packet gets.
func Type(pkt []byte) (byte, error) {
	switch {
	case len(pkt) == 0:
		return 0, ErrTruncated
	case len(pkt) > MaxPacketSize:
		return 0, fmt.Errorf("%w: %d bytes", ErrOversized, len(pkt))
	}
	switch t := pkt[0]; t {
	case TypeInitiation, TypeResponse, TypeTransport:
		return t, nil
	default:
		return 0, fmt.Errorf("%w: %d", ErrUnknownType, t)
	}
}

func expect(pkt []byte, want byte) error {
	t, err := Type(pkt)
	if err != nil {
		return err
	}
	if t != want {
		return fmt.Errorf("%w: type %d, want %d", ErrMalformed, t, want)
	}
	return nil
}

// Initiation is handshake message 1, from the sensor.
type Initiation struct {
	SenderIndex uint32
	Noise       []byte
}

// AppendBinary appends the packet to b.
func (p Initiation) AppendBinary(b []byte) ([]byte, error) {
	if len(p.Noise) != noiseMsg1Size {
		return nil, fmt.Errorf("%w: noise message 1 of %d bytes", ErrMalformed, len(p.Noise))
	}
	b = append(b, TypeInitiation)
	b = binary.LittleEndian.AppendUint32(b, p.SenderIndex)
	return append(b, p.Noise...), nil
}

// MarshalBinary encodes the packet.
func (p Initiation) MarshalBinary() ([]byte, error) { return p.AppendBinary(nil) }

// ParseInitiation decodes an initiation; Noise aliases pkt.
func ParseInitiation(pkt []byte) (Initiation, error) {
	if err := expect(pkt, TypeInitiation); err != nil {
		return Initiation{}, err
	}
	if len(pkt) != initiationSize {
		return Initiation{}, sizeErr(len(pkt), initiationSize)
	}
	return Initiation{SenderIndex: binary.LittleEndian.Uint32(pkt[1:]), Noise: pkt[5:]}, nil
}

// Response is handshake message 2, from the cloud.
type Response struct {
	SenderIndex, ReceiverIndex uint32
	Noise                      []byte
}

// AppendBinary appends the packet to b.
func (p Response) AppendBinary(b []byte) ([]byte, error) {
	if len(p.Noise) != noiseMsg2Size {
		return nil, fmt.Errorf("%w: noise message 2 of %d bytes", ErrMalformed, len(p.Noise))
	}
	b = append(b, TypeResponse)
	b = binary.LittleEndian.AppendUint32(b, p.SenderIndex)
	b = binary.LittleEndian.AppendUint32(b, p.ReceiverIndex)
	return append(b, p.Noise...), nil
}

// MarshalBinary encodes the packet.
func (p Response) MarshalBinary() ([]byte, error) { return p.AppendBinary(nil) }

// ParseResponse decodes a response; Noise aliases pkt.
func ParseResponse(pkt []byte) (Response, error) {
	if err := expect(pkt, TypeResponse); err != nil {
		return Response{}, err
	}
	if len(pkt) != responseSize {
		return Response{}, sizeErr(len(pkt), responseSize)
	}
	return Response{
		SenderIndex:   binary.LittleEndian.Uint32(pkt[1:]),
		ReceiverIndex: binary.LittleEndian.Uint32(pkt[5:]),
		Noise:         pkt[9:],
	}, nil
}

// Transport is a data packet in either direction.
type Transport struct {
	ReceiverIndex uint32
	Counter       uint64
	Ciphertext    []byte
}

// AppendBinary appends the packet to b.
func (p Transport) AppendBinary(b []byte) ([]byte, error) {
	if len(p.Ciphertext) < tagSize || TransportHeaderSize+len(p.Ciphertext) > MaxPacketSize {
		return nil, fmt.Errorf("%w: ciphertext of %d bytes", ErrMalformed, len(p.Ciphertext))
	}
	b = appendTransportHeader(b, p.ReceiverIndex, p.Counter)
	return append(b, p.Ciphertext...), nil
}

// MarshalBinary encodes the packet.
func (p Transport) MarshalBinary() ([]byte, error) { return p.AppendBinary(nil) }

func appendTransportHeader(b []byte, index uint32, counter uint64) []byte {
	b = append(b, TypeTransport)
	b = binary.LittleEndian.AppendUint32(b, index)
	return binary.LittleEndian.AppendUint64(b, counter)
}

// ParseTransport decodes a transport packet's header; Ciphertext aliases pkt.
func ParseTransport(pkt []byte) (Transport, error) {
	if err := expect(pkt, TypeTransport); err != nil {
		return Transport{}, err
	}
	if len(pkt) < minTransportLen {
		return Transport{}, fmt.Errorf("%w: %d bytes, need at least %d", ErrTruncated, len(pkt), minTransportLen)
	}
	return Transport{
		ReceiverIndex: binary.LittleEndian.Uint32(pkt[1:]),
		Counter:       binary.LittleEndian.Uint64(pkt[5:]),
		Ciphertext:    pkt[TransportHeaderSize:],
	}, nil
}

func sizeErr(got, want int) error {
	if got < want {
		return fmt.Errorf("%w: %d bytes, want %d", ErrTruncated, got, want)
	}
	return fmt.Errorf("%w: %d bytes, want %d", ErrMalformed, got, want)
}
