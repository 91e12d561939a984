package sensor

import (
	"bytes"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/devconfig"
	"github.com/sealedsense/sealedsense/shared/payload"
)

func dbm(v int32) *int32 { return &v }

func TestDecide(t *testing.T) {
	t.Parallel()
	runs := running{settings: devconfig.Config{SampleInterval: 900, Batch: 2}, version: 5, report: &payload.ConfigReport{Version: 5}}
	for _, tc := range []struct {
		name, typ string
		cur       running
		in        payload.Config
		want      devconfig.Config
		version   uint32
		report    *payload.ConfigReport
	}{
		{"first configuration", "temperature", running{}, payload.Config{Version: 1, SampleInterval: 60, Batch: 4},
			devconfig.Config{SampleInterval: 60, Batch: 4}, 1, &payload.ConfigReport{Version: 1}},
		{"newer keeps the unset settings", "temperature", runs, payload.Config{Version: 6, ReportInterval: 600},
			devconfig.Config{SampleInterval: 900, ReportInterval: 600, Batch: 2}, 6, &payload.ConfigReport{Version: 6}},
		{"equal version changes nothing", "temperature", runs, payload.Config{Version: 5, SampleInterval: 60},
			runs.settings, 5, runs.report},
		{"older version changes nothing", "temperature", runs, payload.Config{Version: 4, SampleInterval: 60},
			runs.settings, 5, runs.report},
		{"sampling too fast", "temperature", runs, payload.Config{Version: 6, SampleInterval: 5},
			runs.settings, 5, &payload.ConfigReport{Version: 6, Reason: uint8(devconfig.OutOfRange)}},
		{"co2 under its warm-up", "co2", runs, payload.Config{Version: 6, SampleInterval: 30},
			runs.settings, 5, &payload.ConfigReport{Version: 6, Reason: uint8(devconfig.OutOfRange)}},
		{"touch batches nothing", "touch", running{}, payload.Config{Version: 2, Batch: 2},
			devconfig.Config{}, 0, &payload.ConfigReport{Version: 2, Reason: uint8(devconfig.OutOfRange)}},
		{"a batch over one packet", "humidity", runs, payload.Config{Version: 9, Batch: 33},
			runs.settings, 5, &payload.ConfigReport{Version: 9, Reason: uint8(devconfig.OutOfRange)}},
		{"fixed transmit power", "temperature", runs, payload.Config{Version: 6, TxPower: dbm(3)},
			runs.settings, 5, &payload.ConfigReport{Version: 6, Reason: uint8(devconfig.Unsupported)}},
		{"co2 transmit power", "co2", runs, payload.Config{Version: 6, TxPower: dbm(14)},
			devconfig.Config{SampleInterval: 900, Batch: 2, TxPower: dbm(14)}, 6, &payload.ConfigReport{Version: 6}},
		{"co2 transmit power too high", "co2", runs, payload.Config{Version: 6, TxPower: dbm(15)},
			runs.settings, 5, &payload.ConfigReport{Version: 6, Reason: uint8(devconfig.OutOfRange)}},
		{"a version with no setting", "temperature", runs, payload.Config{Version: 6},
			runs.settings, 5, &payload.ConfigReport{Version: 6, Reason: uint8(devconfig.OutOfRange)}},
		{"a cloud key only", "temperature", runs, payload.Config{CloudKey: bytes.Repeat([]byte{1}, 32)},
			runs.settings, 5, runs.report},
		{"a cloud key only, never configured", "temperature", running{}, payload.Config{CloudKey: bytes.Repeat([]byte{1}, 32), ReportInterval: 60},
			devconfig.Config{}, 0, nil},
		{"an unknown type", "toaster", running{}, payload.Config{Version: 1, SampleInterval: 60},
			devconfig.Config{}, 0, &payload.ConfigReport{Version: 1, Reason: uint8(devconfig.Unsupported)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := decide(tc.typ, tc.cur, tc.in)
			if !sameConfig(got.settings, tc.want) || got.version != tc.version || !sameReport(got.report, tc.report) {
				t.Fatalf("decide(%s, %+v, %+v) = %+v version %d report %+v; want %+v version %d report %+v",
					tc.typ, tc.cur, tc.in, got.settings, got.version, got.report, tc.want, tc.version, tc.report)
			}
		})
	}
}

func sameConfig(a, b devconfig.Config) bool {
	pa, pb := a.TxPower, b.TxPower
	a.TxPower, b.TxPower = nil, nil
	return a == b && (pa == nil) == (pb == nil) && (pa == nil || *pa == *pb)
}

func sameReport(a, b *payload.ConfigReport) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

// FuzzApplyConfig: whatever bytes a reply holds, decoding and applying it
// never panics, never lowers the version the sensor runs, and never
// leaves it running a configuration outside its type's ranges.
func FuzzApplyConfig(f *testing.F) {
	seed := func(typ uint8, r payload.Reply) {
		b, err := r.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(typ, b)
	}
	seed(0, payload.Reply{Acks: []uint64{1}, Config: &payload.Config{Version: 1, SampleInterval: 60, Batch: 4}})
	seed(1, payload.Reply{Config: &payload.Config{Version: 2, SampleInterval: 5}})
	seed(2, payload.Reply{Config: &payload.Config{Version: 3, TxPower: dbm(14), ReportInterval: 600}})
	seed(4, payload.Reply{Config: &payload.Config{Version: 3, Batch: 2}})
	seed(0, payload.Reply{Config: &payload.Config{ReportInterval: 120, CloudKey: bytes.Repeat([]byte{7}, 32)}})
	seed(3, payload.Reply{Config: &payload.Config{Version: 0xffffffff, TxPower: dbm(-1)}})
	f.Add(uint8(0), []byte{0xa1, 0x02, 0xa1, 0x03, 0x01})
	f.Add(uint8(0), []byte{})
	types := []string{"temperature", "humidity", "co2", "proximity", "touch", "waterDetector",
		"proximityCounter", "touchCounter", "motion", "deskOccupancy", "contact", "toaster"}
	creds := credentials.Sensor{DeviceID: "dev", StaticPrivate: make([]byte, 32), StaticPublic: make([]byte, 32),
		PSK: make([]byte, 32), CloudPublic: make([]byte, 32)}
	f.Fuzz(func(t *testing.T, typ uint8, b []byte) {
		creds := creds
		creds.DeviceType = types[int(typ)%len(types)]
		s, err := New(creds, 1, Config{})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // twice: a second reply meets a configured sensor
			r, err := payload.DecodeReply(b)
			if err != nil {
				return
			}
			_, before := s.Configuration()
			s.mu.Lock()
			s.apply(r, time.Unix(0, 0))
			s.mu.Unlock()
			cfg, v := s.Configuration()
			if v < before {
				t.Fatalf("%s: version went from %d to %d", creds.DeviceType, before, v)
			}
			if v != 0 {
				if reason, err := devconfig.Check(creds.DeviceType, cfg); err != nil {
					t.Fatalf("%s runs version %d %+v, which it must refuse: %v %v", creds.DeviceType, v, cfg, reason, err)
				}
			}
			if b := s.Batch(); b < 1 || b > payload.MaxReadings {
				t.Fatalf("%s: batch %d", creds.DeviceType, b)
			}
		}
	})
}
