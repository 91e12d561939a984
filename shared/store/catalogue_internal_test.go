package store

import (
	"testing"

	"github.com/sealedsense/sealedsense/shared/devicetype"
)

// The connector's type and product number are the catalogue's.
func TestConnectorIsInTheCatalogue(t *testing.T) {
	c, ok := devicetype.Lookup(ConnectorType)
	if !ok || c.Sensor || c.ProductNumber != ConnectorProductNumber {
		t.Fatalf("catalogue entry %+v (found %v), want the non-sensor %s with product number %s", c, ok, ConnectorType, ConnectorProductNumber)
	}
}
