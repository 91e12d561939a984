package event_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/event"
)

// Times in the published bodies below: at is the time of publication.
const (
	atStamp    = "2026-11-25T10:30:00.500000000Z"
	earlier    = "2026-11-25T10:00:00Z"
	earlierOut = "2026-11-25T10:00:00.000000000Z"
)

// accepted are bodies for every publishable type, with the data each
// becomes: defaults filled in, times in our form.
var accepted = []struct {
	name, body, data string
	timestamp        string // the event's, when not atStamp
}{
	{"touch", `{"touch":{}}`, `{"updateTime":"` + atStamp + `"}`, ""},
	{"touch at a time", `{"touch":{"updateTime":"` + earlier + `"}}`, `{"updateTime":"` + earlierOut + `"}`, earlierOut},
	{"touch with whitespace", " \n{ \"touch\" : { } }\n", `{"updateTime":"` + atStamp + `"}`, ""},
	{"temperature, its value its sample", `{"temperature":{"value":21.5}}`,
		`{"value":21.5,"updateTime":"` + atStamp + `","samples":[{"value":21.5,"sampleTime":"` + atStamp + `"}],"isBackfilled":false}`, ""},
	{"temperature in full, time zone normalized", `{"temperature":{"value":-60,"updateTime":"2026-11-25T11:00:00+01:00","samples":[{"value":150,"sampleTime":"2026-11-25T09:59:00Z"},{"value":20}],"isBackfilled":true}}`,
		`{"value":-60,"updateTime":"` + earlierOut + `","samples":[{"value":150,"sampleTime":"2026-11-25T09:59:00.000000000Z"},{"value":20,"sampleTime":"` + atStamp + `"}],"isBackfilled":true}`, earlierOut},
	{"temperature without samples", `{"temperature":{"value":1.25,"samples":[]}}`,
		`{"value":1.25,"updateTime":"` + atStamp + `","samples":[],"isBackfilled":false}`, ""},
	{"humidity", `{"humidity":{"temperature":22,"relativeHumidity":40.5}}`,
		`{"temperature":22,"relativeHumidity":40.5,"updateTime":"` + atStamp + `","samples":[],"isBackfilled":false}`, ""},
	{"humidity with samples", `{"humidity":{"temperature":22,"relativeHumidity":0,"samples":[{"temperature":21,"relativeHumidity":100,"sampleTime":"` + earlier + `"}],"isBackfilled":false}}`,
		`{"temperature":22,"relativeHumidity":0,"updateTime":"` + atStamp + `","samples":[{"temperature":21,"relativeHumidity":100,"sampleTime":"` + earlierOut + `"}],"isBackfilled":false}`, ""},
	{"objectPresent", `{"objectPresent":{"state":"PRESENT"}}`, `{"state":"PRESENT","updateTime":"` + atStamp + `"}`, ""},
	{"waterPresent", `{"waterPresent":{"state":"NOT_PRESENT","updateTime":"` + earlier + `"}}`, `{"state":"NOT_PRESENT","updateTime":"` + earlierOut + `"}`, earlierOut},
	{"touchCount", `{"touchCount":{"total":4294967295}}`, `{"total":4294967295,"updateTime":"` + atStamp + `"}`, ""},
	{"objectPresentCount", `{"objectPresentCount":{"total":0}}`, `{"total":0,"updateTime":"` + atStamp + `"}`, ""},
	{"co2", `{"co2":{"ppm":50000}}`, `{"ppm":50000,"updateTime":"` + atStamp + `"}`, ""},
	{"pressure", `{"pressure":{"pascal":101325.5}}`, `{"pascal":101325.5,"updateTime":"` + atStamp + `"}`, ""},
	{"motion", `{"motion":{"state":"MOTION_DETECTED"}}`, `{"state":"MOTION_DETECTED","updateTime":"` + atStamp + `"}`, ""},
	{"no motion", `{"motion":{"state":"NO_MOTION_DETECTED"}}`, `{"state":"NO_MOTION_DETECTED","updateTime":"` + atStamp + `"}`, ""},
	{"deskOccupancy without remarks", `{"deskOccupancy":{"state":"OCCUPIED"}}`, `{"state":"OCCUPIED","remarks":[],"updateTime":"` + atStamp + `"}`, ""},
	{"deskOccupancy with remarks", `{"deskOccupancy":{"state":"NOT_OCCUPIED","remarks":["INCOMPLETE_DATA"]}}`,
		`{"state":"NOT_OCCUPIED","remarks":["INCOMPLETE_DATA"],"updateTime":"` + atStamp + `"}`, ""},
	{"contact", `{"contact":{"state":"OPEN"}}`, `{"state":"OPEN","updateTime":"` + atStamp + `"}`, ""},
	{"probeWireStatus", `{"probeWireStatus":{"state":"FOUR_WIRE"}}`, `{"state":"FOUR_WIRE","updateTime":"` + atStamp + `"}`, ""},
	{"batteryStatus", `{"batteryStatus":{"percentage":0}}`, `{"percentage":0,"updateTime":"` + atStamp + `"}`, ""},
	{"networkStatus", `{"networkStatus":{"signalStrength":57,"rssi":-80}}`,
		`{"signalStrength":57,"rssi":-80,"updateTime":"` + atStamp + `","cloudConnectors":[],"transmissionMode":"LOW_POWER_STANDARD_MODE"}`, ""},
	{"networkStatus in full", `{"networkStatus":{"signalStrength":100,"rssi":0,"updateTime":"` + earlier + `","cloudConnectors":[{"id":"ccon-1","signalStrength":0,"rssi":-200}],"transmissionMode":"HIGH_POWER_BOOST_MODE"}}`,
		`{"signalStrength":100,"rssi":0,"updateTime":"` + earlierOut + `","cloudConnectors":[{"id":"ccon-1","signalStrength":0,"rssi":-200}],"transmissionMode":"HIGH_POWER_BOOST_MODE"}`, earlierOut},
	{"connectionStatus", `{"connectionStatus":{"connection":"ETHERNET"}}`, `{"connection":"ETHERNET","available":["ETHERNET"],"updateTime":"` + atStamp + `"}`, ""},
	{"connectionStatus offline", `{"connectionStatus":{"connection":"OFFLINE"}}`, `{"connection":"OFFLINE","available":[],"updateTime":"` + atStamp + `"}`, ""},
	{"connectionStatus with links", `{"connectionStatus":{"connection":"CELLULAR","available":["ETHERNET","CELLULAR","SDS"]}}`,
		`{"connection":"CELLULAR","available":["ETHERNET","CELLULAR","SDS"],"updateTime":"` + atStamp + `"}`, ""},
	{"ethernetStatus", `{"ethernetStatus":{"macAddress":"02:00:5e:10:00:01"}}`,
		`{"macAddress":"02:00:5e:10:00:01","ipAddress":"","errors":[],"updateTime":"` + atStamp + `"}`, ""},
	{"ethernetStatus in full", `{"ethernetStatus":{"macAddress":"02:00:5e:10:00:01","ipAddress":"10.0.0.7","errors":[{"code":"LINK_DOWN","message":"no carrier"}]}}`,
		`{"macAddress":"02:00:5e:10:00:01","ipAddress":"10.0.0.7","errors":[{"code":"LINK_DOWN","message":"no carrier"}],"updateTime":"` + atStamp + `"}`, ""},
	{"cellularStatus", `{"cellularStatus":{"signalStrength":64,"errors":[]}}`, `{"signalStrength":64,"errors":[],"updateTime":"` + atStamp + `"}`, ""},
	{"five minutes ahead", `{"touch":{"updateTime":"2026-11-25T10:35:00.5Z"}}`, `{"updateTime":"2026-11-25T10:35:00.500000000Z"}`, "2026-11-25T10:35:00.500000000Z"},
}

func TestFromPublished(t *testing.T) {
	t.Parallel()
	for _, tc := range accepted {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, err := event.FromPublished("proj", "dev", "id1", at, []byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			typ := tc.body[strings.Index(tc.body, `"`)+1:]
			typ = typ[:strings.Index(typ, `"`)]
			want := `{"` + typ + `":` + tc.data + `}`
			if e.EventType != typ || string(e.Data) != want {
				t.Fatalf("%s data\n%s\nwant\n%s", e.EventType, e.Data, want)
			}
			ts := tc.timestamp
			if ts == "" {
				ts = atStamp
			}
			if e.Timestamp.Format(event.TimeFormat) != ts || e.EventID != "id1" || e.TargetName != "projects/proj/devices/dev" {
				t.Fatalf("event %+v; want timestamp %s", e, ts)
			}
			b, _ := json.Marshal(e)
			if _, err := event.Parse(b); err != nil {
				t.Fatalf("the event does not parse: %v", err)
			}
		})
	}
}

func TestFromPublishedRefuses(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		// The body.
		"empty":                   ``,
		"null":                    `null`,
		"a list":                  `[{"touch":{}}]`,
		"no event type":           `{}`,
		"not json":                `{"touch":{}`,
		"trailing object":         `{"touch":{}} {}`,
		"trailing garbage":        `{"touch":{}}x`,
		"two types":               `{"touch":{},"temperature":{"value":1}}`,
		"one type twice":          `{"touch":{},"touch":{}}`,
		"too large":               `{"touch":{}}` + strings.Repeat(" ", event.MaxPublishBody),
		"data null":               `{"touch":null}`,
		"data a number":           `{"touch":5}`,
		"data a list":             `{"touch":[]}`,
		"unknown type":            `{"toaster":{}}`,
		"type in another case":    `{"Touch":{}}`,
		"labelsChanged":           `{"labelsChanged":{"added":{},"modified":{},"removed":[]}}`,
		"configurationStatus":     `{"configurationStatus":{"status":"APPLIED"}}`,
		"deviceAnomaly":           `{"deviceAnomaly":{}}`,
		"softwareUpdateStatus":    `{"softwareUpdateStatus":{}}`,
		"connectionLatency":       `{"connectionLatency":{}}`,
		"ping":                    `{"ping":{}}`,
		"unknown field":           `{"touch":{"extra":1}}`,
		"another type's field":    `{"touch":{"value":1}}`,
		"field in another case":   `{"temperature":{"Value":1}}`,
		"field twice":             `{"temperature":{"value":1,"value":2}}`,
		"field null":              `{"temperature":{"value":null}}`,
		"nested too deep":         `{"temperature":{"value":1,"samples":[{"value":[1]}]}}`,
		"long text":               `{"deskOccupancy":{"state":"OCCUPIED","remarks":["` + strings.Repeat("r", 129) + `"]}}`,
		"long list":               `{"deskOccupancy":{"state":"OCCUPIED","remarks":[` + strings.Repeat(`"r",`, 16) + `"r"]}}`,
		"long key":                `{"touch":{"` + strings.Repeat("k", 200) + `":1}}`,
		"value a string":          `{"temperature":{"value":"21"}}`,
		"isBackfilled a string":   `{"temperature":{"value":21,"isBackfilled":"yes"}}`,
		"samples an object":       `{"temperature":{"value":21,"samples":{}}}`,
		"total a fraction":        `{"touchCount":{"total":1.5}}`,
		"total negative":          `{"touchCount":{"total":-1}}`,
		"total past uint32":       `{"objectPresentCount":{"total":4294967296}}`,
		"percentage a fraction":   `{"batteryStatus":{"percentage":50.5}}`,
		"state a number":          `{"motion":{"state":1}}`,
		"remarks a string":        `{"deskOccupancy":{"state":"OCCUPIED","remarks":"none"}}`,
		"remark a number":         `{"deskOccupancy":{"state":"OCCUPIED","remarks":[1]}}`,
		"updateTime a number":     `{"touch":{"updateTime":12345}}`,
		"huge number":             `{"temperature":{"value":1e400}}`,
		"no value":                `{"temperature":{}}`,
		"no relative humidity":    `{"humidity":{"temperature":20}}`,
		"sample without value":    `{"temperature":{"value":20,"samples":[{"sampleTime":"` + earlier + `"}]}}`,
		"no state":                `{"objectPresent":{}}`,
		"no total":                `{"touchCount":{}}`,
		"no ppm":                  `{"co2":{}}`,
		"no pascal":               `{"pressure":{}}`,
		"no percentage":           `{"batteryStatus":{}}`,
		"no rssi":                 `{"networkStatus":{"signalStrength":50}}`,
		"connector without id":    `{"networkStatus":{"signalStrength":50,"rssi":-90,"cloudConnectors":[{"signalStrength":50,"rssi":-90}]}}`,
		"connector with empty id": `{"networkStatus":{"signalStrength":50,"rssi":-90,"cloudConnectors":[{"id":"","signalStrength":50,"rssi":-90}]}}`,
		"no connection":           `{"connectionStatus":{"available":[]}}`,
		"no macAddress":           `{"ethernetStatus":{}}`,
		"no cellular signal":      `{"cellularStatus":{}}`,
		"error without message":   `{"cellularStatus":{"signalStrength":5,"errors":[{"code":"LINK_DOWN"}]}}`,
		"error without code":      `{"cellularStatus":{"signalStrength":5,"errors":[{"code":"","message":"m"}]}}`,
		"presence in lower case":  `{"objectPresent":{"state":"present"}}`,
		"water as motion":         `{"waterPresent":{"state":"MOTION_DETECTED"}}`,
		"motion unknown":          `{"motion":{"state":"MOTION"}}`,
		"desk as presence":        `{"deskOccupancy":{"state":"PRESENT"}}`,
		"contact padded":          `{"contact":{"state":"CLOSED "}}`,
		"probe wire unknown":      `{"probeWireStatus":{"state":"ONE_WIRE"}}`,
		"transmission unknown":    `{"networkStatus":{"signalStrength":50,"rssi":-90,"transmissionMode":"BOOST"}}`,
		"connection unknown":      `{"connectionStatus":{"connection":"WIFI"}}`,
		"offline available":       `{"connectionStatus":{"connection":"OFFLINE","available":["OFFLINE"]}}`,
		"a link twice":            `{"connectionStatus":{"connection":"SDS","available":["SDS","SDS"]}}`,
		"too hot":                 `{"temperature":{"value":150.01}}`,
		"too cold":                `{"temperature":{"value":-60.01}}`,
		"sample too hot":          `{"temperature":{"value":20,"samples":[{"value":200}]}}`,
		"humidity above 100":      `{"humidity":{"temperature":20,"relativeHumidity":100.5}}`,
		"humidity below 0":        `{"humidity":{"temperature":20,"relativeHumidity":-1}}`,
		"humidity sample hot":     `{"humidity":{"temperature":20,"relativeHumidity":50,"samples":[{"temperature":151,"relativeHumidity":50}]}}`,
		"ppm too high":            `{"co2":{"ppm":50001}}`,
		"ppm negative":            `{"co2":{"ppm":-1}}`,
		"pressure too low":        `{"pressure":{"pascal":29999}}`,
		"pressure too high":       `{"pressure":{"pascal":110001}}`,
		"battery above 100":       `{"batteryStatus":{"percentage":101}}`,
		"battery negative":        `{"batteryStatus":{"percentage":-1}}`,
		"signal above 100":        `{"networkStatus":{"signalStrength":101,"rssi":-90}}`,
		"rssi positive":           `{"networkStatus":{"signalStrength":50,"rssi":5}}`,
		"rssi too low":            `{"networkStatus":{"signalStrength":50,"rssi":-201}}`,
		"connector signal":        `{"networkStatus":{"signalStrength":50,"rssi":-90,"cloudConnectors":[{"id":"c","signalStrength":-1,"rssi":-90}]}}`,
		"cellular above 100":      `{"cellularStatus":{"signalStrength":101}}`,
		"bad mac":                 `{"ethernetStatus":{"macAddress":"not a mac"}}`,
		"bad ip":                  `{"ethernetStatus":{"macAddress":"02:00:5e:10:00:01","ipAddress":"999.1.1.1"}}`,
		"updateTime words":        `{"touch":{"updateTime":"yesterday"}}`,
		"updateTime no T":         `{"touch":{"updateTime":"2026-11-25 10:30:00Z"}}`,
		"updateTime no zone":      `{"touch":{"updateTime":"2026-11-25T10:30:00"}}`,
		"updateTime ahead":        `{"touch":{"updateTime":"2026-11-25T10:35:01Z"}}`,
		"updateTime far ahead":    `{"touch":{"updateTime":"9999-12-31T23:59:59Z"}}`,
		"updateTime before 1970":  `{"touch":{"updateTime":"1969-12-31T23:59:59Z"}}`,
		"updateTime year one":     `{"touch":{"updateTime":"0001-01-01T00:00:00Z"}}`,
		"sampleTime ahead":        `{"temperature":{"value":20,"samples":[{"value":20,"sampleTime":"2026-11-26T00:00:00Z"}]}}`,
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if e, err := event.FromPublished("proj", "dev", "id1", at, []byte(body)); !errors.Is(err, event.ErrInvalid) {
				t.Fatalf("FromPublished = %s, %v; want ErrInvalid", e.Data, err)
			}
		})
	}
}

func TestFromPublishedNeedsIDs(t *testing.T) {
	t.Parallel()
	for _, ids := range [][3]string{{"", "dev", "id"}, {"proj", "", "id"}, {"proj", "dev", ""}} {
		if _, err := event.FromPublished(ids[0], ids[1], ids[2], at, []byte(`{"touch":{}}`)); err == nil {
			t.Errorf("FromPublished(%q, %q, %q) made an event", ids[0], ids[1], ids[2])
		}
	}
}

func TestPublishable(t *testing.T) {
	t.Parallel()
	for _, typ := range []string{"touch", "temperature", "objectPresent", "humidity", "objectPresentCount", "touchCount",
		"waterPresent", "co2", "pressure", "motion", "deskOccupancy", "contact", "probeWireStatus",
		"batteryStatus", "networkStatus", "connectionStatus", "ethernetStatus", "cellularStatus"} {
		if !event.Publishable(typ) || !event.KnownType(typ) {
			t.Errorf("%s: Publishable %v, KnownType %v", typ, event.Publishable(typ), event.KnownType(typ))
		}
	}
	for _, typ := range []string{"labelsChanged", "configurationStatus", "deviceAnomaly", "softwareUpdateStatus",
		"connectionLatency", "ping", "", "Touch"} {
		if event.Publishable(typ) {
			t.Errorf("%s is publishable", typ)
		}
	}
}

func FuzzFromPublished(f *testing.F) {
	for _, tc := range accepted {
		f.Add([]byte(tc.body))
	}
	for _, body := range []string{
		`{"touch":{},"touch":{}}`, `{"temperature":{"value":1,"Value":2}}`, `{"touch":{"updateTime":"2026-11-25T10:35:01Z"}}`,
		`{"temperature":{"value":20,"samples":[{"value":[1]}]}}`, `{"deskOccupancy":{"state":"OCCUPIED","remarks":["\ud800\u00e9"]}}`,
		`{"connectionStatus":{"connection":"SDS","available":["SDS","SDS"]}}`, `{"labelsChanged":{}}`, `{"touch":null}`,
	} {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := event.FromPublished("proj", "dev", "id1", at, body)
		if err != nil {
			if !errors.Is(err, event.ErrInvalid) {
				t.Fatalf("an error that is not ErrInvalid: %v", err)
			}
			return
		}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := event.Parse(b)
		if err != nil {
			t.Fatalf("%s does not parse: %v", b, err)
		}
		var data map[string]map[string]any
		if err := json.Unmarshal(e.Data, &data); err != nil || len(data) != 1 || data[e.EventType] == nil || !event.Publishable(e.EventType) {
			t.Fatalf("data %s of a %s event (%v)", e.Data, e.EventType, err)
		}
		if up, _ := data[e.EventType]["updateTime"].(string); up != parsed.Timestamp.Format(event.TimeFormat) {
			t.Fatalf("updateTime %q, timestamp %s", up, parsed.Timestamp.Format(event.TimeFormat))
		}
		// Our normalized form is a body that publishes as itself.
		again, err := event.FromPublished("proj", "dev", "id1", at, e.Data)
		if err != nil || !bytes.Equal(again.Data, e.Data) || !again.Timestamp.Equal(e.Timestamp) {
			t.Fatalf("publishing %s again: %s, %v", e.Data, again.Data, err)
		}
	})
}

// TestPublishedTimestampIsUTC: an updateTime in another zone is the same
// instant, written in UTC.
func TestPublishedTimestampIsUTC(t *testing.T) {
	t.Parallel()
	e, err := event.FromPublished("proj", "dev", "id1", at, []byte(`{"touch":{"updateTime":"2026-11-25T05:00:00-05:00"}}`))
	want := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	if err != nil || !e.Timestamp.Equal(want) || e.Timestamp.Location() != time.UTC || !reflect.DeepEqual(e.Data, json.RawMessage(`{"touch":{"updateTime":"`+earlierOut+`"}}`)) {
		t.Fatalf("%+v %s, %v", e, e.Data, err)
	}
}
