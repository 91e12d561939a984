package release

import (
	"crypto/ecdsa"
	"crypto/sha256"
)

// Assembly is what a device keeps while an update is in flight: the
// accepted manifest, the image buffer (Size bytes, allocated once) and which
// chunks have arrived. Chunks may come in any order, more than once, and
// over several sessions: Missing says what to ask for next.
type Assembly struct {
	m       Manifest
	image   []byte
	have    []uint64 // bitmap of chunks received
	missing uint32
}

// Begin opens a signed manifest and accepts it for a device of type
// deviceType running version current.
func Begin(signed []byte, trusted map[uint32]*ecdsa.PublicKey, deviceType string, current uint32) (*Assembly, error) {
	m, err := Open(signed, trusted)
	if err != nil {
		return nil, err
	}
	if err := Accepts(m, deviceType, current); err != nil {
		return nil, err
	}
	n := m.Chunks()
	return &Assembly{m: m, image: make([]byte, m.Size), have: make([]uint64, (n+63)/64), missing: n}, nil
}

// Accepts says whether a device of type deviceType running version current
// may install m.
func Accepts(m Manifest, deviceType string, current uint32) error {
	switch {
	case m.Target != deviceType:
		return refuse(WrongTarget, "release %x is for %q, not %q", m.ReleaseID, m.Target, deviceType)
	case m.Version <= current:
		return refuse(Downgrade, "release %x is version %d, running %d", m.ReleaseID, m.Version, current)
	case current < m.MinFrom:
		return refuse(TooOld, "release %x needs version %d or later, running %d", m.ReleaseID, m.MinFrom, current)
	}
	return nil
}

// Manifest is the accepted manifest.
func (a *Assembly) Manifest() Manifest { return a.m }

// Add stores a chunk. A chunk already held is ignored, so a retransmission
// is harmless; a tampered one shows as HashMismatch in Image.
func (a *Assembly) Add(c Chunk) error {
	if c.ReleaseID != a.m.ReleaseID {
		return refuse(WrongRelease, "chunk %d of release %x, assembling %x", c.Index, c.ReleaseID, a.m.ReleaseID)
	}
	n := a.m.Chunks()
	if c.Index >= n {
		return refuse(BadChunk, "chunk %d of release %x, which has %d", c.Index, a.m.ReleaseID, n)
	}
	if want := a.m.ChunkLen(c.Index); len(c.Data) != want {
		return refuse(BadChunk, "chunk %d of release %x has %d bytes, want %d", c.Index, a.m.ReleaseID, len(c.Data), want)
	}
	word, bit := c.Index/64, uint64(1)<<(c.Index%64)
	if a.have[word]&bit != 0 {
		return nil
	}
	copy(a.image[int(c.Index)*int(a.m.ChunkSize):], c.Data)
	a.have[word] |= bit
	a.missing--
	return nil
}

// Done reports whether every chunk has arrived.
func (a *Assembly) Done() bool { return a.missing == 0 }

// NextMissing is the first chunk index at or after from not yet received,
// and false if there is none: a compact way to ask for the rest.
func (a *Assembly) NextMissing(from uint32) (uint32, bool) {
	for i := from; i < a.m.Chunks(); i++ {
		if a.have[i/64]&(1<<(i%64)) == 0 {
			return i, true
		}
	}
	return 0, false
}

// Missing lists, in order, the chunk indexes not yet received.
func (a *Assembly) Missing() []uint32 {
	out := make([]uint32, 0, a.missing)
	for i, ok := a.NextMissing(0); ok; i, ok = a.NextMissing(i + 1) {
		out = append(out, i)
	}
	return out
}

// Image returns the assembled image once its SHA-256 matches the signed
// one. The slice is the assembly's own buffer. On a mismatch every chunk is
// forgotten, so the same assembly can fetch the image again.
func (a *Assembly) Image() ([]byte, error) {
	if a.missing != 0 {
		return nil, refuse(Incomplete, "release %x is missing %d of %d chunks", a.m.ReleaseID, a.missing, a.m.Chunks())
	}
	if sha256Sum(a.image) != a.m.ImageSHA256 {
		clear(a.have)
		a.missing = a.m.Chunks()
		return nil, refuse(HashMismatch, "release %x: the assembled image is not the signed one", a.m.ReleaseID)
	}
	return a.image, nil
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }
