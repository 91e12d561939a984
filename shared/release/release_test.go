package release_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/sealedsense/sealedsense/shared/release"
)

const keyVersion = 2

var releaseID = [16]byte{0x5e, 0xa1, 0xed, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// signer signs a digest as Cloud KMS does for EC_SIGN_P256_SHA256.
func signer(k *ecdsa.PrivateKey) func([32]byte) ([]byte, error) {
	return func(d [32]byte) ([]byte, error) { return ecdsa.SignASN1(rand.Reader, k, d[:]) }
}

func trust(k *ecdsa.PrivateKey) map[uint32]*ecdsa.PublicKey {
	return map[uint32]*ecdsa.PublicKey{keyVersion: &k.PublicKey}
}

// testImage is n reproducible bytes.
func testImage(n int) []byte {
	r := mrand.NewChaCha8([32]byte{'i', 'm', 'g'})
	b := make([]byte, n)
	_, _ = r.Read(b)
	return b
}

func manifestFor(img []byte, chunk uint16) release.Manifest {
	return release.Manifest{
		Target: "temperature", Version: 7, MinFrom: 3, Size: uint32(len(img)), ChunkSize: chunk,
		ImageSHA256: sha256.Sum256(img), ReleaseID: releaseID, KeyVersion: keyVersion,
	}
}

func seal(t testing.TB, k *ecdsa.PrivateKey, m release.Manifest) []byte {
	t.Helper()
	b, err := release.Seal(m, signer(k))
	if err != nil {
		t.Fatalf("Seal(%+v): %v", m, err)
	}
	return b
}

// fields is m as the wire map, for tests that write what Seal would refuse.
func fields(m release.Manifest) map[int]any {
	return map[int]any{1: m.Target, 2: m.Version, 3: m.MinFrom, 4: m.Size, 5: m.ChunkSize,
		6: m.ImageSHA256[:], 7: m.ReleaseID[:], 8: m.KeyVersion}
}

func encode(t testing.TB, v any) []byte {
	t.Helper()
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		t.Fatal(err)
	}
	b, err := em.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signRaw signs body bytes as they are, bypassing Seal's checks.
func signRaw(t testing.TB, k *ecdsa.PrivateKey, body []byte) []byte {
	t.Helper()
	d := release.Digest(body)
	sig, err := ecdsa.SignASN1(rand.Reader, k, d[:])
	if err != nil {
		t.Fatal(err)
	}
	return encode(t, map[int]any{1: body, 2: sig})
}

func wantReason(t *testing.T, err error, want release.Reason) {
	t.Helper()
	var r *release.Refusal
	if !errors.As(err, &r) {
		t.Fatalf("got error %v, want a *Refusal with reason %v", err, want)
	}
	if r.Reason != want {
		t.Fatalf("got reason %v (%v), want %v", r.Reason, err, want)
	}
}

func TestAssembleHappyPath(t *testing.T) {
	for _, tc := range []struct {
		name  string
		size  int
		chunk uint16
	}{
		{"64KiB in 512-byte chunks", 64 << 10, 512},
		{"short last chunk", 64<<10 + 100, 512},
		{"one byte", 1, release.MinChunk},
		{"largest image, smallest chunks", release.MaxImage, release.MinChunk},
		{"largest chunks", 10_000, release.MaxChunk},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newKey(t)
			img := testImage(tc.size)
			m := manifestFor(img, tc.chunk)
			a, err := release.Begin(seal(t, k, m), trust(k), "temperature", 5)
			if err != nil {
				t.Fatalf("Begin: %v", err)
			}
			if a.Manifest() != m {
				t.Fatalf("accepted manifest %+v, want %+v", a.Manifest(), m)
			}
			chunks, err := release.Split(m, img)
			if err != nil {
				t.Fatalf("Split: %v", err)
			}
			if want := (tc.size + int(tc.chunk) - 1) / int(tc.chunk); len(chunks) != want || int(m.Chunks()) != want {
				t.Fatalf("%d chunks, manifest says %d, want %d", len(chunks), m.Chunks(), want)
			}
			if got := len(a.Missing()); got != len(chunks) {
				t.Fatalf("before any chunk: %d missing, want %d", got, len(chunks))
			}
			// Out of order, over the wire, and every third one twice.
			order := mrand.New(mrand.NewPCG(1, 2)).Perm(len(chunks))
			for n, i := range order {
				if a.Done() {
					t.Fatalf("done after %d of %d chunks", n, len(chunks))
				}
				for range 1 + btoi(n%3 == 0) {
					wire, err := chunks[i].Marshal()
					if err != nil {
						t.Fatalf("chunk %d: Marshal: %v", i, err)
					}
					c, err := release.ParseChunk(wire)
					if err != nil {
						t.Fatalf("chunk %d: ParseChunk: %v", i, err)
					}
					if err := a.Add(c); err != nil {
						t.Fatalf("Add chunk %d: %v", i, err)
					}
				}
				if got, want := len(a.Missing()), len(chunks)-n-1; got != want {
					t.Fatalf("after %d chunks: %d missing, want %d", n+1, got, want)
				}
			}
			if !a.Done() {
				t.Fatalf("not done; missing %v", a.Missing())
			}
			got, err := a.Image()
			if err != nil {
				t.Fatalf("Image: %v", err)
			}
			if !bytes.Equal(got, img) {
				t.Fatalf("assembled image differs from the released one (%d vs %d bytes)", len(got), len(img))
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestBeginRefusals(t *testing.T) {
	k, other := newKey(t), newKey(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	m := manifestFor(testImage(4096), 512)
	good := seal(t, k, m)
	with := func(change func(*release.Manifest)) []byte {
		m := m
		change(&m)
		return signRaw(t, k, encode(t, fields(m)))
	}
	withField := func(key int, v any) []byte {
		f := fields(m)
		if v == nil {
			delete(f, key)
		} else {
			f[key] = v
		}
		return signRaw(t, k, encode(t, f))
	}
	var outer map[int][]byte
	if err := cbor.Unmarshal(good, &outer); err != nil {
		t.Fatal(err)
	}
	body, sig := outer[1], outer[2]
	flipped := bytes.Clone(body)
	flipped[bytes.Index(flipped, m.ImageSHA256[:])] ^= 1
	badSig := bytes.Clone(sig)
	badSig[len(badSig)-1] ^= 1
	type reversed struct { // keys in descending order: not deterministic
		KeyVersion uint32 `cbor:"8,keyasint"`
		ReleaseID  []byte `cbor:"7,keyasint"`
		Hash       []byte `cbor:"6,keyasint"`
		ChunkSize  uint16 `cbor:"5,keyasint"`
		Size       uint32 `cbor:"4,keyasint"`
		MinFrom    uint32 `cbor:"3,keyasint"`
		Version    uint32 `cbor:"2,keyasint"`
		Target     string `cbor:"1,keyasint"`
	}
	unsorted, err := cbor.Marshal(reversed{m.KeyVersion, m.ReleaseID[:], m.ImageSHA256[:], m.ChunkSize, m.Size, m.MinFrom, m.Version, m.Target})
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		signed  []byte
		trusted map[uint32]*ecdsa.PublicKey
		device  string
		current uint32
		want    release.Reason
	}{
		{"signed by another key", seal(t, other, m), nil, "", 0, release.BadSignature},
		{"body changed after signing", encode(t, map[int]any{1: flipped, 2: sig}), nil, "", 0, release.BadSignature},
		{"signature changed", encode(t, map[int]any{1: body, 2: badSig}), nil, "", 0, release.BadSignature},
		{"key version not trusted", good, map[uint32]*ecdsa.PublicKey{keyVersion + 1: &k.PublicKey}, "", 0, release.UnknownKey},
		{"no trusted keys", good, map[uint32]*ecdsa.PublicKey{}, "", 0, release.UnknownKey},
		{"trusted key not P-256", good, map[uint32]*ecdsa.PublicKey{keyVersion: &p384.PublicKey}, "", 0, release.UnknownKey},
		{"another device type", good, nil, "humidity", 0, release.WrongTarget},
		{"connector is not a sensor", good, nil, "ccon", 0, release.WrongTarget},
		{"same version", good, nil, "", 7, release.Downgrade},
		{"older version", good, nil, "", 9, release.Downgrade},
		{"running below minFrom", good, nil, "", 2, release.TooOld},
		{"image over MaxImage", with(func(m *release.Manifest) { m.Size = release.MaxImage + 1 }), nil, "", 0, release.TooLarge},
		{"image of 4 GiB", with(func(m *release.Manifest) { m.Size = 1<<32 - 1 }), nil, "", 0, release.TooLarge},
		{"empty image", with(func(m *release.Manifest) { m.Size = 0 }), nil, "", 0, release.Malformed},
		{"chunk size 0", with(func(m *release.Manifest) { m.ChunkSize = 0 }), nil, "", 0, release.Malformed},
		{"chunk size below MinChunk", with(func(m *release.Manifest) { m.ChunkSize = release.MinChunk - 1 }), nil, "", 0, release.Malformed},
		{"chunk size above MaxChunk", with(func(m *release.Manifest) { m.ChunkSize = release.MaxChunk + 1 }), nil, "", 0, release.Malformed},
		{"empty target", with(func(m *release.Manifest) { m.Target = "" }), nil, "", 0, release.Malformed},
		{"target with a slash", with(func(m *release.Manifest) { m.Target = "temperature/x" }), nil, "", 0, release.Malformed},
		{"target too long", with(func(m *release.Manifest) { m.Target = strings.Repeat("t", release.MaxTarget+1) }), nil, "", 0, release.Malformed},
		{"version 0", with(func(m *release.Manifest) { m.Version, m.MinFrom = 0, 0 }), nil, "", 0, release.Malformed},
		{"minFrom not below version", with(func(m *release.Manifest) { m.MinFrom = m.Version }), nil, "", 0, release.Malformed},
		{"zero release id", with(func(m *release.Manifest) { m.ReleaseID = [16]byte{} }), nil, "", 0, release.Malformed},
		{"short image hash", withField(6, make([]byte, 31)), nil, "", 0, release.Malformed},
		{"long release id", withField(7, make([]byte, 17)), nil, "", 0, release.Malformed},
		{"unknown body field", withField(9, 1), nil, "", 0, release.Malformed},
		{"version too wide", withField(2, uint64(1)<<32), nil, "", 0, release.Malformed},
		{"target not text", withField(1, []byte("temperature")), nil, "", 0, release.Malformed},
		{"body not deterministic", signRaw(t, k, unsorted), nil, "", 0, release.Malformed},
		{"trailing bytes in body", signRaw(t, k, append(bytes.Clone(body), 0)), nil, "", 0, release.Malformed},
		{"trailing bytes after", append(bytes.Clone(good), 0), nil, "", 0, release.Malformed},
		{"unknown outer field", encode(t, map[int]any{1: body, 2: sig, 3: 0}), nil, "", 0, release.Malformed},
		{"no signature", encode(t, map[int]any{1: body}), nil, "", 0, release.Malformed},
		{"signature too long", encode(t, map[int]any{1: body, 2: make([]byte, release.MaxSig+1)}), nil, "", 0, release.Malformed},
		{"too long", append(bytes.Clone(good), make([]byte, release.MaxSigned)...), nil, "", 0, release.Malformed},
		{"empty", nil, nil, "", 0, release.Malformed},
		{"not a map", encode(t, []any{body, sig}), nil, "", 0, release.Malformed},
		{"tagged", append([]byte{0xd8, 0x18}, good...), nil, "", 0, release.Malformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trusted, device, current := tc.trusted, tc.device, tc.current
			if trusted == nil {
				trusted = trust(k)
			}
			if device == "" {
				device = "temperature"
			}
			if current == 0 {
				current = 5
			}
			a, err := release.Begin(tc.signed, trusted, device, current)
			if a != nil {
				t.Errorf("Begin returned an assembly along with %v", err)
			}
			wantReason(t, err, tc.want)
		})
	}
	t.Run("accepted from minFrom itself", func(t *testing.T) {
		if _, err := release.Begin(good, trust(k), "temperature", m.MinFrom); err != nil {
			t.Fatalf("Begin from version %d (= minFrom): %v", m.MinFrom, err)
		}
	})
}

func TestAddRefusals(t *testing.T) {
	k := newKey(t)
	img := testImage(1000) // two chunks: 512 and 488 bytes
	m := manifestFor(img, 512)
	chunks, err := release.Split(m, img)
	if err != nil {
		t.Fatal(err)
	}
	otherID := releaseID
	otherID[0] ^= 1
	for _, tc := range []struct {
		name string
		c    release.Chunk
		want release.Reason
	}{
		{"chunk from another release", release.Chunk{ReleaseID: otherID, Index: 0, Data: chunks[0].Data}, release.WrongRelease},
		{"index past the end", release.Chunk{ReleaseID: releaseID, Index: 2, Data: chunks[1].Data}, release.BadChunk},
		{"largest index", release.Chunk{ReleaseID: releaseID, Index: 1<<32 - 1, Data: chunks[1].Data}, release.BadChunk},
		{"first chunk short", release.Chunk{ReleaseID: releaseID, Index: 0, Data: chunks[0].Data[:511]}, release.BadChunk},
		{"last chunk full size", release.Chunk{ReleaseID: releaseID, Index: 1, Data: make([]byte, 512)}, release.BadChunk},
		{"last chunk short", release.Chunk{ReleaseID: releaseID, Index: 1, Data: chunks[1].Data[1:]}, release.BadChunk},
		{"no data", release.Chunk{ReleaseID: releaseID, Index: 0}, release.BadChunk},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := release.Begin(seal(t, k, m), trust(k), "temperature", 5)
			if err != nil {
				t.Fatal(err)
			}
			wantReason(t, a.Add(tc.c), tc.want)
			if got := a.Missing(); len(got) != 2 {
				t.Fatalf("a refused chunk changed what is missing: %v, want [0 1]", got)
			}
		})
	}
}

func TestImage(t *testing.T) {
	k := newKey(t)
	img := testImage(64 << 10)
	m := manifestFor(img, 512)
	chunks, err := release.Split(m, img)
	if err != nil {
		t.Fatal(err)
	}
	a, err := release.Begin(seal(t, k, m), trust(k), "temperature", 5)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("incomplete", func(t *testing.T) {
		for _, c := range chunks[:len(chunks)-1] {
			if err := a.Add(c); err != nil {
				t.Fatal(err)
			}
		}
		if i, ok := a.NextMissing(0); !ok || i != uint32(len(chunks)-1) {
			t.Fatalf("NextMissing(0) = %d, %v; want %d, true", i, ok, len(chunks)-1)
		}
		_, err := a.Image()
		wantReason(t, err, release.Incomplete)
	})
	t.Run("tampered chunk", func(t *testing.T) {
		last := chunks[len(chunks)-1]
		bad := release.Chunk{ReleaseID: last.ReleaseID, Index: last.Index, Data: bytes.Clone(last.Data)}
		bad.Data[100] ^= 0x80
		if err := a.Add(bad); err != nil {
			t.Fatalf("Add: %v (chunks are checked only by the image hash)", err)
		}
		_, err := a.Image()
		wantReason(t, err, release.HashMismatch)
		if a.Done() || len(a.Missing()) != len(chunks) {
			t.Fatalf("after a mismatch: done %v, %d missing; want every one of %d missing", a.Done(), len(a.Missing()), len(chunks))
		}
	})
	t.Run("fetched again", func(t *testing.T) {
		for _, c := range chunks {
			if err := a.Add(c); err != nil {
				t.Fatal(err)
			}
		}
		got, err := a.Image()
		if err != nil || !bytes.Equal(got, img) {
			t.Fatalf("Image after refetching: equal %v, err %v", bytes.Equal(got, img), err)
		}
	})
}

func TestSeal(t *testing.T) {
	k := newKey(t)
	m := manifestFor(testImage(100), 64)
	t.Run("Open returns what Seal signed", func(t *testing.T) {
		got, err := release.Open(seal(t, k, m), trust(k))
		if err != nil || got != m {
			t.Fatalf("Open = %+v, %v; want %+v", got, err, m)
		}
	})
	t.Run("signature is KMS's over SHA-256 of domain and body", func(t *testing.T) {
		// Digest is what KMS AsymmetricSign is given, and it signs it as
		// it is: a plain ECDSA verification over it must succeed.
		var outer map[int][]byte
		if err := cbor.Unmarshal(seal(t, k, m), &outer); err != nil {
			t.Fatal(err)
		}
		d := sha256.Sum256(append([]byte("sealedsense/release/v1\x00"), outer[1]...))
		if release.Digest(outer[1]) != d {
			t.Fatalf("Digest(body) = %x, want SHA-256(domain || body) = %x", release.Digest(outer[1]), d)
		}
		if !ecdsa.VerifyASN1(&k.PublicKey, d[:], outer[2]) {
			t.Fatal("the signature does not verify over SHA-256(domain || body)")
		}
	})
	t.Run("body encoding is pinned", func(t *testing.T) {
		// Devices in the field decode this: its bytes must not drift.
		g := release.Manifest{Target: "ccon", Version: 2, MinFrom: 1, Size: 1000, ChunkSize: 512, KeyVersion: 1}
		g.ReleaseID[15], g.ImageSHA256[31] = 1, 2
		var outer map[int][]byte
		if err := cbor.Unmarshal(seal(t, k, g), &outer); err != nil {
			t.Fatal(err)
		}
		want := "a8" + "0164" + "63636f6e" + "0202" + "0301" + "041903e8" + "05190200" +
			"065820" + strings.Repeat("00", 31) + "02" + "0750" + strings.Repeat("00", 15) + "01" + "0801"
		if got := fmt.Sprintf("%x", outer[1]); got != want {
			t.Fatalf("body\n got %s\nwant %s", got, want)
		}
	})
	t.Run("refuses an invalid manifest", func(t *testing.T) {
		bad := m
		bad.Size = release.MaxImage + 1
		_, err := release.Seal(bad, signer(k))
		wantReason(t, err, release.TooLarge)
	})
	t.Run("passes on a signer's error", func(t *testing.T) {
		boom := errors.New("kms unavailable")
		_, err := release.Seal(m, func([32]byte) ([]byte, error) { return nil, boom })
		if !errors.Is(err, boom) {
			t.Fatalf("got %v, want it to wrap %v", err, boom)
		}
	})
	t.Run("refuses an oversized signature", func(t *testing.T) {
		_, err := release.Seal(m, func([32]byte) ([]byte, error) { return make([]byte, release.MaxSig+1), nil })
		if err == nil {
			t.Fatal("sealed with a 73-byte signature")
		}
	})
}
