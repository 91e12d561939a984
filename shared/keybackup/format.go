package keybackup

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/fxamacker/cbor/v2"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/store"
)

// Wire constants.
const (
	Magic   = "SSKB"
	Version = 1

	headerSize      = len(Magic) + 1 + 4 // magic | version | manifest length
	MaxManifestSize = 64 << 10
	// MaxObjectSize bounds what a restore reads into memory: 10,000
	// devices make a few MiB.
	MaxObjectSize = 256 << 20

	dataKeySize = chacha20poly1305.KeySize
	nonceSize   = chacha20poly1305.NonceSizeX
	minBodySize = nonceSize + chacha20poly1305.Overhead
)

// Errors of Open, in the order it checks; each is wrapped with detail.
var (
	ErrTruncated      = errors.New("keybackup: object is truncated")
	ErrTooLarge       = errors.New("keybackup: object is too large")
	ErrNotBackup      = errors.New("keybackup: not a key backup")
	ErrVersion        = errors.New("keybackup: unknown format version")
	ErrManifest       = errors.New("keybackup: manifest is malformed")
	ErrForeignProject = errors.New("keybackup: backup belongs to another project")
	ErrMisnamed       = errors.New("keybackup: backup was written under another name")
	ErrKMSVersion     = errors.New("keybackup: data key was not wrapped by the backup key")
	ErrTampered       = errors.New("keybackup: backup fails its integrity check")
	ErrUnwrap         = errors.New("keybackup: data key cannot be unwrapped")
	ErrRecords        = errors.New("keybackup: records are malformed")
)

// Manifest describes a backup. It is plaintext but authenticated.
type Manifest struct {
	Format  int       `json:"format"`
	Project string    `json:"project"`
	Object  string    `json:"object"`
	Created time.Time `json:"created"`
	// Counts is the number of records per kind (collection).
	Counts map[string]int `json:"counts"`
	// WrapKeys are the CryptoKeys the records say wrapped their secrets:
	// a restore needs them enabled for the restored keys to unwrap.
	WrapKeys []string `json:"wrapKeys"`
	// KMSVersion is the backup-key CryptoKeyVersion that wrapped the data
	// key; WrappedKey is the wrapped data key.
	KMSVersion string `json:"kmsVersion"`
	WrappedKey []byte `json:"wrappedKey"`
	// BodyBytes and BodySHA256 (lowercase hex) describe the sealed body,
	// so that a cut object is named as such and a damaged one is caught
	// before any KMS call.
	BodyBytes  int    `json:"bodyBytes"`
	BodySHA256 string `json:"bodySha256"`
}

// kmsAAD binds the wrapped data key to its project and object name.
func kmsAAD(project, object string) []byte {
	return []byte("sealedsense/keybackup/v1\x00" + project + "\x00" + object)
}

// associatedData is what the AEAD authenticates: the header's magic and
// version and the manifest with the body hash left out.
func associatedData(m Manifest) []byte {
	m.BodySHA256 = ""
	j, _ := json.Marshal(m) // a Manifest always marshals
	return append([]byte{Magic[0], Magic[1], Magic[2], Magic[3], Version}, j...)
}

// frame lays out an object from its manifest and sealed body.
func frame(m Manifest, body []byte) []byte {
	j, _ := json.Marshal(m)
	out := make([]byte, 0, headerSize+len(j)+len(body))
	out = append(out, Magic...)
	out = append(out, Version)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(j)))
	out = append(out, j...)
	return append(out, body...)
}

// Parse splits an object into its manifest and sealed body, checking the
// framing and the manifest's form, nothing that needs a key.
func Parse(data []byte) (Manifest, []byte, error) {
	switch {
	case len(data) > MaxObjectSize:
		return Manifest{}, nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(data), MaxObjectSize)
	case len(data) < len(Magic):
		return Manifest{}, nil, fmt.Errorf("%w: %d bytes", ErrTruncated, len(data))
	case string(data[:len(Magic)]) != Magic:
		return Manifest{}, nil, ErrNotBackup
	case len(data) < headerSize:
		return Manifest{}, nil, fmt.Errorf("%w: %d bytes, header is %d", ErrTruncated, len(data), headerSize)
	case data[len(Magic)] != Version:
		return Manifest{}, nil, fmt.Errorf("%w: %d", ErrVersion, data[len(Magic)])
	}
	n := binary.LittleEndian.Uint32(data[len(Magic)+1:])
	if n > MaxManifestSize {
		return Manifest{}, nil, fmt.Errorf("%w: manifest of %d bytes, at most %d", ErrManifest, n, MaxManifestSize)
	}
	if uint64(len(data)-headerSize) < uint64(n)+minBodySize {
		return Manifest{}, nil, fmt.Errorf("%w: %d bytes after the header, manifest %d and body at least %d", ErrTruncated, len(data)-headerSize, n, minBodySize)
	}
	raw := data[headerSize : headerSize+int(n)]
	m, err := parseManifest(raw)
	if err != nil {
		return Manifest{}, nil, err
	}
	switch body := data[headerSize+int(n):]; {
	case len(body) < m.BodyBytes:
		return Manifest{}, nil, fmt.Errorf("%w: body of %d bytes, the manifest says %d", ErrTruncated, len(body), m.BodyBytes)
	case len(body) > m.BodyBytes:
		return Manifest{}, nil, fmt.Errorf("%w: %d bytes after the body", ErrTampered, len(body)-m.BodyBytes)
	default:
		return m, body, nil
	}
}

// parseManifest decodes a manifest strictly: unknown fields, missing
// fields and any form but the one frame writes are refused, so that no
// change to the manifest's bytes goes unnoticed.
func parseManifest(raw []byte) (Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("%w: %w", ErrManifest, err)
	}
	if dec.More() {
		return Manifest{}, fmt.Errorf("%w: data after the manifest", ErrManifest)
	}
	if canon, _ := json.Marshal(m); !bytes.Equal(canon, raw) {
		return Manifest{}, fmt.Errorf("%w: not in canonical form", ErrManifest)
	}
	bad := func(why string) (Manifest, error) { return Manifest{}, fmt.Errorf("%w: %s", ErrManifest, why) }
	switch {
	case m.Format != Version:
		return bad(fmt.Sprintf("format %d in a version %d header", m.Format, Version))
	case m.Project == "" || m.Object == "" || m.Created.IsZero():
		return bad("project, object or time missing")
	case m.KMSVersion == "" || len(m.WrappedKey) == 0:
		return bad("no wrapped data key")
	case m.BodyBytes < minBodySize || m.BodyBytes > MaxObjectSize:
		return bad(fmt.Sprintf("body of %d bytes", m.BodyBytes))
	case len(m.BodySHA256) != 2*sha256.Size || hex.EncodeToString(mustHex(m.BodySHA256)) != m.BodySHA256:
		return bad("body hash is not lowercase hex SHA-256")
	}
	for kind, n := range m.Counts {
		if !slices.Contains(store.BackupKinds(), kind) || n < 0 {
			return bad(fmt.Sprintf("count %s=%d", kind, n))
		}
	}
	return m, nil
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil
	}
	return b
}

// record is a store.Record in the body's CBOR.
type record struct {
	Kind       string         `cbor:"1,keyasint"`
	ID         string         `cbor:"2,keyasint"`
	UpdateTime time.Time      `cbor:"3,keyasint"`
	Fields     map[string]any `cbor:"4,keyasint"`
}

type body struct {
	Records []record `cbor:"1,keyasint"`
}

// Times are RFC 3339 strings with nanoseconds under tag 0, so they
// round-trip exactly and decode back to time.Time inside Fields.
var encMode = func() cbor.EncMode {
	em, err := cbor.EncOptions{Sort: cbor.SortCoreDeterministic, Time: cbor.TimeRFC3339Nano, TimeTag: cbor.EncTagRequired,
		IndefLength: cbor.IndefLengthForbidden}.EncMode()
	if err != nil {
		panic(err)
	}
	return em
}()

// decMode's limits: Firestore nests at most 20 levels inside a document
// (plus 4 for the body), holds at most 20,000 fields, and a backup of a
// large fleet has a few million records at most.
var decMode = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		MaxNestedLevels: 24, MaxArrayElements: 1 << 22, MaxMapPairs: 20_000,
		DupMapKey: cbor.DupMapKeyEnforcedAPF, IndefLength: cbor.IndefLengthForbidden,
		IntDec: cbor.IntDecConvertSignedOrFail, DefaultMapType: reflect.TypeFor[map[string]any](),
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField, TimeTagToAny: cbor.TimeTagToTime,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}()

func encodeRecords(recs []store.Record) ([]byte, error) {
	b := body{Records: make([]record, len(recs))}
	for i, r := range recs {
		b.Records[i] = record{Kind: r.Kind, ID: r.ID, UpdateTime: r.UpdateTime.UTC(), Fields: r.Fields}
	}
	out, err := encMode.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("keybackup: encode records: %w", err)
	}
	return out, nil
}

// decodeRecords decodes and checks the records against the manifest's
// counts and the rules a restore applies.
func decodeRecords(plain []byte, counts map[string]int) ([]store.Record, error) {
	var b body
	if err := decMode.Unmarshal(plain, &b); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRecords, err)
	}
	got := map[string]int{}
	out := make([]store.Record, len(b.Records))
	for i, r := range b.Records {
		out[i] = store.Record{Kind: r.Kind, ID: r.ID, UpdateTime: r.UpdateTime, Fields: r.Fields}
		if err := store.ValidRecord(out[i]); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrRecords, err)
		}
		got[r.Kind]++
	}
	for _, kind := range store.BackupKinds() {
		if got[kind] != counts[kind] {
			return nil, fmt.Errorf("%w: %d %s records, the manifest counts %d", ErrRecords, got[kind], kind, counts[kind])
		}
	}
	return out, nil
}

// checkHash compares the sealed body with the manifest's SHA-256: a
// damaged body is named before any KMS call.
func checkHash(m Manifest, sealed []byte) error {
	if sum := sha256.Sum256(sealed); hex.EncodeToString(sum[:]) != m.BodySHA256 {
		return fmt.Errorf("%w: body SHA-256 %x, the manifest says %s", ErrTampered, sum, m.BodySHA256)
	}
	return nil
}

// openBody opens the sealed body under the unwrapped data key and decodes
// its records.
func openBody(key custody.Secret, m Manifest, sealed []byte) ([]store.Record, error) {
	if len(sealed) < minBodySize {
		return nil, fmt.Errorf("%w: body of %d bytes", ErrTruncated, len(sealed))
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("%w: data key of %d bytes", ErrTampered, len(key))
	}
	plain, err := aead.Open(nil, sealed[:nonceSize], sealed[nonceSize:], associatedData(m))
	if err != nil {
		return nil, fmt.Errorf("%w: body does not authenticate", ErrTampered)
	}
	defer clear(plain)
	return decodeRecords(plain, m.Counts)
}
