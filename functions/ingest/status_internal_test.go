package ingest

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/relay"
	"github.com/sealedsense/sealedsense/shared/store"
)

// TestStatusEvents runs heartbeats through applyStatus and statusEvents
// as the status transaction does, and checks which events each makes:
// one per change, none for a repeat, a reordered heartbeat, a flicker of
// the signal or a link spelled differently.
func TestStatusEvents(t *testing.T) {
	t.Parallel()
	const mac = "02:00:5e:10:00:01"
	eth := func(up bool, errs ...string) *relay.Link { return &relay.Link{Up: up, MACAddress: mac, Errors: errs} }
	cell := func(up bool, signal int, errs ...string) *relay.Link {
		return &relay.Link{Up: up, SignalStrength: signal, Errors: errs}
	}
	both := func(conn string, e, c *relay.Link) relay.Status {
		return relay.Status{Connection: conn, Ethernet: e, Cellular: c}
	}
	const (
		conn = "connectionStatus"
		ethS = "ethernetStatus"
		celS = "cellularStatus"
	)
	type step struct {
		st   relay.Status
		want []string
	}
	healthy := both(relay.ConnectionEthernet, eth(true), cell(true, 60))
	tests := []struct {
		name  string
		steps []step
	}{
		{"first heartbeat tells all, a repeat nothing", []step{
			{healthy, []string{conn, ethS, celS}},
			{healthy, nil},
		}},
		{"a flickering signal is no news", []step{
			{healthy, []string{conn, ethS, celS}},
			{both(relay.ConnectionEthernet, eth(true), cell(true, 66)), nil},
			{both(relay.ConnectionEthernet, eth(true), cell(true, 54)), nil},
			{both(relay.ConnectionEthernet, eth(true), cell(true, 69)), nil},
		}},
		{"a drifting signal is news once 10 from the last published", []step{
			{healthy, []string{conn, ethS, celS}},
			{both(relay.ConnectionEthernet, eth(true), cell(true, 65)), nil},
			{both(relay.ConnectionEthernet, eth(true), cell(true, 70)), []string{celS}},
			{both(relay.ConnectionEthernet, eth(true), cell(true, 61)), nil},
			{both(relay.ConnectionEthernet, eth(true), cell(true, 60)), []string{celS}},
		}},
		{"cellular going down is news whatever the signal", []step{
			{healthy, []string{conn, ethS, celS}},
			{both(relay.ConnectionEthernet, eth(true), cell(false, 58, relay.LinkDown)), []string{celS}},
			{both(relay.ConnectionEthernet, eth(true), cell(true, 58)), []string{celS}},
		}},
		{"Ethernet fails over to cellular", []step{
			{healthy, []string{conn, ethS, celS}},
			{both(relay.ConnectionCellular, eth(false, relay.LinkDown), cell(true, 60)), []string{conn, ethS}},
		}},
		{"errors reordered or repeated, MAC in capitals: no news", []step{
			{both(relay.ConnectionCellular, eth(true, relay.LinkUnreached, relay.LinkDown), cell(true, 60)), []string{conn, ethS, celS}},
			{both(relay.ConnectionCellular, &relay.Link{Up: true, MACAddress: "02:00:5E:10:00:01", Errors: []string{relay.LinkDown, relay.LinkUnreached, relay.LinkDown}}, cell(true, 60)), nil},
		}},
		{"a heartbeat without link facts says nothing of them", []step{
			{healthy, []string{conn, ethS, celS}},
			{relay.Status{Connection: relay.ConnectionEthernet, Available: []string{relay.ConnectionEthernet}}, nil},
			{healthy, nil},
		}},
		{"an older connector: connection only", []step{
			{relay.Status{Connection: relay.ConnectionEthernet, Available: []string{relay.ConnectionEthernet}}, []string{conn}},
			{relay.Status{Connection: relay.ConnectionOffline, Available: []string{relay.ConnectionEthernet}}, []string{conn}},
		}},
	}
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var cs store.Connector
			for i, s := range tc.steps {
				s.st.Time = t0.Add(time.Duration(i+1) * time.Second)
				next, ok := applyStatus(cs, s.st, s.st.Time)
				if !ok {
					t.Fatalf("step %d: a newer heartbeat changed nothing", i)
				}
				var got []string
				for _, e := range statusEvents(cs, next, "p", "ccon-1", s.st.Time) {
					got = append(got, e.EventType)
				}
				if !slices.Equal(got, s.want) {
					t.Fatalf("step %d (%+v): events %v, want %v", i, s.st, got, s.want)
				}
				cs = next
			}
		})
	}
}

// TestStatusReordered: a heartbeat no newer than the last changes
// nothing, however different it is.
func TestStatusReordered(t *testing.T) {
	t.Parallel()
	last := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	cs := store.Connector{Connection: relay.ConnectionEthernet, LastStatus: last, Online: true}
	for _, at := range []time.Time{last, last.Add(-time.Second)} {
		st := relay.Status{Time: at, Connection: relay.ConnectionCellular, Cellular: &relay.Link{Up: true, SignalStrength: 10}}
		if next, ok := applyStatus(cs, st, last.Add(time.Minute)); ok || next.Connection != relay.ConnectionEthernet || next.Cellular != nil {
			t.Fatalf("heartbeat of %v after one of %v: %+v, %v; want no change", at, last, next, ok)
		}
	}
}

// TestStatusEventData: the events carry the links that are up, the link
// facts as last published, and the MAC address in one spelling.
func TestStatusEventData(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	st := relay.Status{Time: at, Connection: relay.ConnectionCellular, Available: []string{relay.ConnectionCellular},
		Ethernet: &relay.Link{MACAddress: "02-00-5E-10-00-01", Errors: []string{relay.LinkDown}},
		Cellular: &relay.Link{Up: true, SignalStrength: 64}}
	next, _ := applyStatus(store.Connector{}, st, at)
	data := map[string]string{}
	for _, e := range statusEvents(store.Connector{}, next, "p", "ccon-1", at) {
		var d map[string]json.RawMessage
		if err := json.Unmarshal(e.Data, &d); err != nil {
			t.Fatal(err)
		}
		data[e.EventType] = string(d[e.EventType])
	}
	const up = `"updateTime":"2026-12-01T12:00:00.000000000Z"`
	want := map[string]string{
		"connectionStatus": `{"connection":"CELLULAR","available":["CELLULAR"],` + up + `}`,
		"ethernetStatus":   `{"macAddress":"02:00:5e:10:00:01","ipAddress":"","errors":[{"code":"LINK_DOWN","message":"the link is down: no carrier or no network registration"}],` + up + `}`,
		"cellularStatus":   `{"signalStrength":64,"errors":[],` + up + `}`,
	}
	for typ, w := range want {
		if data[typ] != w {
			t.Errorf("%s data %s\nwant %s", typ, data[typ], w)
		}
	}
}
