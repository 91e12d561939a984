package payload_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/radio"
	"github.com/sealedsense/sealedsense/shared/release"
)

var releaseID = bytes.Repeat([]byte{0x5e}, payload.ReleaseIDSize)

// signedManifest and chunk512 are a real release's manifest and one of its
// 512-byte chunks, as the cloud offers them.
func signedManifest(t testing.TB) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	m := release.Manifest{Target: "temperature", Version: 7, MinFrom: 1, Size: 64 << 10, ChunkSize: 512,
		ImageSHA256: sha256.Sum256(nil), ReleaseID: [16]byte(releaseID), KeyVersion: 1}
	b, err := release.Seal(m, func(d [32]byte) ([]byte, error) { return ecdsa.SignASN1(rand.Reader, k, d[:]) })
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func chunk512(t testing.TB) []byte {
	t.Helper()
	b, err := release.Chunk{ReleaseID: [16]byte(releaseID), Index: 1<<32 - 1, Data: bytes.Repeat([]byte{0xa5}, 512)}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUpdateReport(t *testing.T) {
	t.Parallel()
	short := releaseID[:15]
	for _, tc := range []struct {
		name string
		r    payload.UpdateReport
		ok   bool
	}{
		{"fetching", payload.UpdateReport{Version: 3, Release: releaseID, Next: 17, State: payload.UpdateFetching}, true},
		{"fetching chunk 0", payload.UpdateReport{Version: 3, Release: releaseID, State: payload.UpdateFetching}, true},
		{"installed, booted", payload.UpdateReport{Version: 0, State: payload.UpdateInstalled}, true},
		{"installed a release", payload.UpdateReport{Version: 7, Release: releaseID, State: payload.UpdateInstalled}, true},
		{"refused a manifest it could not read", payload.UpdateReport{Version: 3, State: payload.UpdateRefused, Reason: release.BadSignature}, true},
		{"refused a chunk, fetching on", payload.UpdateReport{Version: 3, Release: releaseID, Next: 4, State: payload.UpdateRefused, Reason: release.WrongRelease}, true},
		{"rolled back", payload.UpdateReport{Version: 3, Release: releaseID, State: payload.UpdateRolledBack, Reason: release.BootFailed}, true},
		{"a reason appended later", payload.UpdateReport{Version: 3, State: payload.UpdateRefused, Reason: 200}, true},

		{"no state", payload.UpdateReport{Version: 3}, false},
		{"unknown state", payload.UpdateReport{Version: 3, State: 5}, false},
		{"fetching without release", payload.UpdateReport{Version: 3, Next: 2, State: payload.UpdateFetching}, false},
		{"fetching with a reason", payload.UpdateReport{Version: 3, Release: releaseID, State: payload.UpdateFetching, Reason: release.BadChunk}, false},
		{"installed with a reason", payload.UpdateReport{Version: 3, State: payload.UpdateInstalled, Reason: release.Downgrade}, false},
		{"installed with next", payload.UpdateReport{Version: 3, Release: releaseID, Next: 1, State: payload.UpdateInstalled}, false},
		{"refused without reason", payload.UpdateReport{Version: 3, State: payload.UpdateRefused}, false},
		{"refused with next, no release", payload.UpdateReport{Version: 3, Next: 1, State: payload.UpdateRefused, Reason: release.BadChunk}, false},
		{"rolled back without reason", payload.UpdateReport{Version: 3, Release: releaseID, State: payload.UpdateRolledBack}, false},
		{"rolled back without release", payload.UpdateReport{Version: 3, State: payload.UpdateRolledBack, Reason: release.BootFailed}, false},
		{"rolled back with next", payload.UpdateReport{Version: 3, Release: releaseID, Next: 1, State: payload.UpdateRolledBack, Reason: release.BootFailed}, false},
		{"short release id", payload.UpdateReport{Version: 3, Release: short, State: payload.UpdateFetching}, false},
		{"empty release id", payload.UpdateReport{Version: 3, Release: []byte{}, State: payload.UpdateInstalled}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up := payload.Uplink{Update: &tc.r}
			b, err := up.Marshal()
			if !tc.ok {
				if !errors.Is(err, payload.ErrInvalid) {
					t.Fatalf("Marshal(%+v) = %x, %v; want ErrInvalid", tc.r, b, err)
				}
				// Written by hand, the decoder refuses it too.
				raw := map[int]any{1: []any{}, 5: reportMap(tc.r)}
				if _, _, err := payload.DecodeUplink(enc(t, raw)); !errors.Is(err, payload.ErrInvalid) {
					t.Fatalf("DecodeUplink(%+v) = %v; want ErrInvalid", tc.r, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Marshal(%+v): %v", tc.r, err)
			}
			got, refused, err := payload.DecodeUplink(b)
			if err != nil || refused != nil || got.Update == nil || !reflect.DeepEqual(*got.Update, tc.r) || len(got.Readings) != 0 {
				t.Fatalf("round trip of a pull: %+v (%v, %v); want the report %+v and no reading", got, refused, err, tc.r)
			}
		})
	}
}

// reportMap is r as a wire map, keeping even the fields Marshal would omit.
func reportMap(r payload.UpdateReport) map[int]any {
	m := map[int]any{1: r.Version, 4: uint8(r.State)}
	if r.Release != nil {
		m[2] = r.Release
	}
	if r.Next != 0 {
		m[3] = r.Next
	}
	if r.Reason != 0 {
		m[5] = uint8(r.Reason)
	}
	return m
}

func enc(t testing.TB, v any) []byte {
	t.Helper()
	b, err := cbor.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOnlyAPullCarriesNoReading: an uplink without readings is valid only
// with an update report, and its readings key must still be there.
func TestOnlyAPullCarriesNoReading(t *testing.T) {
	t.Parallel()
	report := map[int]any{1: 3, 2: releaseID, 3: 9, 4: 1}
	reading := map[int]any{1: 1, 2: 1, 3: ms, 5: 20.0}
	for _, tc := range []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"pull", enc(t, map[int]any{1: []any{}, 5: report}), true},
		{"pull with replies, epoch and config report", enc(t, map[int]any{1: []any{}, 2: []any{4}, 3: 2, 4: map[int]any{1: 5}, 5: report}), true},
		{"readings with a report", enc(t, map[int]any{1: []any{reading}, 5: report}), true},
		{"no readings, no report", enc(t, map[int]any{1: []any{}}), false},
		{"no readings, config report only", enc(t, map[int]any{1: []any{}, 4: map[int]any{1: 5}}), false},
		{"report without the readings key", enc(t, map[int]any{5: report}), false},
		{"report with null readings", enc(t, map[int]any{1: nil, 5: report}), false},
		{"report not a map", enc(t, map[int]any{1: []any{}, 5: 1}), false},
		{"report with an unknown field", enc(t, map[int]any{1: []any{}, 5: map[int]any{1: 3, 4: 2, 6: 0}}), false},
		{"report version too wide", enc(t, map[int]any{1: []any{}, 5: map[int]any{1: uint64(1) << 32, 4: 2}}), false},
		{"report reason too wide", enc(t, map[int]any{1: []any{}, 5: map[int]any{1: 3, 4: 3, 5: 256}}), false},
		{"report state negative", enc(t, map[int]any{1: []any{}, 5: map[int]any{1: 3, 4: -1}}), false},
		{"release id as text", enc(t, map[int]any{1: []any{}, 5: map[int]any{1: 3, 2: string(releaseID), 4: 1}}), false},
		{"too many readings with a report", enc(t, map[int]any{1: repeat(reading, payload.MaxReadings+1), 5: report}), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u, _, err := payload.DecodeUplink(tc.b)
			if tc.ok && (err != nil || u.Update == nil) {
				t.Fatalf("DecodeUplink(%x) = %+v, %v; want an uplink with its report", tc.b, u, err)
			}
			if !tc.ok && !errors.Is(err, payload.ErrInvalid) {
				t.Fatalf("DecodeUplink(%x) = %+v, %v; want ErrInvalid", tc.b, u, err)
			}
		})
	}
	t.Run("Marshal writes a pull's readings as an empty array", func(t *testing.T) {
		b, err := payload.Uplink{Update: &payload.UpdateReport{Version: 3, State: payload.UpdateInstalled}}.Marshal()
		if want := "a2" + "0180" + "05a2" + "0103" + "0402"; err != nil || fmt.Sprintf("%x", b) != want {
			t.Fatalf("pull encodes as %x (%v); want %s", b, err, want)
		}
	})
	t.Run("Marshal refuses an uplink without readings or report", func(t *testing.T) {
		if b, err := (payload.Uplink{Epoch: 1}).Marshal(); !errors.Is(err, payload.ErrInvalid) {
			t.Fatalf("Marshal = %x, %v; want ErrInvalid", b, err)
		}
	})
}

func TestUpdateOffer(t *testing.T) {
	t.Parallel()
	manifest, chunk := signedManifest(t), chunk512(t)
	for _, tc := range []struct {
		name string
		o    payload.UpdateOffer
		ok   bool
	}{
		{"manifest", payload.UpdateOffer{Manifest: manifest}, true},
		{"chunk", payload.UpdateOffer{Chunk: chunk}, true},
		{"largest manifest", payload.UpdateOffer{Manifest: make([]byte, release.MaxSigned)}, true},
		{"largest chunk", payload.UpdateOffer{Chunk: make([]byte, release.MaxChunkWire)}, true},
		{"neither", payload.UpdateOffer{}, false},
		{"both", payload.UpdateOffer{Manifest: manifest, Chunk: chunk}, false},
		{"empty manifest", payload.UpdateOffer{Manifest: []byte{}}, false},
		{"empty chunk", payload.UpdateOffer{Chunk: []byte{}}, false},
		{"empty manifest beside a chunk", payload.UpdateOffer{Manifest: []byte{}, Chunk: chunk}, false},
		{"manifest over MaxSigned", payload.UpdateOffer{Manifest: make([]byte, release.MaxSigned+1)}, false},
		{"chunk over MaxChunkWire", payload.UpdateOffer{Chunk: make([]byte, release.MaxChunkWire+1)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := payload.Reply{Acks: []uint64{7}, Update: &tc.o}
			b, err := r.Marshal()
			if !tc.ok {
				if !errors.Is(err, payload.ErrInvalid) {
					t.Fatalf("Marshal = %d bytes, %v; want ErrInvalid", len(b), err)
				}
				raw := map[int]any{}
				if tc.o.Manifest != nil {
					raw[1] = tc.o.Manifest
				}
				if tc.o.Chunk != nil {
					raw[2] = tc.o.Chunk
				}
				if _, err := payload.DecodeReply(enc(t, map[int]any{1: []any{7}, 3: raw})); !errors.Is(err, payload.ErrInvalid) {
					t.Fatalf("DecodeReply = %v; want ErrInvalid", err)
				}
				return
			}
			got, err := payload.DecodeReply(b)
			if err != nil || !reflect.DeepEqual(got, r) {
				t.Fatalf("round trip: %+v, %v; want %+v", got, err, r)
			}
		})
	}
	for name, b := range map[string][]byte{
		"offer not a map":    enc(t, map[int]any{1: []any{7}, 3: 1}),
		"unknown offer key":  enc(t, map[int]any{1: []any{7}, 3: map[int]any{3: chunk}}),
		"manifest as text":   enc(t, map[int]any{1: []any{7}, 3: map[int]any{1: string(manifest)}}),
		"null offer, no ack": enc(t, map[int]any{1: []any{}, 3: nil}),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if r, err := payload.DecodeReply(b); !errors.Is(err, payload.ErrInvalid) {
				t.Fatalf("DecodeReply = %+v, %v; want ErrInvalid", r, err)
			}
		})
	}
	t.Run("an offer alone is a reply", func(t *testing.T) {
		b, err := payload.Reply{Update: &payload.UpdateOffer{Manifest: manifest}}.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := payload.DecodeReply(b); err != nil {
			t.Fatalf("a reply with an offer and no ACK: %v", err)
		}
	})
}

// TestChunkReplyFitsTheRadio: a reply that carries a 512-byte chunk (the
// sensors' default) with a full set of ACKs and a configuration fits one
// radio packet; so does a pull with a full set of reply counters.
func TestChunkReplyFitsTheRadio(t *testing.T) {
	t.Parallel()
	acks := make([]uint64, 16)
	for i := range acks {
		acks[i] = math.MaxUint64 - uint64(i)
	}
	tx := int32(-20)
	r := payload.Reply{Acks: acks, Update: &payload.UpdateOffer{Chunk: chunk512(t)},
		Config: &payload.Config{Version: math.MaxUint32, SampleInterval: 86400, ReportInterval: 86400, Batch: 32, TxPower: &tx,
			CloudKey: make([]byte, payload.CloudKeySize)}}
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > radio.MaxPayload {
		t.Fatalf("a reply with a 512-byte chunk takes %d bytes; the radio carries %d", len(b), radio.MaxPayload)
	}
	pull := payload.Uplink{Replies: acks, Epoch: math.MaxUint32, Config: &payload.ConfigReport{Version: math.MaxUint32, Reason: 255},
		Update: &payload.UpdateReport{Version: math.MaxUint32, Release: releaseID, Next: math.MaxUint32, State: payload.UpdateRefused, Reason: 255}}
	p, err := pull.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("reply with a 512-byte chunk: %d bytes, largest pull: %d bytes, radio payload limit %d", len(b), len(p), radio.MaxPayload)
}

func TestUpdateStateNames(t *testing.T) {
	t.Parallel()
	for s, want := range map[payload.UpdateState]string{payload.UpdateFetching: "Fetching", payload.UpdateInstalled: "Installed",
		payload.UpdateRefused: "Refused", payload.UpdateRolledBack: "RolledBack", 0: "UpdateState(0)", 9: "UpdateState(9)"} {
		if got := s.String(); got != want {
			t.Errorf("UpdateState(%d).String() = %q, want %q", uint8(s), got, want)
		}
	}
	// The values are on the wire: pin them.
	if payload.UpdateFetching != 1 || payload.UpdateInstalled != 2 || payload.UpdateRefused != 3 || payload.UpdateRolledBack != 4 {
		t.Error("update state values moved")
	}
}
