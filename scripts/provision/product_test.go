package main

import (
	"testing"

	"github.com/sealedsense/sealedsense/shared/devicetype"
)

// TestProductNumber: provision sensors makes every sensor type of the
// catalogue, under the catalogue's number (the six older types keep the
// numbers their sensors were made with), and no connector or unknown type.
func TestProductNumber(t *testing.T) {
	t.Parallel()
	tests := []struct {
		typ, want string
		ok        bool
	}{
		{"temperature", "SS-102058", true},
		{"humidity", "SS-102081", true},
		{"touch", "SS-102060", true},
		{"proximity", "SS-102059", true},
		{"waterDetector", "SS-102062", true},
		{"co2", "SS-102101", true},
		{"ccon", "", false},
		{"toaster", "", false},
		{"", "", false},
	}
	for _, typ := range devicetype.Sensors() {
		d, _ := devicetype.Lookup(typ)
		tests = append(tests, struct {
			typ, want string
			ok        bool
		}{typ, d.ProductNumber, true})
	}
	for _, tc := range tests {
		t.Run(tc.typ, func(t *testing.T) {
			got, ok := productNumber(tc.typ)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("productNumber(%q) = %q, %v; want %q, %v", tc.typ, got, ok, tc.want, tc.ok)
			}
			if _, known := targetChunk(tc.typ); known != (tc.ok || tc.typ == "ccon") {
				t.Fatalf("targetChunk(%q) known = %v", tc.typ, known)
			}
		})
	}
}
