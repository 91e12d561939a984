package radio_test

import (
	"bytes"
	"testing"

	"github.com/sealedsense/sealedsense/shared/radio"
)

func FuzzParse(f *testing.F) {
	for _, p := range goldenPackets(f) {
		f.Add(p)
	}
	f.Add([]byte{})
	f.Add([]byte{9})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Whatever parses re-encodes to the same bytes.
		if p, err := radio.ParseInitiation(b); err == nil {
			if again, err := p.MarshalBinary(); err != nil || !bytes.Equal(again, b) {
				t.Fatalf("initiation does not round-trip: %v", err)
			}
		}
		if p, err := radio.ParseResponse(b); err == nil {
			if again, err := p.MarshalBinary(); err != nil || !bytes.Equal(again, b) {
				t.Fatalf("response does not round-trip: %v", err)
			}
		}
		if p, err := radio.ParseTransport(b); err == nil {
			if again, err := p.MarshalBinary(); err != nil || !bytes.Equal(again, b) {
				t.Fatalf("transport does not round-trip: %v", err)
			}
		}
	})
}

func FuzzReadInitiation(f *testing.F) {
	w := newWorld(f, "golden")
	pkts := goldenPackets(f)
	f.Add(pkts[0])
	f.Fuzz(func(t *testing.T, b []byte) {
		rh, err := radio.ReadInitiation(w.cloud, b, nil)
		if err == nil && !bytes.Equal(b, pkts[0]) {
			t.Fatalf("accepted an initiation nobody sealed (peer %x)", rh.PeerStatic())
		}
	})
}

func FuzzOpen(f *testing.F) {
	w := newWorld(f, "golden")
	_, _, _, _ = w.pair(f)
	pkts := goldenPackets(f)
	for _, p := range pkts {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, cloud, _, _ := w.pair(t)
		pt, _, err := cloud.Open(nil, b, t0)
		if err == nil && !(bytes.Equal(b, pkts[2]) && string(pt) == "uplink payload") {
			t.Fatalf("opened a packet the sensor never sealed: %q", pt)
		}
	})
}

func FuzzReplayWindowUnmarshal(f *testing.F) {
	var w radio.ReplayWindow
	_ = w.Update(77)
	b, _ := w.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var w radio.ReplayWindow
		if w.UnmarshalBinary(b) != nil {
			return
		}
		again, _ := w.MarshalBinary()
		if !bytes.Equal(again, b) {
			t.Fatal("window does not round-trip")
		}
		// A restored window never accepts a counter twice.
		for _, c := range []uint64{0, 1, 63, 64, 5000} {
			first, second := w.Update(c), w.Update(c)
			if first == nil && second == nil {
				t.Fatalf("counter %d accepted twice", c)
			}
		}
	})
}

func FuzzSessionUnmarshal(f *testing.F) {
	w := newWorld(f, "golden")
	s, _, _, _ := w.pair(f)
	b, _ := s.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var s radio.Session
		if s.UnmarshalBinary(b) != nil {
			return
		}
		again, _ := s.MarshalBinary()
		if !bytes.Equal(again, b) {
			t.Fatal("session does not round-trip")
		}
	})
}
