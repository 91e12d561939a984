package keybackup

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/store"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// testKey is a fixed data key, for the pure tests and fuzzing of what
// follows the unwrap.
var testKey = custody.Secret(bytes.Repeat([]byte{7}, dataKeySize))

var testRecords = []store.Record{
	{Kind: "devices", ID: "d1", UpdateTime: t0, Fields: map[string]any{"pskKey": "k", "wrappedPsk": []byte{1, 2}, "n": int64(3), "t": t0,
		"m": map[string]any{"a": []any{1.5, nil, true}}}},
	{Kind: "kits", ID: "k1", UpdateTime: t0, Fields: map[string]any{"deviceIds": []any{"d1"}}},
}

// sealWith seals recs under testKey without KMS: what Seal does after the
// data key is wrapped.
func sealWith(t testing.TB, recs []store.Record) []byte {
	t.Helper()
	m := Manifest{Format: Version, Project: "p", Object: "keybackups/x.ssbk", Created: t0, Counts: map[string]int{},
		KMSVersion: "k/cryptoKeyVersions/1", WrappedKey: []byte("wrapped")}
	for _, r := range recs {
		m.Counts[r.Kind]++
	}
	plain, err := encodeRecords(recs)
	if err != nil {
		t.Fatal(err)
	}
	m.BodyBytes = nonceSize + len(plain) + chacha20poly1305.Overhead
	aead, _ := chacha20poly1305.NewX(testKey)
	sealed := aead.Seal(make([]byte, nonceSize), make([]byte, nonceSize), plain, associatedData(m))
	sum := sha256.Sum256(sealed)
	m.BodySHA256 = hex.EncodeToString(sum[:])
	return frame(m, sealed)
}

// withManifest reframes obj with its manifest JSON edited.
func withManifest(t testing.TB, obj []byte, edit func(string) string) []byte {
	t.Helper()
	n := binary.LittleEndian.Uint32(obj[len(Magic)+1:])
	j := edit(string(obj[headerSize : headerSize+int(n)]))
	out := append([]byte(nil), obj[:len(Magic)+1]...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(j)))
	out = append(out, j...)
	return append(out, obj[headerSize+int(n):]...)
}

func TestParse(t *testing.T) {
	t.Parallel()
	good := sealWith(t, testRecords)
	replace := func(old, new string) func(string) string {
		return func(s string) string {
			if !strings.Contains(s, old) {
				t.Fatalf("manifest %s has no %q", s, old)
			}
			return strings.Replace(s, old, new, 1)
		}
	}
	cases := []struct {
		name string
		obj  []byte
		want error
	}{
		{"a sealed backup", good, nil},
		{"empty", nil, ErrTruncated},
		{"another file", []byte("PK\x03\x04 a zip archive"), ErrNotBackup},
		{"magic only", []byte(Magic), ErrTruncated},
		{"next version", append([]byte(Magic+"\x02"), good[len(Magic)+1:]...), ErrVersion},
		{"cut in the manifest", good[:headerSize+10], ErrTruncated},
		{"cut in the body", good[:len(good)-len(good)/4], ErrTruncated},
		{"one byte short", good[:len(good)-1], ErrTruncated},
		{"a byte appended", append(bytes.Clone(good), 0), ErrTampered},
		{"manifest length too large", append(append([]byte(Magic+"\x01"), 0xff, 0xff, 0xff, 0x7f), make([]byte, 64)...), ErrManifest},
		{"manifest not JSON", withManifest(t, good, func(string) string { return "{not json}" }), ErrManifest},
		{"unknown manifest field", withManifest(t, good, replace(`{"format"`, `{"extra":1,"format"`)), ErrManifest},
		{"manifest with spaces", withManifest(t, good, replace(`,"project"`, ` ,"project"`)), ErrManifest},
		{"uppercase hash", withManifest(t, good, func(s string) string {
			i := strings.Index(s, `"bodySha256":"`) + len(`"bodySha256":"`)
			return s[:i] + strings.ToUpper(s[i:])
		}), ErrManifest},
		{"other format in the manifest", withManifest(t, good, replace(`"format":1`, `"format":2`)), ErrManifest},
		{"no project", withManifest(t, good, replace(`"project":"p"`, `"project":""`)), ErrManifest},
		{"unknown kind counted", withManifest(t, good, replace(`"kits":1`, `"kits":1,"zz":1`)), ErrManifest},
		{"negative count", withManifest(t, good, replace(`"kits":1`, `"kits":-1`)), ErrManifest},
		{"no wrapped key", withManifest(t, good, replace(`"wrappedKey":"d3JhcHBlZA=="`, `"wrappedKey":null`)), ErrManifest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, _, err := Parse(c.obj)
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("Parse = %v, want %v", err, c.want)
			}
			if err == nil && (m.Project != "p" || m.Counts["devices"] != 1) {
				t.Fatalf("manifest %+v", m)
			}
		})
	}
}

func TestOpenBody(t *testing.T) {
	t.Parallel()
	good := sealWith(t, testRecords)
	m, sealed, err := Parse(good)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := openBody(testKey, m, sealed)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(testRecords) {
		t.Fatalf("%d records, want %d", len(recs), len(testRecords))
	}
	for i, r := range recs {
		if r.Kind != testRecords[i].Kind || r.ID != testRecords[i].ID || !r.UpdateTime.Equal(t0) ||
			!sameJSON(t, r.Fields, testRecords[i].Fields) {
			t.Fatalf("record %d = %+v, want %+v", i, r, testRecords[i])
		}
	}
	if f := recs[0].Fields; f["n"] != int64(3) || !f["t"].(time.Time).Equal(t0) || !bytes.Equal(f["wrappedPsk"].([]byte), []byte{1, 2}) {
		t.Fatalf("field types did not round-trip: %#v", f)
	}

	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	other := m
	other.Created = other.Created.Add(time.Second)
	miscounted := m
	miscounted.Counts = map[string]int{"devices": 2, "kits": 1}
	cases := []struct {
		name   string
		key    custody.Secret
		m      Manifest
		sealed []byte
		want   error
	}{
		{"hash mismatch", testKey, m, flipped, ErrTampered},
		{"another manifest", testKey, other, sealed, ErrTampered},
		{"another key", custody.Secret(make([]byte, dataKeySize)), m, sealed, ErrTampered},
		{"counts that differ", testKey, miscounted, sealed, ErrTampered},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := checkHash(c.m, c.sealed)
			if err == nil {
				_, err = openBody(c.key, c.m, c.sealed)
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("open = %v, want %v", err, c.want)
			}
		})
	}
}

func TestDecodeRecordsRefuses(t *testing.T) {
	t.Parallel()
	enc := func(v any) []byte {
		b, err := encMode.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	one := map[string]int{"devices": 1}
	cases := []struct {
		name   string
		plain  []byte
		counts map[string]int
	}{
		{"not CBOR", []byte{0xff}, one},
		{"another collection", enc(body{Records: []record{{Kind: "events", ID: "e", UpdateTime: t0, Fields: map[string]any{}}}}), one},
		{"an unknown record field", enc(map[int]any{1: []any{map[int]any{1: "devices", 2: "d", 3: t0, 4: map[string]any{}, 9: 1}}}), one},
		{"a duplicate key", []byte{0xa1, 0x01, 0x81, 0xa2, 0x01, 0x60, 0x01, 0x60}, one},
		{"an integer over int64", enc(body{Records: []record{{Kind: "devices", ID: "d", UpdateTime: t0, Fields: map[string]any{"u": uint64(1 << 63)}}}}), one},
		{"an unknown tag", enc(body{Records: []record{{Kind: "devices", ID: "d", UpdateTime: t0, Fields: map[string]any{"x": mustTag(t)}}}}), one},
		{"one record fewer than counted", enc(body{}), one},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := decodeRecords(c.plain, c.counts); !errors.Is(err, ErrRecords) {
				t.Fatalf("decode = %v, want ErrRecords", err)
			}
		})
	}
}

func mustTag(t *testing.T) any {
	t.Helper()
	var v any
	if err := decMode.Unmarshal([]byte{0xd8, 0x40, 0x41, 0x01}, &v); err != nil { // tag 64 (uint8 array)
		t.Fatal(err)
	}
	return v
}

func sameJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

func TestNewest(t *testing.T) {
	t.Parallel()
	name := func(s, r string) string { return ObjectPrefix + s + "-" + r + ObjectSuffix }
	names := []string{
		name("2026-06-01T10:00:00Z", "A"), name("2026-06-02T10:00:00Z", "B"), name("2026-06-02T10:00:00Z", "C"),
		name("2026-06-03T10:00:00Z", "D"), "keybackups/notes.txt", "other/2026-06-09T10:00:00Z-E.ssbk",
		name("yesterday", "F"),
	}
	cases := []struct {
		name string
		at   time.Time
		want string
	}{
		{"now takes the newest", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), name("2026-06-03T10:00:00Z", "D")},
		{"exactly at a backup takes it", time.Date(2026, 6, 3, 10, 0, 0, 0, time.UTC), name("2026-06-03T10:00:00Z", "D")},
		{"two in one second: the later name", time.Date(2026, 6, 2, 23, 0, 0, 0, time.UTC), name("2026-06-02T10:00:00Z", "C")},
		{"between backups takes the earlier", time.Date(2026, 6, 1, 11, 0, 0, 0, time.UTC), name("2026-06-01T10:00:00Z", "A")},
		{"before every backup", time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := newest(names, c.at)
			if got != c.want || ok != (c.want != "") {
				t.Fatalf("newest at %v = %q, %v; want %q", c.at, got, ok, c.want)
			}
		})
	}
	if got, ok := backupTime(ObjectName(t0)); !ok || !got.Equal(t0) {
		t.Fatalf("the time of %q is %v, %v", ObjectName(t0), got, ok)
	}
}

func TestParseLocation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in, bucket, object string
		ok                 bool
	}{
		{"gs://b/keybackups/x.ssbk", "b", "keybackups/x.ssbk", true},
		{"gs://b", "b", "", true},
		{"gs://b/", "b", "", true},
		{"gs://", "", "", false},
		{"b/x", "", "", false},
		{"https://storage.googleapis.com/b/x", "", "", false},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			b, o, err := ParseLocation(c.in)
			if (err == nil) != c.ok || b != c.bucket || o != c.object {
				t.Fatalf("ParseLocation(%q) = %q, %q, %v; want %q, %q, ok %v", c.in, b, o, err, c.bucket, c.object, c.ok)
			}
		})
	}
}

// FuzzParse: no object, however damaged, makes the framing or manifest
// parser panic; what it accepts frames back to itself.
func FuzzParse(f *testing.F) {
	good := sealWith(f, testRecords)
	f.Add(good)
	f.Add(good[:headerSize+20])
	f.Add([]byte(Magic + "\x01\x00\x00\x00\x00"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, body, err := Parse(data)
		if err != nil {
			return
		}
		if again := frame(m, body); !bytes.Equal(again, data) {
			t.Fatalf("accepted an object that does not frame back to itself")
		}
	})
}

// FuzzOpenBody: what follows the unwrap (AEAD, CBOR decode and record
// checks) survives any body under a known key and manifest. The manifest's
// hash is set to the mutated body's, as a forger with bucket access could,
// so mutations reach the AEAD; FuzzDecodeRecords covers the decoder.
func FuzzOpenBody(f *testing.F) {
	m, sealed, err := Parse(sealWith(f, testRecords))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add(sealed[:nonceSize])
	f.Fuzz(func(t *testing.T, sealed []byte) {
		m := m
		m.BodyBytes = len(sealed)
		sum := sha256.Sum256(sealed)
		m.BodySHA256 = hex.EncodeToString(sum[:])
		if err := checkHash(m, sealed); err != nil {
			t.Fatalf("hash of the body itself refused: %v", err)
		}
		recs, err := openBody(testKey, m, sealed)
		if err == nil && len(recs) != len(testRecords) {
			t.Fatalf("opened %d records, sealed %d", len(recs), len(testRecords))
		}
	})
}

// FuzzDecodeRecords: the strict CBOR decoder and record checks survive
// any plaintext, and what they accept is valid for a restore.
func FuzzDecodeRecords(f *testing.F) {
	plain, err := encodeRecords(testRecords)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(plain)
	f.Add([]byte{0xa1, 0x01, 0x80})
	f.Fuzz(func(t *testing.T, plain []byte) {
		recs, err := decodeRecords(plain, map[string]int{"devices": 1, "kits": 1})
		if err != nil {
			return
		}
		for _, r := range recs {
			if err := store.ValidRecord(r); err != nil {
				t.Fatalf("accepted an invalid record: %v", err)
			}
		}
	})
}
