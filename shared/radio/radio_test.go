package radio_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20"

	"github.com/sealedsense/sealedsense/shared/radio"
)

var t0 = time.Date(2026, 11, 25, 9, 0, 0, 123456789, time.UTC)

// stream is a deterministic byte source for keys and ephemerals, so that
// the same seed always gives the same packets.
func stream(seed string) io.Reader {
	key := sha256.Sum256([]byte(seed))
	c, err := chacha20.NewUnauthenticatedCipher(key[:], make([]byte, chacha20.NonceSize))
	if err != nil {
		panic(err)
	}
	return cipherReader{c}
}

type cipherReader struct{ c *chacha20.Cipher }

func (r cipherReader) Read(p []byte) (int, error) {
	clear(p)
	r.c.XORKeyStream(p, p)
	return len(p), nil
}

type world struct {
	sensor, cloud radio.KeyPair
	psk           [32]byte
}

func newWorld(t testing.TB, seed string) world {
	t.Helper()
	rnd := stream(seed)
	s, err := radio.GenerateKeyPair(rnd)
	if err != nil {
		t.Fatal(err)
	}
	c, err := radio.GenerateKeyPair(rnd)
	if err != nil {
		t.Fatal(err)
	}
	var psk [32]byte
	_, _ = io.ReadFull(rnd, psk[:])
	return world{sensor: s, cloud: c, psk: psk}
}

func (w world) initiator(ts time.Time, rnd io.Reader) radio.InitiatorConfig {
	return radio.InitiatorConfig{Static: w.sensor, PSK: w.psk, CloudPublic: w.cloud.Public, SenderIndex: 0x1111, Now: ts, Random: rnd}
}

// pair runs a full handshake and returns both sides' sessions and packets.
func (w world) pair(t testing.TB) (sensor, cloud *radio.Session, init, resp []byte) {
	t.Helper()
	hs, init, err := radio.Initiate(w.initiator(t0, stream("sensor-eph")))
	if err != nil {
		t.Fatal(err)
	}
	rh, err := radio.ReadInitiation(w.cloud, init, stream("cloud-eph"))
	if err != nil {
		t.Fatal(err)
	}
	if rh.PeerStatic() != w.sensor.Public || rh.SenderIndex() != 0x1111 || !rh.Timestamp().Equal(t0) {
		t.Fatalf("cloud read peer %x index %x ts %v", rh.PeerStatic(), rh.SenderIndex(), rh.Timestamp())
	}
	resp, cloud, err = rh.Respond(w.psk, 0x2222, t0)
	if err != nil {
		t.Fatal(err)
	}
	sensor, err = hs.Finish(resp, t0)
	if err != nil {
		t.Fatal(err)
	}
	return sensor, cloud, init, resp
}

func TestHandshakeAndTransportRoundTrip(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "round-trip")
	sensor, cloud, _, _ := w.pair(t)
	if sensor.LocalIndex != 0x1111 || sensor.RemoteIndex != 0x2222 || cloud.LocalIndex != 0x2222 || cloud.RemoteIndex != 0x1111 {
		t.Fatalf("indexes: sensor %d->%d cloud %d->%d", sensor.LocalIndex, sensor.RemoteIndex, cloud.LocalIndex, cloud.RemoteIndex)
	}
	// Uplinks, delivered out of order.
	var pkts [][]byte
	for i := range 5 {
		p, c, err := sensor.Seal(nil, []byte{byte(i), 'u', 'p'}, t0)
		if err != nil || c != uint64(i) {
			t.Fatalf("Seal %d: counter %d, %v", i, c, err)
		}
		pkts = append(pkts, p)
	}
	for _, i := range []int{3, 0, 4, 1, 2} {
		pt, c, err := cloud.Open(nil, pkts[i], t0)
		if err != nil || c != uint64(i) || !bytes.Equal(pt, []byte{byte(i), 'u', 'p'}) {
			t.Fatalf("Open of packet %d: %q, %d, %v", i, pt, c, err)
		}
	}
	// A reply the other way.
	p, _, err := cloud.Seal(nil, []byte("ack"), t0)
	if err != nil {
		t.Fatal(err)
	}
	if pt, _, err := sensor.Open(nil, p, t0); err != nil || string(pt) != "ack" {
		t.Fatalf("reply: %q %v", pt, err)
	}
	// The session survives serialisation mid-stream, window included.
	blob, err := cloud.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var restored radio.Session
	if err := restored.UnmarshalBinary(blob); err != nil {
		t.Fatal(err)
	}
	if _, _, err := restored.Open(nil, pkts[2], t0); !errors.Is(err, radio.ErrReplay) {
		t.Fatalf("a restored session accepted a replay: %v", err)
	}
	p, _, _ = sensor.Seal(nil, []byte("more"), t0)
	if pt, _, err := restored.Open(nil, p, t0); err != nil || string(pt) != "more" {
		t.Fatalf("restored session: %q %v", pt, err)
	}
}

func TestHandshakeRejections(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "rejections")

	t.Run("wrong PSK at the sensor", func(t *testing.T) {
		bad := w
		bad.psk[0] ^= 1
		hs, init, err := radio.Initiate(bad.initiator(t0, nil))
		if err != nil {
			t.Fatal(err)
		}
		rh, err := radio.ReadInitiation(w.cloud, init, nil)
		if err != nil {
			t.Fatalf("psk2 must let the cloud read message 1 without the PSK: %v", err)
		}
		resp, _, err := rh.Respond(w.psk, 7, t0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := hs.Finish(resp, t0); !errors.Is(err, radio.ErrAuth) {
			t.Fatalf("Finish = %v, want ErrAuth", err)
		}
	})
	t.Run("wrong PSK at the cloud", func(t *testing.T) {
		hs, init, _ := radio.Initiate(w.initiator(t0, nil))
		rh, err := radio.ReadInitiation(w.cloud, init, nil)
		if err != nil {
			t.Fatal(err)
		}
		other := w.psk
		other[31] ^= 0x80
		resp, cloud, err := rh.Respond(other, 7, t0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := hs.Finish(resp, t0); !errors.Is(err, radio.ErrAuth) {
			t.Fatalf("sensor accepted a response made with another PSK: %v", err)
		}
		// Even a sensor that ignored that could not talk to this session.
		_, sensorSide, _, _ := w.pair(t)
		pkt, _, _ := sensorSide.Seal(nil, []byte("x"), t0)
		cloud.LocalIndex = sensorSide.RemoteIndex
		if _, _, err := cloud.Open(nil, pkt, t0); !errors.Is(err, radio.ErrAuth) {
			t.Fatalf("Open with keys from another PSK = %v, want ErrAuth", err)
		}
	})
	t.Run("sensor holds a wrong cloud key", func(t *testing.T) {
		bad := w
		bad.cloud.Public[0] ^= 1
		_, init, err := radio.Initiate(bad.initiator(t0, nil))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := radio.ReadInitiation(w.cloud, init, nil); !errors.Is(err, radio.ErrAuth) {
			t.Fatalf("ReadInitiation = %v, want ErrAuth", err)
		}
	})
	t.Run("unknown sensor is visible to the caller", func(t *testing.T) {
		stranger := newWorld(t, "stranger")
		stranger.cloud = w.cloud
		_, init, _ := radio.Initiate(stranger.initiator(t0, nil))
		rh, err := radio.ReadInitiation(w.cloud, init, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rh.PeerStatic() == w.sensor.Public {
			t.Fatal("a stranger's static key read as the known sensor's")
		}
	})
	t.Run("replayed handshake", func(t *testing.T) {
		tests := []struct {
			name string
			ts   time.Time
			want error
		}{
			{"older", t0.Add(-time.Second), radio.ErrStaleTimestamp},
			{"equal", t0, radio.ErrStaleTimestamp},
			{"a nanosecond newer", t0.Add(time.Nanosecond), nil},
		}
		for _, tc := range tests {
			_, init, _ := radio.Initiate(w.initiator(tc.ts, nil))
			rh, err := radio.ReadInitiation(w.cloud, init, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := radio.CheckTimestamp(t0, rh.Timestamp()); !errors.Is(err, tc.want) {
				t.Errorf("%s: CheckTimestamp = %v, want %v", tc.name, err, tc.want)
			}
		}
	})
	t.Run("response for another index", func(t *testing.T) {
		hs, init, _ := radio.Initiate(w.initiator(t0, nil))
		rh, _ := radio.ReadInitiation(w.cloud, init, nil)
		resp, _, _ := rh.Respond(w.psk, 7, t0)
		resp[5] ^= 1 // receiver index
		if _, err := hs.Finish(resp, t0); !errors.Is(err, radio.ErrUnknownIndex) {
			t.Fatalf("Finish = %v, want ErrUnknownIndex", err)
		}
	})
}

// TestEveryBitFlipIsRejected flips each bit of each packet type in turn.
func TestEveryBitFlipIsRejected(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "bit-flips")
	_, _, init, resp := w.pair(t)

	for i := range len(init) * 8 {
		if _, err := radio.ReadInitiation(w.cloud, flip(init, i), nil); err == nil {
			t.Fatalf("initiation bit %d: accepted", i)
		}
	}
	for i := range len(resp) * 8 {
		hs, _, _ := radio.Initiate(w.initiator(t0, stream("sensor-eph")))
		if _, err := hs.Finish(flip(resp, i), t0); err == nil {
			t.Fatalf("response bit %d: accepted", i)
		}
	}
	sensor, cloud, _, _ := w.pair(t)
	pkt, _, _ := sensor.Seal(nil, bytes.Repeat([]byte{0x42}, 64), t0)
	for i := range len(pkt) * 8 {
		if _, _, err := cloud.Open(nil, flip(pkt, i), t0); err == nil {
			t.Fatalf("transport bit %d: accepted", i)
		}
	}
	if _, _, err := cloud.Open(nil, pkt, t0); err != nil {
		t.Fatalf("forged packets moved the window: the genuine one fails with %v", err)
	}
}

func flip(b []byte, bit int) []byte {
	c := bytes.Clone(b)
	c[bit/8] ^= 1 << (bit % 8)
	return c
}
