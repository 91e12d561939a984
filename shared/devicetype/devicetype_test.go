package devicetype_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/sealedsense/sealedsense/shared/devicetype"
)

func TestLookup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, product string
		events        []string
		sensor        bool
	}{
		// The numbers sensors were made with before the catalogue
		// existed: a changed one would be a new product.
		{"temperature", "SS-102058", []string{"temperature", "batteryStatus", "networkStatus"}, true},
		{"humidity", "SS-102081", []string{"humidity", "batteryStatus", "networkStatus"}, true},
		{"touch", "SS-102060", []string{"touch", "batteryStatus", "networkStatus"}, true},
		{"proximity", "SS-102059", []string{"objectPresent", "batteryStatus", "networkStatus"}, true},
		{"waterDetector", "SS-102062", []string{"waterPresent", "batteryStatus", "networkStatus"}, true},
		{"co2", "SS-102101", []string{"co2", "pressure", "batteryStatus", "networkStatus"}, true},
		{"proximityCounter", "SS-102110", []string{"objectPresentCount", "batteryStatus", "networkStatus"}, true},
		{"touchCounter", "SS-102111", []string{"touchCount", "batteryStatus", "networkStatus"}, true},
		{"motion", "SS-102112", []string{"motion", "batteryStatus", "networkStatus"}, true},
		{"deskOccupancy", "SS-102113", []string{"deskOccupancy", "batteryStatus", "networkStatus"}, true},
		{"contact", "SS-102114", []string{"contact", "batteryStatus", "networkStatus"}, true},
		// shared/store's ConnectorProductNumber.
		{"ccon", "SS-102991", []string{"connectionStatus", "ethernetStatus", "cellularStatus"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := devicetype.Lookup(tc.name)
			if !ok || got.Name != tc.name || got.ProductNumber != tc.product || got.Sensor != tc.sensor || !slices.Equal(got.Events, tc.events) {
				t.Fatalf("Lookup(%q) = %+v, %v; want %s %v sensor %v", tc.name, got, ok, tc.product, tc.events, tc.sensor)
			}
			for _, e := range tc.events {
				if !devicetype.Emits(tc.name, e) {
					t.Errorf("Emits(%q, %q) = false", tc.name, e)
				}
			}
		})
	}
	if n := len(devicetype.All()); n != len(tests) {
		t.Fatalf("the catalogue has %d types; the table %d", n, len(tests))
	}
}

func TestUnknown(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"", "toaster", "Temperature", "temperature ", "cco"} {
		if typ, ok := devicetype.Lookup(name); ok {
			t.Errorf("Lookup(%q) = %+v", name, typ)
		}
	}
	for _, tc := range [][2]string{
		{"toaster", "temperature"},
		{"temperature", "humidity"},
		{"co2", "temperature"},
		{"ccon", "networkStatus"},
		{"ccon", "batteryStatus"},
		{"touch", "touchCount"},
		{"temperature", "labelsChanged"},
	} {
		if devicetype.Emits(tc[0], tc[1]) {
			t.Errorf("Emits(%q, %q) = true", tc[0], tc[1])
		}
	}
}

func TestAllAndSensors(t *testing.T) {
	t.Parallel()
	all := devicetype.All()
	if !slices.IsSortedFunc(all, func(a, b devicetype.Type) int { return strings.Compare(a.Name, b.Name) }) {
		t.Fatal("All is not sorted by name")
	}
	var sensors []string
	products := map[string]string{}
	for _, typ := range all {
		if other, ok := products[typ.ProductNumber]; ok {
			t.Errorf("%s and %s share product number %s", other, typ.Name, typ.ProductNumber)
		}
		products[typ.ProductNumber] = typ.Name
		if typ.Sensor {
			sensors = append(sensors, typ.Name)
		}
	}
	if got := devicetype.Sensors(); !slices.Equal(got, sensors) || len(got) != 11 || slices.Contains(got, "ccon") {
		t.Fatalf("Sensors() = %v; want the 11 sensor types of All, sorted: %v", got, sensors)
	}
}

// TestCallersCannotChangeTheCatalogue: what Lookup and All return are
// copies.
func TestCallersCannotChangeTheCatalogue(t *testing.T) {
	t.Parallel()
	typ, _ := devicetype.Lookup("co2")
	typ.Events[0] = "temperature"
	devicetype.All()[1].Events[0] = "temperature"
	if again, _ := devicetype.Lookup("co2"); again.Events[0] != "co2" {
		t.Fatalf("the catalogue changed: co2 emits %v", again.Events)
	}
}
