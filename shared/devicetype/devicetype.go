// Package devicetype is the catalogue of the device types SealedSense
// makes, named as DT names them: each type's product number and the event
// types its devices emit.
package devicetype

import (
	"slices"
	"strings"
)

// Event types every sensor emits besides its readings: its battery level,
// and how the connectors heard it (the cloud makes that one).
const (
	batteryStatus = "batteryStatus"
	networkStatus = "networkStatus"
)

// Type is one device type.
type Type struct {
	Name          string   // DT's device type, e.g. "temperature"
	ProductNumber string   // our catalogue number
	Events        []string // the event types a device of this type emits
	Sensor        bool     // false only for the Cloud Connector, "ccon"
}

// catalogue is every type, sorted by name. A sensor's readings come first
// in its Events, then batteryStatus and networkStatus (sensor adds them).
// The connector's number is shared/store's ConnectorProductNumber.
var catalogue = []Type{
	{Name: "ccon", ProductNumber: "SS-102991", Events: []string{"connectionStatus", "ethernetStatus", "cellularStatus"}},
	// DT's CO2 sensor measures air pressure too: it corrects the CO2
	// reading for it.
	sensor("co2", "SS-102101", "co2", "pressure"),
	sensor("contact", "SS-102114", "contact"),
	sensor("deskOccupancy", "SS-102113", "deskOccupancy"),
	sensor("humidity", "SS-102081", "humidity"),
	sensor("motion", "SS-102112", "motion"),
	sensor("proximity", "SS-102059", "objectPresent"),
	sensor("proximityCounter", "SS-102110", "objectPresentCount"),
	sensor("temperature", "SS-102058", "temperature"),
	sensor("touch", "SS-102060", "touch"),
	sensor("touchCounter", "SS-102111", "touchCount"),
	sensor("waterDetector", "SS-102062", "waterPresent"),
}

func sensor(name, productNumber string, readings ...string) Type {
	return Type{Name: name, ProductNumber: productNumber, Events: append(readings, batteryStatus, networkStatus), Sensor: true}
}

// Lookup returns the type called name.
func Lookup(name string) (Type, bool) {
	i, ok := slices.BinarySearchFunc(catalogue, name, func(t Type, name string) int { return strings.Compare(t.Name, name) })
	if !ok {
		return Type{}, false
	}
	return catalogue[i].clone(), true
}

// All returns every type, sorted by name, the connector's too.
func All() []Type {
	out := make([]Type, len(catalogue))
	for i, t := range catalogue {
		out[i] = t.clone()
	}
	return out
}

// Sensors returns the names of the sensor types, sorted.
func Sensors() []string {
	var out []string
	for _, t := range catalogue {
		if t.Sensor {
			out = append(out, t.Name)
		}
	}
	return out
}

// Emits says whether a device of type deviceType emits eventType; an
// unknown device type emits nothing.
func Emits(deviceType, eventType string) bool {
	t, ok := Lookup(deviceType)
	return ok && slices.Contains(t.Events, eventType)
}

// clone copies t's Events, so that no caller can change the catalogue.
func (t Type) clone() Type {
	t.Events = slices.Clone(t.Events)
	return t
}
