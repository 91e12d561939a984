package payload_test

import (
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/radio"
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
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, r := range readings() {
		t.Run(r.Kind.EventType(), func(t *testing.T) {
			t.Parallel()
			in := payload.Uplink{Readings: []payload.Reading{r}, Replies: []uint64{4}}
			b, err := in.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			out, err := payload.DecodeUplink(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(in, out) {
				t.Fatalf("round trip: got %+v, want %+v", out, in)
			}
		})
	}
	rep := payload.Reply{Acks: []uint64{1, 2, 1 << 40}, Config: &payload.Config{ReportInterval: 60}}
	b, err := rep.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := payload.DecodeReply(b)
	if err != nil || !reflect.DeepEqual(got, rep) {
		t.Fatalf("reply round trip: %+v %v", got, err)
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
		"empty input":           nil,
		"not cbor":              {0xff, 0xff},
		"trailing garbage":      append(append([]byte{}, good...), 0x00),
		"unknown field":         enc(map[int]any{1: []any{validReading}, 9: 1}),
		"unknown reading field": enc(map[int]any{1: []any{map[int]any{1: 1, 2: 1, 3: ms, 5: 20.0, 42: 1}}}),
		"wrong type":            enc(map[int]any{1: "readings"}),
		"indefinite length":     {0xa1, 0x01, 0x9f, 0xff},
		"tag":                   {0xc1, 0x1a, 0x00, 0x00, 0x00, 0x01},
		"no readings":           enc(map[int]any{1: []any{}}),
		"too many readings":     enc(map[int]any{1: repeat(validReading, payload.MaxReadings+1)}),
		"missing value":         enc(map[int]any{1: []any{map[int]any{1: 1, 2: 1, 3: ms}}}),
		"extra value":           enc(map[int]any{1: []any{map[int]any{1: 1, 2: 3, 3: ms, 8: 400}}}),
		"out of range":          enc(map[int]any{1: []any{map[int]any{1: 1, 2: 2, 3: ms, 5: 20.0, 6: 130.0}}}),
		"nan":                   enc(map[int]any{1: []any{map[int]any{1: 1, 2: 1, 3: ms, 5: math.NaN()}}}),
		"unknown kind":          enc(map[int]any{1: []any{map[int]any{1: 1, 2: 99, 3: ms}}}),
		"no time":               enc(map[int]any{1: []any{map[int]any{1: 1, 2: 3}}}),
	}
	// a2 01 80 01 80 is {1: [], 1: []}.
	tests["duplicate key"] = []byte{0xa2, 0x01, 0x80, 0x01, 0x80}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := payload.DecodeUplink(b); !errors.Is(err, payload.ErrInvalid) {
				t.Fatalf("DecodeUplink = %v, want ErrInvalid", err)
			}
		})
	}
	replies := map[string][]byte{
		"empty reply":    enc(map[int]any{1: []any{}}),
		"too many acks":  enc(map[int]any{1: repeat(1, payload.MaxAcks+1)}),
		"bad interval":   enc(map[int]any{1: []any{1}, 2: map[int]any{1: 5}}),
		"unknown config": enc(map[int]any{1: []any{1}, 2: map[int]any{7: 5}}),
	}
	for name, b := range replies {
		if _, err := payload.DecodeReply(b); !errors.Is(err, payload.ErrInvalid) {
			t.Errorf("%s: DecodeReply = %v, want ErrInvalid", name, err)
		}
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
	for _, r := range readings() {
		b, _ := payload.Uplink{Readings: []payload.Reading{r}}.Marshal()
		f.Add(b)
	}
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := payload.DecodeUplink(b)
		if err != nil {
			return
		}
		again, err := u.Marshal()
		if err != nil {
			t.Fatalf("a decoded uplink does not encode: %v", err)
		}
		u2, err := payload.DecodeUplink(again)
		if err != nil || !reflect.DeepEqual(u, u2) {
			t.Fatalf("re-encoding changed the uplink: %v", err)
		}
	})
}

func FuzzDecodeReply(f *testing.F) {
	b, _ := payload.Reply{Acks: []uint64{7}, Config: &payload.Config{ReportInterval: 30}}.Marshal()
	f.Add(b)
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
