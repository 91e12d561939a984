package release_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/sealedsense/sealedsense/shared/release"
)

func TestParseChunk(t *testing.T) {
	c := release.Chunk{ReleaseID: releaseID, Index: 3, Data: []byte("chunk data")}
	good, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("round trip", func(t *testing.T) {
		got, err := release.ParseChunk(good)
		if err != nil || got.ReleaseID != c.ReleaseID || got.Index != c.Index || !bytes.Equal(got.Data, c.Data) {
			t.Fatalf("ParseChunk(Marshal(c)) = %+v, %v; want %+v", got, err, c)
		}
	})
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"trailing bytes", append(bytes.Clone(good), 0)},
		{"unknown field", encode(t, map[int]any{1: releaseID[:], 2: 3, 3: c.Data, 4: 0})},
		{"short release id", encode(t, map[int]any{1: releaseID[:15], 2: 3, 3: c.Data})},
		{"no release id", encode(t, map[int]any{2: 3, 3: c.Data})},
		{"no data", encode(t, map[int]any{1: releaseID[:], 2: 3})},
		{"data over MaxChunk", encode(t, map[int]any{1: releaseID[:], 2: 3, 3: make([]byte, release.MaxChunk+1)})},
		{"index too wide", encode(t, map[int]any{1: releaseID[:], 2: uint64(1) << 32, 3: c.Data})},
		{"negative index", encode(t, map[int]any{1: releaseID[:], 2: -1, 3: c.Data})},
		{"duplicate key", append([]byte{0xa4}, append(good[1:], 0x02, 0x04)...)},
		{"indefinite-length data", append(bytes.Clone(good[:len(good)-len(c.Data)-1]), 0x5f, 0x41, 'x', 0xff)},
		{"too long", make([]byte, release.MaxChunkWire+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := release.ParseChunk(tc.b)
			if err == nil {
				t.Fatalf("parsed %x as %+v", tc.b, got)
			}
			wantReason(t, err, release.Malformed)
		})
	}
	t.Run("Marshal refuses empty and oversized data", func(t *testing.T) {
		for _, n := range []int{0, release.MaxChunk + 1} {
			_, err := release.Chunk{ReleaseID: releaseID, Data: make([]byte, n)}.Marshal()
			wantReason(t, err, release.Malformed)
		}
	})
}

func TestSplitRefusesAnotherImage(t *testing.T) {
	img := testImage(2000)
	m := manifestFor(img, 512)
	for _, tc := range []struct {
		name string
		img  []byte
		want release.Reason
	}{
		{"another length", img[:1999], release.Malformed},
		{"no image", nil, release.Malformed},
		{"same length, other bytes", append([]byte{img[0] ^ 1}, img[1:]...), release.HashMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := release.Split(m, tc.img)
			wantReason(t, err, tc.want)
		})
	}
}

func TestReason(t *testing.T) {
	seen := map[string]bool{}
	for r := release.BadSignature; r <= release.BootFailed; r++ {
		s := r.String()
		if s == "" || seen[s] || s == fmt.Sprintf("Reason(%d)", uint8(r)) {
			t.Errorf("reason %d has name %q: want a unique name", uint8(r), s)
		}
		seen[s] = true
	}
	if got := release.Reason(200).String(); got != "Reason(200)" {
		t.Errorf("Reason(200).String() = %q", got)
	}
	// Values are reported to the cloud: pin them.
	if release.BadSignature != 1 || release.HashMismatch != 10 || release.Incomplete != 11 || release.BootFailed != 12 {
		t.Errorf("reason values moved: BadSignature %d, HashMismatch %d, Incomplete %d, BootFailed %d",
			release.BadSignature, release.HashMismatch, release.Incomplete, release.BootFailed)
	}
	_, err := release.Chunk{}.Marshal()
	if got := release.ReasonOf(fmt.Errorf("update: %w", err)); got != release.Malformed {
		t.Errorf("ReasonOf(wrapped refusal %v) = %v, want Malformed", err, got)
	}
	if got := release.ReasonOf(errors.New("plain")); got != 0 {
		t.Errorf("ReasonOf(plain error) = %v, want 0", got)
	}
}
