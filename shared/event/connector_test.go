package event_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/relay"
)

// TestConnectorEvents pins the data of a Cloud Connector's events as DT's
// clients read them: every key present (ipAddress empty, errors a list),
// error codes with a message, and the connector as the target.
func TestConnectorEvents(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	const up = `"updateTime":"2026-12-01T12:00:00.000000000Z"`
	tests := []struct {
		name string
		ev   event.Event
		want string
	}{
		{"connection, links up", event.ConnectionStatusFor("p", "ccon-1", relay.ConnectionCellular, []string{"ETHERNET", "CELLULAR"}, at),
			`{"connectionStatus":{"connection":"CELLULAR","available":["ETHERNET","CELLULAR"],` + up + `}}`},
		{"offline, nothing up", event.ConnectionStatusFor("p", "ccon-1", relay.ConnectionOffline, nil, at),
			`{"connectionStatus":{"connection":"OFFLINE","available":[],` + up + `}}`},
		{"ethernet, healthy", event.EthernetStatusFor("p", "ccon-1", "02:00:5e:10:00:01", nil, at),
			`{"ethernetStatus":{"macAddress":"02:00:5e:10:00:01","ipAddress":"","errors":[],` + up + `}}`},
		{"ethernet, down", event.EthernetStatusFor("p", "ccon-1", "02:00:5e:10:00:01", []string{relay.LinkDown}, at),
			`{"ethernetStatus":{"macAddress":"02:00:5e:10:00:01","ipAddress":"","errors":[{"code":"LINK_DOWN","message":"the link is down: no carrier or no network registration"}],` + up + `}}`},
		{"ethernet, MAC unknown", event.EthernetStatusFor("p", "ccon-1", "", nil, at),
			`{"ethernetStatus":{"macAddress":"","ipAddress":"","errors":[],` + up + `}}`},
		{"cellular, healthy", event.CellularStatusFor("p", "ccon-1", 64, []string{}, at),
			`{"cellularStatus":{"signalStrength":64,"errors":[],` + up + `}}`},
		{"cellular, cloud unreached", event.CellularStatusFor("p", "ccon-1", 12, []string{relay.LinkUnreached}, at),
			`{"cellularStatus":{"signalStrength":12,"errors":[{"code":"CLOUD_UNREACHED","message":"the link is up, but the cloud cannot be reached over it"}],` + up + `}}`},
		{"cellular, a code without a message", event.CellularStatusFor("p", "ccon-1", 0, []string{"SIM_LOCKED"}, at),
			`{"cellularStatus":{"signalStrength":0,"errors":[{"code":"SIM_LOCKED","message":"SIM_LOCKED"}],` + up + `}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if string(tc.ev.Data) != tc.want {
				t.Fatalf("data %s\nwant %s", tc.ev.Data, tc.want)
			}
			if tc.ev.TargetName != "projects/p/devices/ccon-1" || !tc.ev.Timestamp.Equal(at) || !event.KnownType(tc.ev.EventType) {
				t.Fatalf("event %s: target %s, timestamp %v", tc.ev.EventType, tc.ev.TargetName, tc.ev.Timestamp)
			}
			b, err := json.Marshal(tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := event.Parse(b); err != nil {
				t.Fatalf("our own %s event does not parse: %v", tc.ev.EventType, err)
			}
		})
	}
}

// TestConnectorEventIDs: the three kinds made in one transaction, at one
// time, have ids of their own, and a kind at another time another id.
func TestConnectorEventIDs(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	ids := map[string]string{}
	for name, e := range map[string]event.Event{
		"connection":      event.ConnectionStatusFor("p", "ccon-1", relay.ConnectionEthernet, nil, at),
		"ethernet":        event.EthernetStatusFor("p", "ccon-1", "", nil, at),
		"cellular":        event.CellularStatusFor("p", "ccon-1", 50, nil, at),
		"cellular later":  event.CellularStatusFor("p", "ccon-1", 50, nil, at.Add(time.Nanosecond)),
		"other connector": event.CellularStatusFor("p", "ccon-2", 50, nil, at),
	} {
		if other, ok := ids[e.EventID]; ok {
			t.Errorf("%s and %s share the id %s", name, other, e.EventID)
		}
		ids[e.EventID] = name
	}
}
