package payload_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/radio"
	"github.com/sealedsense/sealedsense/shared/release"
)

func ptr[T any](v T) *T { return &v }

const ms = int64(1_764_000_000_000)

func readings() []payload.Reading {
	return []payload.Reading{
		{Seq: 1, Kind: payload.Temperature, Time: ms, Celsius: ptr(21.5), Samples: []payload.Sample{{Time: ms - 1000, Value: 21.4}}},
		{Seq: 2, Kind: payload.Humidity, Time: ms, Celsius: ptr(22.0), Humidity: ptr(41.5)},
		{Seq: 3, Kind: payload.Touch, Time: ms, Backfilled: true},
		{Seq: 4, Kind: payload.ObjectPresent, Time: ms, Present: ptr(false)},
		{Seq: 5, Kind: payload.WaterPresent, Time: ms, Present: ptr(true)},
		{Seq: 6, Kind: payload.CO2, Time: ms, PPM: ptr(uint32(612))},
		{Seq: 7, Kind: payload.Battery, Time: ms, Percentage: ptr(uint8(93))},
		{Seq: 8, Kind: payload.TouchCount, Time: ms, Total: ptr(uint32(1207))},
		{Seq: 9, Kind: payload.ObjectPresentCount, Time: ms, Total: ptr(uint32(math.MaxUint32))},
		{Seq: 10, Kind: payload.Motion, Time: ms, State: ptr(true)},
		{Seq: 11, Kind: payload.DeskOccupancy, Time: ms, State: ptr(false), Backfilled: true},
		{Seq: 12, Kind: payload.Contact, Time: ms, State: ptr(true)},
		{Seq: 13, Kind: payload.Pressure, Time: ms, Pascal: ptr(101325.0)},
	}
}

// TestEventTypes: every kind names its DT event type, and no two share one.
func TestEventTypes(t *testing.T) {
	t.Parallel()
	want := map[payload.Kind]string{
		payload.Temperature: "temperature", payload.Humidity: "humidity", payload.Touch: "touch",
		payload.ObjectPresent: "objectPresent", payload.WaterPresent: "waterPresent", payload.CO2: "co2",
		payload.Battery: "batteryStatus", payload.TouchCount: "touchCount", payload.ObjectPresentCount: "objectPresentCount",
		payload.Motion: "motion", payload.DeskOccupancy: "deskOccupancy", payload.Contact: "contact", payload.Pressure: "pressure",
		0: "", 14: "", 255: "",
	}
	for k, typ := range want {
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			if got := k.EventType(); got != typ {
				t.Fatalf("Kind(%d).EventType() = %q, want %q", k, got, typ)
			}
		})
	}
	if len(readings()) != 13 {
		t.Fatalf("readings() has %d kinds; every kind needs one", len(readings()))
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, r := range readings() {
		t.Run(r.Kind.EventType(), func(t *testing.T) {
			t.Parallel()
			in := payload.Uplink{Readings: []payload.Reading{r}, Replies: []uint64{4}, Epoch: 3, Config: &payload.ConfigReport{Version: 2, Reason: 1}}
			b, err := in.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			out, refused, err := payload.DecodeUplink(b)
			if err != nil || refused != nil {
				t.Fatal(err, refused)
			}
			if !reflect.DeepEqual(in, out) {
				t.Fatalf("round trip: got %+v, want %+v", out, in)
			}
		})
	}
	for _, rep := range []payload.Reply{
		{Acks: []uint64{1, 2, 1 << 40}, Config: &payload.Config{ReportInterval: 60}},
		{Acks: []uint64{7}, Config: &payload.Config{CloudKey: bytes.Repeat([]byte{0xc1}, payload.CloudKeySize)}},
	} {
		b, err := rep.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, err := payload.DecodeReply(b)
		if err != nil || !reflect.DeepEqual(got, rep) {
			t.Fatalf("reply round trip: got %+v (%v), want %+v", got, err, rep)
		}
	}
}

func TestFullPacketFitsTheRadio(t *testing.T) {
	t.Parallel()
	var u payload.Uplink
	for i := range payload.MaxReadings {
		r := readings()[0]
		r.Seq = uint64(1<<40 + i)
		r.Celsius = ptr(-12.345678)
		u.Readings = append(u.Readings, r)
	}
	u.Replies = make([]uint64, payload.MaxReplies)
	for i := range u.Replies {
		u.Replies[i] = 1 << 30
	}
	b, err := u.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// A sensor that packs this many readings must split them; what matters
	// is that the sensor's packer can see the size and that a realistic
	// packet of 16 readings fits.
	u.Readings = u.Readings[:16]
	b16, _ := u.Marshal()
	if len(b16) > radio.MaxPayload {
		t.Fatalf("16 temperature readings take %d bytes; the radio carries %d", len(b16), radio.MaxPayload)
	}
	t.Logf("32 readings: %d bytes, 16 readings: %d bytes, radio payload limit %d", len(b), len(b16), radio.MaxPayload)
}

func TestRejects(t *testing.T) {
	t.Parallel()
	enc := func(v any) []byte {
		b, err := cbor.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good, _ := payload.Uplink{Readings: readings()[:1]}.Marshal()
	validReading := map[int]any{1: 1, 2: 1, 3: ms, 5: 20.0}
	tests := map[string][]byte{
		"empty input":       nil,
		"not cbor":          {0xff, 0xff},
		"trailing garbage":  append(append([]byte{}, good...), 0x00),
		"unknown field":     enc(map[int]any{1: []any{validReading}, 9: 1}),
		"wrong type":        enc(map[int]any{1: "readings"}),
		"reading not a map": enc(map[int]any{1: 7}),
		"indefinite length": {0xa1, 0x01, 0x9f, 0xff},
		"tag":               {0xc1, 0x1a, 0x00, 0x00, 0x00, 0x01},
		"no readings":       enc(map[int]any{1: []any{}}),
		"too many readings": enc(map[int]any{1: repeat(validReading, payload.MaxReadings+1)}),
		"too many replies":  enc(map[int]any{1: []any{validReading}, 2: repeat(1, payload.MaxReplies+1)}),
		"epoch not a count": enc(map[int]any{1: []any{validReading}, 3: -1}),
		"only bad readings": enc(map[int]any{1: []any{"bad"}, 9: 1}),
	}
	// a2 01 80 01 80 is {1: [], 1: []}.
	tests["duplicate key"] = []byte{0xa2, 0x01, 0x80, 0x01, 0x80}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, _, err := payload.DecodeUplink(b); !errors.Is(err, payload.ErrInvalid) {
				t.Fatalf("DecodeUplink = %v, want ErrInvalid", err)
			}
		})
	}
	replies := map[string][]byte{
		"empty reply":     enc(map[int]any{1: []any{}}),
		"too many acks":   enc(map[int]any{1: repeat(1, payload.MaxAcks+1)}),
		"bad interval":    enc(map[int]any{1: []any{1}, 2: map[int]any{1: 5}}),
		"unknown config":  enc(map[int]any{1: []any{1}, 2: map[int]any{7: 5}}),
		"short cloud key": enc(map[int]any{1: []any{1}, 2: map[int]any{2: make([]byte, 31)}}),
		"long cloud key":  enc(map[int]any{1: []any{1}, 2: map[int]any{2: make([]byte, 33)}}),
		"cloud key text":  enc(map[int]any{1: []any{1}, 2: map[int]any{2: strings.Repeat("k", 32)}}),
	}
	for name, b := range replies {
		if _, err := payload.DecodeReply(b); !errors.Is(err, payload.ErrInvalid) {
			t.Errorf("%s: DecodeReply = %v, want ErrInvalid", name, err)
		}
	}
}

// TestBadReadingRefusedAlone: a reading that does not decode or does not
// validate is refused on its own, with its place and (when it can be
// read) its sequence number; the packet's other readings stand.
func TestBadReadingRefusedAlone(t *testing.T) {
	t.Parallel()
	enc := func(v any) []byte {
		b, err := cbor.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := map[int]any{1: 1, 2: 1, 3: ms, 5: 20.0}
	tests := []struct {
		name string
		bad  any
		seq  uint64
	}{
		{"unknown reading field", map[int]any{1: 7, 2: 1, 3: ms, 5: 20.0, 42: 1}, 7},
		{"missing value", map[int]any{1: 7, 2: 1, 3: ms}, 7},
		{"extra value", map[int]any{1: 7, 2: 3, 3: ms, 8: 400}, 7},
		{"out of range", map[int]any{1: 7, 2: 2, 3: ms, 5: 20.0, 6: 130.0}, 7},
		{"nan", map[int]any{1: 7, 2: 1, 3: ms, 5: math.NaN()}, 7},
		{"infinite", map[int]any{1: 7, 2: 1, 3: ms, 5: math.Inf(1)}, 7},
		{"unknown kind", map[int]any{1: 7, 2: 99, 3: ms}, 7},
		{"no time", map[int]any{1: 7, 2: 3}, 7},
		{"negative time", map[int]any{1: 7, 2: 3, 3: -5}, 7},
		{"wrong type", map[int]any{1: 7, 2: 1, 3: "now", 5: 20.0}, 7},
		{"not a map", "reading", 0},
		{"too many samples", map[int]any{1: 7, 2: 1, 3: ms, 5: 20.0, 10: repeat(map[int]any{1: ms, 2: 1.0}, payload.MaxSamples+1)}, 7},
		{"counter without total", map[int]any{1: 7, 2: 8, 3: ms}, 7},
		{"counter with a state", map[int]any{1: 7, 2: 9, 3: ms, 11: 3, 12: true}, 7},
		{"total not a count", map[int]any{1: 7, 2: 8, 3: ms, 11: -1}, 7},
		{"total past uint32", map[int]any{1: 7, 2: 9, 3: ms, 11: uint64(math.MaxUint32) + 1}, 7},
		{"motion without state", map[int]any{1: 7, 2: 10, 3: ms}, 7},
		{"motion as presence", map[int]any{1: 7, 2: 10, 3: ms, 7: true}, 7},
		{"state not a bool", map[int]any{1: 7, 2: 11, 3: ms, 12: 1}, 7},
		{"contact with a total", map[int]any{1: 7, 2: 12, 3: ms, 12: false, 11: 1}, 7},
		{"presence as state", map[int]any{1: 7, 2: 4, 3: ms, 12: true}, 7},
		{"pressure without pascal", map[int]any{1: 7, 2: 13, 3: ms}, 7},
		{"pressure too low", map[int]any{1: 7, 2: 13, 3: ms, 13: 29999.9}, 7},
		{"pressure too high", map[int]any{1: 7, 2: 13, 3: ms, 13: 110000.1}, 7},
		{"pressure nan", map[int]any{1: 7, 2: 13, 3: ms, 13: math.NaN()}, 7},
		{"pressure infinite", map[int]any{1: 7, 2: 13, 3: ms, 13: math.Inf(-1)}, 7},
		{"pascal on co2", map[int]any{1: 7, 2: 6, 3: ms, 8: 400, 13: 101325.0}, 7},
		{"touch with a state", map[int]any{1: 7, 2: 3, 3: ms, 12: true}, 7},
		{"unknown kind 14", map[int]any{1: 7, 2: 14, 3: ms, 12: true}, 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u, refused, err := payload.DecodeUplink(enc(map[int]any{1: []any{good, tc.bad}, 3: 2}))
			if err != nil {
				t.Fatalf("one bad reading failed the packet: %v", err)
			}
			if len(u.Readings) != 1 || u.Readings[0].Seq != 1 || u.Epoch != 2 {
				t.Fatalf("the good reading was not kept: %+v", u)
			}
			if len(refused) != 1 || refused[0].Index != 1 || refused[0].Seq != tc.seq || !errors.Is(refused[0].Err, payload.ErrInvalid) {
				t.Fatalf("refusals %+v, want reading 1 (seq %d) refused with ErrInvalid", refused, tc.seq)
			}
		})
	}
}

// TestEpochIsOptional: a sensor in epoch 0 encodes exactly as before the
// epoch existed, and an older sensor's packet decodes with epoch 0.
func TestEpochIsOptional(t *testing.T) {
	t.Parallel()
	r := readings()[0]
	old, err := cbor.Marshal(map[int]any{1: []any{map[int]any{1: r.Seq, 2: 1, 3: r.Time, 5: *r.Celsius, 10: []any{map[int]any{1: r.Samples[0].Time, 2: r.Samples[0].Value}}}}})
	if err != nil {
		t.Fatal(err)
	}
	u, refused, err := payload.DecodeUplink(old)
	if err != nil || refused != nil || u.Epoch != 0 || len(u.Readings) != 1 {
		t.Fatalf("an uplink without epoch: %+v %v %v", u, refused, err)
	}
	zero, _ := payload.Uplink{Readings: []payload.Reading{r}}.Marshal()
	withEpoch, _ := payload.Uplink{Readings: []payload.Reading{r}, Epoch: 1}.Marshal()
	if len(withEpoch) != len(zero)+2 {
		t.Fatalf("epoch 1 adds %d bytes, want 2 (one key, one small integer)", len(withEpoch)-len(zero))
	}
	if u, _, err := payload.DecodeUplink(withEpoch); err != nil || u.Epoch != 1 {
		t.Fatalf("epoch 1: %+v %v", u, err)
	}
}

func repeat(v any, n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func FuzzDecodeUplink(f *testing.F) {
	for i, r := range readings() {
		b, _ := payload.Uplink{Readings: []payload.Reading{r}}.Marshal()
		f.Add(b)
		// The same with a boot epoch, small and large.
		b, _ = payload.Uplink{Readings: []payload.Reading{r}, Replies: []uint64{9}, Epoch: uint32(1 + i*1000003)}.Marshal()
		f.Add(b)
	}
	all, _ := payload.Uplink{Readings: readings(), Epoch: math.MaxUint32}.Marshal()
	f.Add(all)
	// A configuration report: applied, and refused with a reason.
	for _, rep := range []payload.ConfigReport{{Version: 3}, {Version: math.MaxUint32, Reason: 1}} {
		b, _ := payload.Uplink{Readings: readings()[:1], Config: &rep}.Marshal()
		f.Add(b)
	}
	// A packet with one bad reading (celsius out of range) beside a good one.
	mixed, _ := cbor.Marshal(map[int]any{1: []any{map[int]any{1: 1, 2: 1, 3: ms, 5: 20.0}, map[int]any{1: 2, 2: 1, 3: ms, 5: 900.0}}, 3: 5})
	f.Add(mixed)
	// The newer kinds, each beside a bad reading of its own kind (a
	// missing value, a value out of range or of the wrong kind).
	for _, bad := range []map[int]any{
		{1: 2, 2: 8, 3: ms},
		{1: 2, 2: 9, 3: ms, 11: -4},
		{1: 2, 2: 10, 3: ms, 7: true},
		{1: 2, 2: 11, 3: ms, 12: 1},
		{1: 2, 2: 12, 3: ms, 12: true, 11: 1},
		{1: 2, 2: 13, 3: ms, 13: 120000.0},
		{1: 2, 2: 13, 3: ms, 13: math.NaN()},
	} {
		good := readings()[bad[2].(int)-1]
		good.Seq = 1
		b, _ := cbor.Marshal(map[int]any{1: []any{good, bad}})
		f.Add(b)
	}
	f.Add([]byte{0xa0})
	// Update reports: on readings, and alone in pulls, in every state.
	id := bytes.Repeat([]byte{0x5e}, payload.ReleaseIDSize)
	for _, rep := range []payload.UpdateReport{
		{Version: 0, State: payload.UpdateInstalled},
		{Version: 7, Release: id, State: payload.UpdateInstalled},
		{Version: 3, Release: id, Next: 127, State: payload.UpdateFetching},
		{Version: 3, Release: id, Next: 4, State: payload.UpdateRefused, Reason: 8},
		{Version: 3, State: payload.UpdateRefused, Reason: 1},
		{Version: math.MaxUint32, Release: id, State: payload.UpdateRolledBack, Reason: 12},
	} {
		b, _ := payload.Uplink{Readings: readings()[:1], Update: &rep}.Marshal()
		f.Add(b)
		b, _ = payload.Uplink{Replies: []uint64{3}, Epoch: 2, Update: &rep}.Marshal()
		f.Add(b)
	}
	// A pull whose report is cut short, and one without its readings key.
	f.Add([]byte{0xa2, 0x01, 0x80, 0x05, 0xa1, 0x01, 0x03})
	f.Add([]byte{0xa1, 0x05, 0xa2, 0x01, 0x03, 0x04, 0x02})
	f.Fuzz(func(t *testing.T, b []byte) {
		u, refused, err := payload.DecodeUplink(b)
		if err != nil {
			return
		}
		for _, r := range refused {
			if !errors.Is(r.Err, payload.ErrInvalid) {
				t.Fatalf("refusal %+v does not wrap ErrInvalid", r)
			}
		}
		if len(u.Readings) == 0 && u.Update == nil {
			return // every reading refused and no report: nothing to re-encode
		}
		if len(u.Replies) == 0 {
			u.Replies = nil // an empty list of reply counters encodes as none
		}
		again, err := u.Marshal()
		if err != nil {
			t.Fatalf("a decoded uplink's valid readings do not encode: %v", err)
		}
		u2, refused2, err := payload.DecodeUplink(again)
		if err != nil || refused2 != nil || !reflect.DeepEqual(u, u2) {
			t.Fatalf("re-encoding changed the uplink: %v %v", err, refused2)
		}
	})
}

func FuzzDecodeReply(f *testing.F) {
	for _, r := range []payload.Reply{
		{Acks: []uint64{7}, Config: &payload.Config{ReportInterval: 30}},
		{Acks: []uint64{8}, Config: &payload.Config{CloudKey: bytes.Repeat([]byte{0x5a}, payload.CloudKeySize)}},
		{Config: &payload.Config{ReportInterval: 60, CloudKey: make([]byte, payload.CloudKeySize)}},
		{Acks: []uint64{9}, Update: &payload.UpdateOffer{Manifest: signedManifest(f)}},
		{Acks: []uint64{10}, Update: &payload.UpdateOffer{Chunk: chunk512(f)}},
		{Update: &payload.UpdateOffer{Chunk: chunk512(f)[:40]}},
		{Acks: []uint64{11}, Config: &payload.Config{Version: 2, Batch: 3}, Update: &payload.UpdateOffer{Manifest: make([]byte, release.MaxSigned)}},
	} {
		b, _ := r.Marshal()
		f.Add(b)
	}
	// An offer with both pieces, and one with an empty manifest.
	f.Add([]byte{0xa2, 0x01, 0x81, 0x01, 0x03, 0xa2, 0x01, 0x41, 0x00, 0x02, 0x41, 0x00})
	f.Add([]byte{0xa2, 0x01, 0x81, 0x01, 0x03, 0xa1, 0x01, 0x40})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := payload.DecodeReply(b)
		if err != nil {
			return
		}
		again, err := r.Marshal()
		if err != nil {
			t.Fatalf("a decoded reply does not encode: %v", err)
		}
		if r2, err := payload.DecodeReply(again); err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("re-encoding changed the reply: %v", err)
		}
	})
}
