package release

import "fmt"

// Chunk is one numbered piece of a release's image.
type Chunk struct {
	ReleaseID [16]byte
	Index     uint32
	Data      []byte
}

type chunkWire struct {
	ReleaseID []byte `cbor:"1,keyasint"`
	Index     uint32 `cbor:"2,keyasint"`
	Data      []byte `cbor:"3,keyasint"`
}

// Marshal encodes c; its data must be 1..MaxChunk bytes.
func (c Chunk) Marshal() ([]byte, error) {
	if len(c.Data) == 0 || len(c.Data) > MaxChunk {
		return nil, refuse(Malformed, "chunk %d of %d bytes, want 1..%d", c.Index, len(c.Data), MaxChunk)
	}
	b, err := encMode.Marshal(chunkWire{ReleaseID: c.ReleaseID[:], Index: c.Index, Data: c.Data})
	if err != nil {
		return nil, fmt.Errorf("release: encode chunk %d: %w", c.Index, err)
	}
	return b, nil
}

// ParseChunk decodes a chunk strictly. Whether it belongs to a release and
// fits its slot is for Assembly.Add to say.
func ParseChunk(b []byte) (Chunk, error) {
	if len(b) > MaxChunkWire {
		return Chunk{}, refuse(Malformed, "chunk of %d bytes, limit %d", len(b), MaxChunkWire)
	}
	var w chunkWire
	if err := decode(b, &w); err != nil {
		return Chunk{}, refuse(Malformed, "chunk: %w", err)
	}
	if len(w.ReleaseID) != 16 {
		return Chunk{}, refuse(Malformed, "chunk release id of %d bytes, want 16", len(w.ReleaseID))
	}
	if len(w.Data) == 0 || len(w.Data) > MaxChunk {
		return Chunk{}, refuse(Malformed, "chunk %d of %d bytes, want 1..%d", w.Index, len(w.Data), MaxChunk)
	}
	c := Chunk{Index: w.Index, Data: w.Data}
	copy(c.ReleaseID[:], w.ReleaseID)
	return c, nil
}

// Split cuts image into m's chunks, after checking that it is the image m
// signs for. It is the sender's half of Assembly.
func Split(m Manifest, image []byte) ([]Chunk, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if len(image) != int(m.Size) {
		return nil, refuse(Malformed, "image of %d bytes, manifest says %d", len(image), m.Size)
	}
	if sha256Sum(image) != m.ImageSHA256 {
		return nil, refuse(HashMismatch, "image does not match release %x", m.ReleaseID)
	}
	cs := make([]Chunk, m.Chunks())
	for i := range cs {
		off := i * int(m.ChunkSize)
		cs[i] = Chunk{ReleaseID: m.ReleaseID, Index: uint32(i), Data: image[off : off+m.ChunkLen(uint32(i))]}
	}
	return cs, nil
}
