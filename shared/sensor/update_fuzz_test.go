package sensor

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"testing"

	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/release"
)

// FuzzUpdateOffer feeds a sensor's updater arbitrary offers, in any of its
// states: it must never panic, always owe the cloud a valid report, and
// never run a version but its own or the signed release's, which only
// the signed image installs.
func FuzzUpdateOffer(f *testing.F) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	trusted := map[uint32]*ecdsa.PublicKey{1: &k.PublicKey}
	img := bytes.Repeat([]byte("sealed sensor image "), 5) // 100 bytes: two 64-byte chunks
	m := release.Manifest{Target: "temperature", Version: 7, MinFrom: 1, Size: uint32(len(img)), ChunkSize: 64,
		ImageSHA256: sha256.Sum256(img), ReleaseID: [16]byte{1, 2, 3}, KeyVersion: 1}
	sign := func(d [32]byte) ([]byte, error) { return ecdsa.SignASN1(rand.Reader, k, d[:]) }
	signed, err := release.Seal(m, sign)
	if err != nil {
		f.Fatal(err)
	}
	chunks, err := release.Split(m, img)
	if err != nil {
		f.Fatal(err)
	}
	wire := make([][]byte, len(chunks))
	for i, c := range chunks {
		if wire[i], err = c.Marshal(); err != nil {
			f.Fatal(err)
		}
	}
	older := m
	older.Version = 2
	downgrade, err := release.Seal(older, sign)
	if err != nil {
		f.Fatal(err)
	}
	// setup: bit 0 offers the manifest first, bit 1 chunk 0 too; bit 2
	// offers b as a manifest rather than a chunk.
	for _, seed := range []struct {
		setup uint8
		b     []byte
	}{
		{0b000, wire[0]}, {0b001, wire[1]}, {0b011, wire[1]}, {0b011, wire[0]},
		{0b100, signed}, {0b101, signed}, {0b111, downgrade}, {0b100, signed[:len(signed)-1]},
		{0b001, []byte{0xa0}}, {0b011, append(bytes.Clone(wire[1]), 0)},
	} {
		f.Add(seed.setup, seed.b)
	}
	f.Fuzz(func(t *testing.T, setup uint8, b []byte) {
		u := newUpdater(trusted, "temperature", 3)
		if setup&1 != 0 {
			u.offer(payload.UpdateOffer{Manifest: signed})
			if setup&2 != 0 {
				u.offer(payload.UpdateOffer{Chunk: wire[0]})
			}
		}
		o := payload.UpdateOffer{Chunk: b}
		if setup&4 != 0 {
			o = payload.UpdateOffer{Manifest: b}
		}
		if o.Validate() != nil {
			return // the reply would not have decoded
		}
		restart := u.offer(o)
		if err := u.report().Validate(); err != nil {
			t.Fatalf("the report %+v is invalid: %v", u.report(), err)
		}
		if p := u.pending(); p == nil || p.Validate() != nil {
			t.Fatalf("after an offer the report due is %+v", p)
		}
		switch u.version {
		case 3:
		case 7:
			c, err := release.ParseChunk(b)
			if !restart || setup&7 != 3 || err != nil || !bytes.Equal(c.Data, chunks[1].Data) {
				t.Fatalf("version 7 installed from setup %03b and %x", setup, b)
			}
		default:
			t.Fatalf("runs version %d", u.version)
		}
	})
}
