package radio_test

import (
	"errors"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/radio"
)

func TestCodecRejections(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "codecs")
	sensor, _, init, resp := w.pair(t)
	data, _, _ := sensor.Seal(nil, []byte("payload"), t0)

	parsers := map[string]func([]byte) error{
		"initiation": func(b []byte) error { _, err := radio.ParseInitiation(b); return err },
		"response":   func(b []byte) error { _, err := radio.ParseResponse(b); return err },
		"transport":  func(b []byte) error { _, err := radio.ParseTransport(b); return err },
	}
	good := map[string][]byte{"initiation": init, "response": resp, "transport": data}
	for name, parse := range parsers {
		pkt := good[name]
		if err := parse(pkt); err != nil {
			t.Fatalf("%s: the genuine packet fails: %v", name, err)
		}
		for n := range len(pkt) {
			if n >= 13+16 && name == "transport" {
				break // shorter ciphertexts are structurally fine; the AEAD rejects them
			}
			if err := parse(pkt[:n]); !errors.Is(err, radio.ErrTruncated) {
				t.Fatalf("%s truncated to %d bytes: %v, want ErrTruncated", name, n, err)
			}
		}
		if err := parse(append(append([]byte{}, pkt...), make([]byte, radio.MaxPacketSize)...)); !errors.Is(err, radio.ErrOversized) {
			t.Fatalf("%s oversized: %v", name, err)
		}
		unknown := append([]byte{}, pkt...)
		unknown[0] = 9
		if err := parse(unknown); !errors.Is(err, radio.ErrUnknownType) {
			t.Fatalf("%s of unknown type: %v", name, err)
		}
	}
	for name, pkt := range good {
		for other, parse := range parsers {
			if other != name {
				if err := parse(pkt); !errors.Is(err, radio.ErrMalformed) {
					t.Fatalf("%s parsed as %s: %v", name, other, err)
				}
			}
		}
	}
	if err := parsers["initiation"](append(append([]byte{}, init...), 0)); !errors.Is(err, radio.ErrMalformed) {
		t.Fatalf("an initiation with a trailing byte: %v", err)
	}
}

func TestTransportRejections(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "transport-rejections")
	tests := []struct {
		name string
		run  func(sensor, cloud *radio.Session) error
		want error
	}{
		{"replayed counter", func(s, c *radio.Session) error {
			p, _, _ := s.Seal(nil, []byte("a"), t0)
			if _, _, err := c.Open(nil, p, t0); err != nil {
				return err
			}
			_, _, err := c.Open(nil, p, t0)
			return err
		}, radio.ErrReplay},
		{"too old for the window", func(s, c *radio.Session) error {
			old, _, _ := s.Seal(nil, []byte("old"), t0)
			s.SendCounter = radio.WindowSize + 5
			p, _, _ := s.Seal(nil, []byte("new"), t0)
			if _, _, err := c.Open(nil, p, t0); err != nil {
				return err
			}
			_, _, err := c.Open(nil, old, t0)
			return err
		}, radio.ErrTooOld},
		{"expired by age on open", func(s, c *radio.Session) error {
			p, _, _ := s.Seal(nil, []byte("a"), t0)
			_, _, err := c.Open(nil, p, t0.Add(radio.DefaultLimits().MaxAge))
			return err
		}, radio.ErrExpired},
		{"expired by age on seal", func(s, c *radio.Session) error {
			_, _, err := s.Seal(nil, []byte("a"), t0.Add(radio.DefaultLimits().MaxAge+time.Second))
			return err
		}, radio.ErrExpired},
		{"expired by count on seal", func(s, c *radio.Session) error {
			s.Limits.MaxPackets = 2
			for range 2 {
				if _, _, err := s.Seal(nil, []byte("a"), t0); err != nil {
					return err
				}
			}
			_, _, err := s.Seal(nil, []byte("a"), t0)
			return err
		}, radio.ErrExpired},
		{"expired by count on open", func(s, c *radio.Session) error {
			c.Limits.MaxPackets = 3
			s.SendCounter = 3
			p, _, _ := s.Seal(nil, []byte("a"), t0)
			_, _, err := c.Open(nil, p, t0)
			return err
		}, radio.ErrExpired},
		{"wrong receiver index", func(s, c *radio.Session) error {
			p, _, _ := s.Seal(nil, []byte("a"), t0)
			c.LocalIndex++
			_, _, err := c.Open(nil, p, t0)
			return err
		}, radio.ErrUnknownIndex},
		{"oversized payload", func(s, c *radio.Session) error {
			_, _, err := s.Seal(nil, make([]byte, radio.MaxPayload+1), t0)
			return err
		}, radio.ErrOversized},
		{"largest payload fits", func(s, c *radio.Session) error {
			p, _, err := s.Seal(nil, make([]byte, radio.MaxPayload), t0)
			if err != nil {
				return err
			}
			if len(p) != radio.MaxPacketSize {
				return errors.New("largest packet is not MaxPacketSize")
			}
			_, _, err = c.Open(nil, p, t0)
			return err
		}, nil},
		{"zero session", func(s, c *radio.Session) error {
			var z radio.Session
			_, _, err := z.Seal(nil, []byte("a"), t0)
			return err
		}, radio.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sensor, cloud, _, _ := w.pair(t)
			if err := tc.run(sensor, cloud); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSessionUnmarshalRejects(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "unmarshal")
	s, _, _, _ := w.pair(t)
	blob, _ := s.MarshalBinary()
	bad := map[string][]byte{
		"empty":       nil,
		"short":       blob[:len(blob)-1],
		"long":        append(append([]byte{}, blob...), 0),
		"new version": append([]byte{2}, blob[1:]...),
	}
	for name, b := range bad {
		var got radio.Session
		if err := got.UnmarshalBinary(b); !errors.Is(err, radio.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}
