package air_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/sealedsense/sealedsense/shared/air"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []air.Frame{
		{Kind: air.KindReceived, RSSI: -97, SNR: -3.25, Packet: []byte{3, 1, 2}},
		{Kind: air.KindReceived, RSSI: -40, SNR: 12.5, Packet: make([]byte, air.MaxPacket)},
		{Kind: air.KindTransmit, Packet: []byte{2, 9}},
	}
	for _, f := range tests {
		b, err := f.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := air.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.Kind != f.Kind || got.RSSI != f.RSSI || got.SNR != f.SNR || !bytes.Equal(got.Packet, f.Packet) {
			t.Fatalf("round trip: got %+v, want %+v", got, f)
		}
	}
}

func TestRejects(t *testing.T) {
	t.Parallel()
	tests := map[string][]byte{
		"empty":          nil,
		"wrong magic":    {0x00, 1, 0, 0, 0, 0, 3},
		"unknown kind":   {0xA1, 9, 3},
		"short received": {0xA1, 1, 0, 0},
		"no packet":      {0xA1, 2},
		"oversized":      append([]byte{0xA1, 2}, make([]byte, air.MaxPacket+1)...),
	}
	for name, b := range tests {
		if _, err := air.Parse(b); !errors.Is(err, air.ErrMalformed) {
			t.Errorf("%s: Parse = %v, want ErrMalformed", name, err)
		}
	}
	if _, err := (air.Frame{Kind: 7, Packet: []byte{1}}).Append(nil); !errors.Is(err, air.ErrMalformed) {
		t.Errorf("Append of an unknown kind = %v", err)
	}
}

func FuzzParse(f *testing.F) {
	seed, _ := air.Frame{Kind: air.KindReceived, RSSI: -80, SNR: 5, Packet: []byte{3, 0, 0}}.Append(nil)
	f.Add(seed)
	f.Add([]byte{0xA1, 2, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := air.Parse(b)
		if err != nil {
			return
		}
		again, err := fr.Append(nil)
		if err != nil {
			t.Fatalf("a parsed frame does not re-encode: %v", err)
		}
		if fr2, err := air.Parse(again); err != nil || fr2.RSSI != fr.RSSI || !bytes.Equal(fr2.Packet, fr.Packet) {
			t.Fatalf("re-encoding changed the frame")
		}
	})
}
