package ingest

import (
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/payload"
)

// TestOfDeviceType: a sensor stores only the readings its type takes
// (and its battery); any other is refused alone, by sequence number,
// without its value.
func TestOfDeviceType(t *testing.T) {
	t.Parallel()
	ms := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixMilli()
	c, on, n, pa, pct := 21.5, true, uint32(7), 101325.0, uint8(90)
	readings := []payload.Reading{
		{Seq: 1, Kind: payload.Temperature, Time: ms, Celsius: &c},
		{Seq: 2, Kind: payload.Motion, Time: ms, State: &on},
		{Seq: 3, Kind: payload.Battery, Time: ms, Percentage: &pct},
		{Seq: 4, Kind: payload.TouchCount, Time: ms, Total: &n},
		{Seq: 5, Kind: payload.Pressure, Time: ms, Pascal: &pa},
	}
	tests := []struct {
		deviceType string
		kept       []uint64
	}{
		{"temperature", []uint64{1, 3}},
		{"motion", []uint64{2, 3}},
		{"touchCounter", []uint64{3, 4}},
		{"co2", []uint64{3, 5}},
		{"contact", []uint64{3}},
		{"no-such-type", []uint64{3}},
	}
	for _, tt := range tests {
		t.Run(tt.deviceType, func(t *testing.T) {
			kept, bad := ofDeviceType(readings, tt.deviceType)
			var got []uint64
			for _, r := range kept {
				got = append(got, r.Seq)
			}
			if len(got) != len(tt.kept) || len(kept)+len(bad) != len(readings) {
				t.Fatalf("kept %v, want %v; refused %d", got, tt.kept, len(bad))
			}
			for i := range got {
				if got[i] != tt.kept[i] {
					t.Fatalf("kept %v, want %v", got, tt.kept)
				}
			}
			for _, b := range bad {
				if b.reason != "kind-not-of-device-type" || b.seq == 0 || containsValue(b.err.Error()) {
					t.Errorf("refusal %+v", b)
				}
			}
		})
	}
	if len(readings) != 5 || readings[1].Seq != 2 {
		t.Fatal("ofDeviceType changed its input")
	}
}
