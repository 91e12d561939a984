package event_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/payload"
)

var update = flag.Bool("update", false, "rewrite golden files")

func ptr[T any](v T) *T { return &v }

var at = time.Date(2026, 11, 25, 10, 30, 0, 500000000, time.UTC)

func reading(k payload.Kind) payload.Reading {
	r := payload.Reading{Seq: 42, Kind: k, Time: at.UnixMilli()}
	switch k {
	case payload.Temperature:
		r.Celsius = ptr(21.5)
		r.Samples = []payload.Sample{{Time: at.Add(-time.Minute).UnixMilli(), Value: 21.25}}
	case payload.Humidity:
		r.Celsius, r.Humidity = ptr(22.0), ptr(40.5)
		r.Backfilled = true
	case payload.ObjectPresent, payload.WaterPresent:
		r.Present = ptr(k == payload.WaterPresent)
	case payload.CO2:
		r.PPM = ptr(uint32(600))
	case payload.Battery:
		r.Percentage = ptr(uint8(88))
	case payload.TouchCount, payload.ObjectPresentCount:
		r.Total = ptr(uint32(1207))
	case payload.Motion, payload.Contact:
		r.State = ptr(true)
	case payload.DeskOccupancy:
		r.State = ptr(false)
	case payload.Pressure:
		r.Pascal = ptr(101325.0)
	}
	return r
}

// kinds are every reading kind.
var kinds = []payload.Kind{payload.Temperature, payload.Humidity, payload.Touch, payload.ObjectPresent, payload.WaterPresent,
	payload.CO2, payload.Battery, payload.TouchCount, payload.ObjectPresentCount, payload.Motion, payload.DeskOccupancy,
	payload.Contact, payload.Pressure}

// TestGoldenJSON pins the DT shape of every event type byte for byte.
func TestGoldenJSON(t *testing.T) {
	var all []event.Event
	for i, k := range kinds {
		r := reading(k)
		r.Seq += uint64(i)
		e, err := event.FromReading("proj", "dev", r)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, e)
	}
	ns, err := event.NetworkStatusFor("proj", "dev", at, []event.Reception{{ConnectorID: "ccon-1", RSSI: -80}, {ConnectorID: "ccon-2", RSSI: -95.5}})
	if err != nil {
		t.Fatal(err)
	}
	all = append(all, ns, event.ConnectionStatusFor("proj", "ccon-1", "ETHERNET", []string{"ETHERNET"}, at),
		event.EthernetStatusFor("proj", "ccon-1", "02:00:5e:10:00:01", []string{"CLOUD_UNREACHED"}, at),
		event.CellularStatusFor("proj", "ccon-1", 64, nil, at))
	var buf bytes.Buffer
	for _, e := range all {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
		if _, err := event.Parse(b); err != nil {
			t.Fatalf("our own %s event does not parse: %v", e.EventType, err)
		}
	}
	path := filepath.Join("testdata", "events.ndjson")
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update once)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("event JSON changed:\n%s\nwant:\n%s", buf.Bytes(), want)
	}
	if !strings.Contains(buf.String(), `"timestamp":"2026-11-25T10:30:00.500000000Z"`) {
		t.Fatal("timestamps must carry nine fraction digits, UTC, Z")
	}
}

// TestReadingData: each kind's data, as DT shapes it; a two-state
// reading's either state.
func TestReadingData(t *testing.T) {
	t.Parallel()
	up := `"updateTime":"2026-11-25T10:30:00.500000000Z"`
	with := func(k payload.Kind, f func(*payload.Reading)) payload.Reading {
		r := reading(k)
		f(&r)
		return r
	}
	tests := []struct {
		name string
		r    payload.Reading
		want string
	}{
		{"temperature", reading(payload.Temperature), `{"temperature":{"value":21.5,` + up + `,"samples":[{"value":21.5,"sampleTime":"2026-11-25T10:30:00.500000000Z"},{"value":21.25,"sampleTime":"2026-11-25T10:29:00.500000000Z"}],"isBackfilled":false}}`},
		{"humidity", reading(payload.Humidity), `{"humidity":{"temperature":22,"relativeHumidity":40.5,` + up + `,"samples":[],"isBackfilled":true}}`},
		{"touch", reading(payload.Touch), `{"touch":{` + up + `}}`},
		{"objectPresent", reading(payload.ObjectPresent), `{"objectPresent":{"state":"NOT_PRESENT",` + up + `}}`},
		{"waterPresent", reading(payload.WaterPresent), `{"waterPresent":{"state":"PRESENT",` + up + `}}`},
		{"co2", reading(payload.CO2), `{"co2":{"ppm":600,` + up + `}}`},
		{"batteryStatus", reading(payload.Battery), `{"batteryStatus":{"percentage":88,` + up + `}}`},
		{"touchCount", reading(payload.TouchCount), `{"touchCount":{"total":1207,` + up + `}}`},
		{"objectPresentCount", with(payload.ObjectPresentCount, func(r *payload.Reading) { r.Total = ptr(uint32(math.MaxUint32)) }),
			`{"objectPresentCount":{"total":4294967295,` + up + `}}`},
		{"motion", reading(payload.Motion), `{"motion":{"state":"MOTION_DETECTED",` + up + `}}`},
		{"no motion", with(payload.Motion, func(r *payload.Reading) { r.State = ptr(false) }), `{"motion":{"state":"NO_MOTION_DETECTED",` + up + `}}`},
		{"desk free", reading(payload.DeskOccupancy), `{"deskOccupancy":{"state":"NOT_OCCUPIED","remarks":[],` + up + `}}`},
		{"desk occupied", with(payload.DeskOccupancy, func(r *payload.Reading) { r.State = ptr(true) }), `{"deskOccupancy":{"state":"OCCUPIED","remarks":[],` + up + `}}`},
		{"contact closed", reading(payload.Contact), `{"contact":{"state":"CLOSED",` + up + `}}`},
		{"contact open", with(payload.Contact, func(r *payload.Reading) { r.State = ptr(false) }), `{"contact":{"state":"OPEN",` + up + `}}`},
		{"pressure", reading(payload.Pressure), `{"pressure":{"pascal":101325,` + up + `}}`},
		{"pressure, a fraction", with(payload.Pressure, func(r *payload.Reading) { r.Pascal = ptr(99999.5) }), `{"pressure":{"pascal":99999.5,` + up + `}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, err := event.FromEpochReading("proj", "dev", 2, tc.r)
			if err != nil {
				t.Fatal(err)
			}
			if string(e.Data) != tc.want || e.EventType != tc.r.Kind.EventType() || !e.Timestamp.Equal(at.Truncate(time.Millisecond)) {
				t.Fatalf("%s at %v:\n%s\nwant\n%s", e.EventType, e.Timestamp, e.Data, tc.want)
			}
			// What a device publishes through the emulator API in this
			// shape makes the same data.
			body := e.Data
			p, err := event.FromPublished("proj", "dev", "id", at, body)
			if err != nil || !bytes.Equal(p.Data, e.Data) {
				t.Fatalf("published, the data is %s (%v)", p.Data, err)
			}
		})
	}
	if _, err := event.FromReading("proj", "dev", payload.Reading{Seq: 1, Kind: payload.Motion, Time: at.UnixMilli()}); !errors.Is(err, payload.ErrInvalid) {
		t.Fatalf("a motion reading without its state: %v", err)
	}
}

func TestIDs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		a, b string
		same bool
	}{
		{"same reading", event.ID("dev", 1), event.ID("dev", 1), true},
		{"next reading", event.ID("dev", 1), event.ID("dev", 2), false},
		{"other device", event.ID("dev", 1), event.ID("dew", 1), false},
		{"framing", event.DerivedID("ab", "c", 1), event.DerivedID("a", "bc", 1), false},
		{"kind", event.DerivedID("dev", "networkStatus", 1), event.DerivedID("dev", "connectionStatus", 1), false},
		// Epoch 0 is the id space events had before epochs: stored events
		// keep their ids.
		{"epoch 0 is today's id", event.ReadingID("dev", 0, 1), event.ID("dev", 1), true},
		{"epoch 0 pinned", event.ReadingID("dev", 0, 1), "kf7i5rm0sgi5apm368hk", true},
		{"epoch 0 pinned, long id", event.ReadingID("0123456789abcdefghij", 0, 42), "mp460g5il70bog0n0l0r", true},
		{"same epoch, same reading", event.ReadingID("dev", 3, 1), event.ReadingID("dev", 3, 1), true},
		{"reset: new epoch, same seq", event.ReadingID("dev", 1, 1), event.ReadingID("dev", 0, 1), false},
		{"epochs apart", event.ReadingID("dev", 1, 1), event.ReadingID("dev", 2, 1), false},
		{"epoch is not seq", event.ReadingID("dev", 1, 2), event.ReadingID("dev", 2, 1), false},
		{"other device, same epoch", event.ReadingID("dev", 1, 1), event.ReadingID("dew", 1, 1), false},
	}
	for _, tc := range tests {
		if (tc.a == tc.b) != tc.same {
			t.Errorf("%s: %s vs %s", tc.name, tc.a, tc.b)
		}
		if len(tc.a) != 20 || strings.Trim(tc.a, "0123456789abcdefghijklmnopqrstuv") != "" {
			t.Errorf("%s: %q is not a 20-character DT-style id", tc.name, tc.a)
		}
	}
}

func TestFromEpochReading(t *testing.T) {
	t.Parallel()
	r := reading(payload.Temperature)
	e0, err := event.FromEpochReading("proj", "dev", 0, r)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := event.FromReading("proj", "dev", r)
	e5, err := event.FromEpochReading("proj", "dev", 5, r)
	if err != nil {
		t.Fatal(err)
	}
	if e0.EventID != old.EventID || e0.EventID != event.ID("dev", r.Seq) {
		t.Fatalf("epoch 0 id %s, want today's %s", e0.EventID, old.EventID)
	}
	if e5.EventID != event.ReadingID("dev", 5, r.Seq) || e5.EventID == e0.EventID {
		t.Fatalf("epoch 5 id %s", e5.EventID)
	}
	if !bytes.Equal(e5.Data, e0.Data) {
		t.Fatal("the epoch changed the event's data")
	}
}

// TestNetworkStatusForUnencodable: an RSSI JSON cannot carry is an
// error, not an event with no data.
func TestNetworkStatusForUnencodable(t *testing.T) {
	t.Parallel()
	for _, rssi := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		t.Run(fmt.Sprint(rssi), func(t *testing.T) {
			t.Parallel()
			heard := []event.Reception{{ConnectorID: "ccon-1", RSSI: -80}, {ConnectorID: "ccon-2", RSSI: rssi}}
			if e, err := event.NetworkStatusFor("proj", "dev", at, heard); err == nil {
				t.Fatalf("RSSI %v made the event %s", rssi, e.Data)
			}
		})
	}
}

func TestSignalStrength(t *testing.T) {
	t.Parallel()
	for rssi, want := range map[float64]int{-130: 0, -120: 0, -85: 50, -50: 100, -20: 100} {
		if got := event.SignalStrength(rssi); got != want {
			t.Errorf("SignalStrength(%v) = %d, want %d", rssi, got, want)
		}
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	good, _ := json.Marshal(event.ConnectionStatusFor("p", "c", "OFFLINE", nil, at))
	tests := map[string]string{
		"unknown field":  strings.Replace(string(good), `{"eventId"`, `{"extra":1,"eventId"`, 1),
		"trailing":       string(good) + `{}`,
		"bad timestamp":  strings.Replace(string(good), `"timestamp":"2026-11-25T`, `"timestamp":"yesterday`, 1),
		"data mismatch":  strings.Replace(string(good), `"data":{"connectionStatus"`, `"data":{"temperature"`, 1),
		"not json":       "{",
		"missing fields": `{"data":{},"timestamp":"2026-11-25T10:30:00Z"}`,
	}
	for name, in := range tests {
		if _, err := event.Parse([]byte(in)); !errors.Is(err, event.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	b, _ := os.ReadFile(filepath.Join("testdata", "events.ndjson"))
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		f.Add(line)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := event.Parse(b)
		if err != nil {
			return
		}
		again, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		e2, err := event.Parse(again)
		if err != nil || e2.EventID != e.EventID || !e2.Timestamp.Equal(e.Timestamp) {
			t.Fatalf("re-encoding changed the event: %v", err)
		}
	})
}
