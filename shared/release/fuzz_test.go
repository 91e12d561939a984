package release_test

import (
	"bytes"
	"testing"

	"github.com/sealedsense/sealedsense/shared/release"
)

func FuzzOpen(f *testing.F) {
	k := newKey(f)
	m := manifestFor(testImage(3000), 256)
	good := seal(f, k, m)
	f.Add(good)
	f.Add(append(bytes.Clone(good), 0))
	f.Add(good[:len(good)/2])
	f.Add(signRaw(f, k, encode(f, fields(m))[:20]))
	f.Add([]byte{})
	f.Add([]byte{0xa2, 0x01, 0x40, 0x02, 0x40})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := release.Open(b, trust(k))
		if err != nil {
			if release.ReasonOf(err) == 0 {
				t.Fatalf("error without a refusal reason: %v", err)
			}
			return
		}
		// Only the manifest that was signed opens (its signature bytes may
		// differ: ECDSA signatures are malleable, the manifest is not).
		if got != m {
			t.Fatalf("opened a manifest nobody signed: %+v", got)
		}
	})
}

func FuzzParseChunk(f *testing.F) {
	img := testImage(1000)
	cs, err := release.Split(manifestFor(img, 512), img)
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range cs {
		b, err := c.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xa3, 0x01, 0x50})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := release.ParseChunk(b)
		if err != nil {
			if release.ReasonOf(err) != release.Malformed {
				t.Fatalf("refusal %v is not Malformed", err)
			}
			return
		}
		if len(c.Data) == 0 || len(c.Data) > release.MaxChunk {
			t.Fatalf("parsed a chunk of %d bytes", len(c.Data))
		}
		again, err := c.Marshal()
		if err != nil {
			t.Fatalf("a parsed chunk does not marshal: %v", err)
		}
		c2, err := release.ParseChunk(again)
		if err != nil || c2.ReleaseID != c.ReleaseID || c2.Index != c.Index || !bytes.Equal(c2.Data, c.Data) {
			t.Fatalf("chunk does not round-trip: %+v, %v; want %+v", c2, err, c)
		}
	})
}
