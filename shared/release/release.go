package release

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Domain prefixes every signed body; see the package comment.
const Domain = "sealedsense/release/v1\x00"

// Bounds of a release.
const (
	MaxImage  = 1 << 20 // image bytes: what a device can buffer
	MinChunk  = 64      // below this the per-chunk overhead dominates
	MaxChunk  = 1024    // a chunk fits one downlink with room for its header
	MaxTarget = 32      // bytes of a target device type
	MaxSig    = 72      // a DER ECDSA P-256 signature is at most 72 bytes
	MaxSigned = 512     // a signed manifest, with room to spare
	// MaxChunkWire bounds an encoded chunk: the data plus its header.
	MaxChunkWire = MaxChunk + 32
)

// ConnectorTarget is the target of connector releases: the device type of
// a Cloud Connector, DT's "ccon" (store.ConnectorType is the same).
const ConnectorTarget = "ccon"

// BadBootMagic begins a simulated image that verifies but does not boot:
// the simulated sensors and connectors roll such a release back
// (BootFailed), as hardware whose new firmware crashes at start does.
const BadBootMagic = "SEALEDSENSE-BAD-BOOT"

// Reason is why a release, a chunk or an image was refused. The values are
// reported to the cloud: never renumber them.
type Reason uint8

// Refusal reasons. Zero is not a reason, so an unset field reads as such.
const (
	BadSignature Reason = 1 + iota // the signature does not verify
	UnknownKey                     // the key version is not trusted
	WrongTarget                    // the release is for another device type
	Downgrade                      // not newer than the running version
	TooOld                         // the running version is below MinFrom
	TooLarge                       // the image exceeds MaxImage
	Malformed                      // bytes that do not decode or fail a bound
	WrongRelease                   // a chunk of another release
	BadChunk                       // a chunk index out of range or of the wrong length
	HashMismatch                   // the assembled image is not the signed one
	Incomplete                     // the image was asked for before its last chunk
	BootFailed                     // the image verified but did not boot: the device rolled back
)

var reasonNames = [...]string{
	BadSignature: "BadSignature",
	UnknownKey:   "UnknownKey",
	WrongTarget:  "WrongTarget",
	Downgrade:    "Downgrade",
	TooOld:       "TooOld",
	TooLarge:     "TooLarge",
	Malformed:    "Malformed",
	WrongRelease: "WrongRelease",
	BadChunk:     "BadChunk",
	HashMismatch: "HashMismatch",
	Incomplete:   "Incomplete",
	BootFailed:   "BootFailed",
}

func (r Reason) String() string {
	if int(r) < len(reasonNames) && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// Refusal is the error behind every refusal; errors.As finds it.
type Refusal struct {
	Reason Reason
	Err    error
}

func (r *Refusal) Error() string { return "release: " + r.Reason.String() + ": " + r.Err.Error() }

func (r *Refusal) Unwrap() error { return r.Err }

// ReasonOf is the reason of the refusal err wraps, or 0 if it wraps none.
func ReasonOf(err error) Reason {
	var r *Refusal
	if errors.As(err, &r) {
		return r.Reason
	}
	return 0
}

func refuse(r Reason, format string, args ...any) error {
	return &Refusal{Reason: r, Err: fmt.Errorf(format, args...)}
}

// Manifest is what an operator releases: which devices it is for, from
// which versions, and the image it carries.
type Manifest struct {
	Target      string   // device type, such as "temperature", or "ccon" for connectors
	Version     uint32   // the version this release installs
	MinFrom     uint32   // the oldest running version that may update to it
	Size        uint32   // image bytes, 1..MaxImage
	ChunkSize   uint16   // MinChunk..MaxChunk; every chunk but the last is this long
	ImageSHA256 [32]byte // of the whole image
	ReleaseID   [16]byte // random; names the release's chunks
	KeyVersion  uint32   // the release-signing key version that signs it
}

// Chunks is the number of chunks of the image: ceil(Size/ChunkSize).
func (m Manifest) Chunks() uint32 {
	if m.ChunkSize == 0 {
		return 0
	}
	return uint32((uint64(m.Size) + uint64(m.ChunkSize) - 1) / uint64(m.ChunkSize))
}

// ChunkLen is how many bytes chunk i carries, or 0 if i is out of range.
func (m Manifest) ChunkLen(i uint32) int {
	n := m.Chunks()
	switch {
	case i >= n:
		return 0
	case i < n-1:
		return int(m.ChunkSize)
	}
	return int(m.Size) - int(n-1)*int(m.ChunkSize)
}

// Validate checks a manifest's own bounds, whoever signed it.
func (m Manifest) Validate() error {
	switch {
	case m.Target == "" || len(m.Target) > MaxTarget:
		return refuse(Malformed, "target of %d bytes, want 1..%d", len(m.Target), MaxTarget)
	case !plainName(m.Target):
		return refuse(Malformed, "target %q has characters outside [A-Za-z0-9_-]", m.Target)
	case m.Version == 0:
		return refuse(Malformed, "version 0")
	case m.MinFrom >= m.Version:
		return refuse(Malformed, "minFrom %d is not below version %d", m.MinFrom, m.Version)
	case m.Size > MaxImage:
		return refuse(TooLarge, "image of %d bytes, limit %d", m.Size, MaxImage)
	case m.Size == 0:
		return refuse(Malformed, "empty image")
	case m.ChunkSize < MinChunk || m.ChunkSize > MaxChunk:
		return refuse(Malformed, "chunk size %d, want %d..%d", m.ChunkSize, MinChunk, MaxChunk)
	case m.ReleaseID == [16]byte{}:
		return refuse(Malformed, "zero release id")
	}
	return nil
}

// plainName reports whether s is ASCII letters, digits, '_' and '-' only,
// so a target compares byte for byte with what a device calls itself.
func plainName(s string) bool {
	for i := range len(s) {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// signed is the outer wire form: the body exactly as it was signed.
type signed struct {
	Body []byte `cbor:"1,keyasint"`
	Sig  []byte `cbor:"2,keyasint"`
}

// manifestWire holds fixed-size fields as byte strings so that decoding can
// refuse a wrong length rather than pad or truncate it.
type manifestWire struct {
	Target      string `cbor:"1,keyasint"`
	Version     uint32 `cbor:"2,keyasint"`
	MinFrom     uint32 `cbor:"3,keyasint"`
	Size        uint32 `cbor:"4,keyasint"`
	ChunkSize   uint16 `cbor:"5,keyasint"`
	ImageSHA256 []byte `cbor:"6,keyasint"`
	ReleaseID   []byte `cbor:"7,keyasint"`
	KeyVersion  uint32 `cbor:"8,keyasint"`
}

func (m Manifest) wire() manifestWire {
	return manifestWire{m.Target, m.Version, m.MinFrom, m.Size, m.ChunkSize, m.ImageSHA256[:], m.ReleaseID[:], m.KeyVersion}
}

// Digest is the SHA-256 of Domain || body: what Cloud KMS AsymmetricSign is
// asked to sign (as digest.sha256) with an EC_SIGN_P256_SHA256 key.
func Digest(body []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(Domain))
	h.Write(body)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// Seal validates m, encodes it, has sign sign its digest and returns the
// signed manifest. sign returns a DER ECDSA signature, as KMS does.
func Seal(m Manifest, sign func(digest [32]byte) ([]byte, error)) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	body, err := encMode.Marshal(m.wire())
	if err != nil {
		return nil, fmt.Errorf("release: encode manifest: %w", err)
	}
	sig, err := sign(Digest(body))
	if err != nil {
		return nil, fmt.Errorf("release: sign with key version %d: %w", m.KeyVersion, err)
	}
	if len(sig) == 0 || len(sig) > MaxSig {
		return nil, fmt.Errorf("release: signature of %d bytes, want 1..%d", len(sig), MaxSig)
	}
	out, err := encMode.Marshal(signed{Body: body, Sig: sig})
	if err != nil {
		return nil, fmt.Errorf("release: encode signed manifest: %w", err)
	}
	return out, nil
}

// Open decodes a signed manifest, checks its signature under the trusted
// key of its KeyVersion, and validates it. It does not know the device:
// Begin adds the checks against what is running.
func Open(data []byte, trusted map[uint32]*ecdsa.PublicKey) (Manifest, error) {
	m, s, err := parseSigned(data)
	if err != nil {
		return Manifest{}, err
	}
	pub := trusted[m.KeyVersion]
	if pub == nil || pub.Curve != elliptic.P256() {
		return Manifest{}, refuse(UnknownKey, "key version %d is not a trusted P-256 key", m.KeyVersion)
	}
	d := Digest(s.Body)
	if !ecdsa.VerifyASN1(pub, d[:], s.Sig) {
		return Manifest{}, refuse(BadSignature, "release %x does not verify under key version %d", m.ReleaseID, m.KeyVersion)
	}
	if err := m.Validate(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// parseSigned decodes the outer form and the body, without verifying.
func parseSigned(data []byte) (Manifest, signed, error) {
	if len(data) > MaxSigned {
		return Manifest{}, signed{}, refuse(Malformed, "signed manifest of %d bytes, limit %d", len(data), MaxSigned)
	}
	var s signed
	if err := decode(data, &s); err != nil {
		return Manifest{}, signed{}, refuse(Malformed, "signed manifest: %w", err)
	}
	if len(s.Sig) == 0 || len(s.Sig) > MaxSig {
		return Manifest{}, signed{}, refuse(Malformed, "signature of %d bytes, want 1..%d", len(s.Sig), MaxSig)
	}
	var w manifestWire
	if err := decode(s.Body, &w); err != nil {
		return Manifest{}, signed{}, refuse(Malformed, "manifest body: %w", err)
	}
	if len(w.ImageSHA256) != 32 || len(w.ReleaseID) != 16 {
		return Manifest{}, signed{}, refuse(Malformed, "image hash of %d bytes, release id of %d; want 32 and 16", len(w.ImageSHA256), len(w.ReleaseID))
	}
	m := Manifest{Target: w.Target, Version: w.Version, MinFrom: w.MinFrom, Size: w.Size, ChunkSize: w.ChunkSize, KeyVersion: w.KeyVersion}
	copy(m.ImageSHA256[:], w.ImageSHA256)
	copy(m.ReleaseID[:], w.ReleaseID)
	// One manifest, one encoding: a body that is not deterministic CBOR was
	// not made by Seal.
	if again, err := encMode.Marshal(m.wire()); err != nil || !bytes.Equal(again, s.Body) {
		return Manifest{}, signed{}, refuse(Malformed, "manifest body is not in deterministic encoding")
	}
	return m, s, nil
}
