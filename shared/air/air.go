// Package air frames radio packets on the simulated radio: the UDP datagrams
// between the sensor simulator's radio medium and the connectors, carrying
// the reception metadata a real radio front end would report.
package air

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Frame kinds.
const (
	// KindReceived is a packet a connector heard, with RSSI and SNR.
	KindReceived byte = 1
	// KindTransmit is a packet a connector puts on the air; the medium
	// delivers it to every sensor in that connector's range.
	KindTransmit byte = 2
)

const (
	magic = 0xA1
	// MaxPacket matches the radio protocol's largest packet.
	MaxPacket      = 1024
	receivedHeader = 2 + 2 + 2
	transmitHeader = 2
)

// ErrMalformed means the datagram is not an air frame.
var ErrMalformed = errors.New("air: malformed frame")

// Frame is one datagram.
type Frame struct {
	Kind   byte
	RSSI   float64 // dBm, whole numbers on the air
	SNR    float64 // dB, in hundredths on the air
	Packet []byte
}

// Append encodes f onto dst.
func (f Frame) Append(dst []byte) ([]byte, error) {
	if len(f.Packet) == 0 || len(f.Packet) > MaxPacket {
		return nil, fmt.Errorf("%w: packet of %d bytes", ErrMalformed, len(f.Packet))
	}
	switch f.Kind {
	case KindReceived:
		dst = append(dst, magic, KindReceived)
		dst = binary.LittleEndian.AppendUint16(dst, uint16(int16(f.RSSI)))
		dst = binary.LittleEndian.AppendUint16(dst, uint16(int16(f.SNR*100)))
	case KindTransmit:
		dst = append(dst, magic, KindTransmit)
	default:
		return nil, fmt.Errorf("%w: kind %d", ErrMalformed, f.Kind)
	}
	return append(dst, f.Packet...), nil
}

// Parse decodes a datagram. The packet aliases b.
func Parse(b []byte) (Frame, error) {
	if len(b) < 2 || b[0] != magic {
		return Frame{}, fmt.Errorf("%w: no header", ErrMalformed)
	}
	var f Frame
	f.Kind = b[1]
	switch f.Kind {
	case KindReceived:
		if len(b) < receivedHeader {
			return Frame{}, fmt.Errorf("%w: short", ErrMalformed)
		}
		f.RSSI = float64(int16(binary.LittleEndian.Uint16(b[2:])))
		f.SNR = float64(int16(binary.LittleEndian.Uint16(b[4:]))) / 100
		f.Packet = b[receivedHeader:]
	case KindTransmit:
		f.Packet = b[transmitHeader:]
	default:
		return Frame{}, fmt.Errorf("%w: kind %d", ErrMalformed, f.Kind)
	}
	if len(f.Packet) == 0 || len(f.Packet) > MaxPacket {
		return Frame{}, fmt.Errorf("%w: packet of %d bytes", ErrMalformed, len(f.Packet))
	}
	return f, nil
}
