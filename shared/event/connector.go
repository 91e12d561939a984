package event

import (
	"time"

	"github.com/sealedsense/sealedsense/shared/relay"
)

// A Cloud Connector's events: connectionStatus when the link it publishes
// over changes, ethernetStatus and cellularStatus when what it knows of
// each backhaul link changes. Their target is the connector as a device
// of type ccon.

type connectionStatusJSON struct {
	Connection string   `json:"connection"`
	Available  []string `json:"available"`
	UpdateTime string   `json:"updateTime"`
}

// ConnectionStatusFor is a Cloud Connector's connectionStatus event:
// connection is the link it publishes over (or OFFLINE), available the
// links that are up.
func ConnectionStatusFor(project, connectorID, connection string, available []string, at time.Time) Event {
	if available == nil {
		available = []string{}
	}
	e, _ := build(project, connectorID, DerivedID(connectorID, "connectionStatus", uint64(at.UnixNano())), "connectionStatus", at,
		connectionStatusJSON{Connection: connection, Available: available, UpdateTime: stamp(at)})
	return e
}

// LinkError is one fault of a backhaul link as DT's ethernetStatus and
// cellularStatus list them.
type LinkError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// linkErrorMessages explain the codes a connector reports, for people
// reading the events.
var linkErrorMessages = map[string]string{
	relay.LinkDown:      "the link is down: no carrier or no network registration",
	relay.LinkUnreached: "the link is up, but the cloud cannot be reached over it",
}

// linkErrors turns a connector's error codes into DT's error objects; a
// code without a message (from a newer connector) is its own message.
func linkErrors(codes []string) []LinkError {
	out := make([]LinkError, 0, len(codes))
	for _, c := range codes {
		msg, ok := linkErrorMessages[c]
		if !ok {
			msg = c
		}
		out = append(out, LinkError{Code: c, Message: msg})
	}
	return out
}

type ethernetStatusJSON struct {
	MACAddress string `json:"macAddress"`
	// IPAddress is always "": connectors never send their address (behind
	// NAT it names nothing the cloud can use, and it would be one more
	// personal datum to keep). It is present rather than omitted because
	// DT's clients read the key unconditionally.
	IPAddress  string      `json:"ipAddress"`
	Errors     []LinkError `json:"errors"`
	UpdateTime string      `json:"updateTime"`
}

// EthernetStatusFor is a Cloud Connector's ethernetStatus event: its
// Ethernet interface's MAC address and the link's current faults
// (relay's link error codes).
func EthernetStatusFor(project, connectorID, macAddress string, errs []string, at time.Time) Event {
	e, _ := build(project, connectorID, DerivedID(connectorID, "ethernetStatus", uint64(at.UnixNano())), "ethernetStatus", at,
		ethernetStatusJSON{MACAddress: macAddress, Errors: linkErrors(errs), UpdateTime: stamp(at)})
	return e
}

type cellularStatusJSON struct {
	SignalStrength int         `json:"signalStrength"`
	Errors         []LinkError `json:"errors"`
	UpdateTime     string      `json:"updateTime"`
}

// CellularStatusFor is a Cloud Connector's cellularStatus event: its
// cellular signal strength, 0..100, and the link's current faults
// (relay's link error codes).
func CellularStatusFor(project, connectorID string, signalStrength int, errs []string, at time.Time) Event {
	e, _ := build(project, connectorID, DerivedID(connectorID, "cellularStatus", uint64(at.UnixNano())), "cellularStatus", at,
		cellularStatusJSON{SignalStrength: signalStrength, Errors: linkErrors(errs), UpdateTime: stamp(at)})
	return e
}
