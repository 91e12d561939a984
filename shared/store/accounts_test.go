package store

import (
	"slices"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
)

func paths(upd []firestore.Update) []string {
	var out []string
	for _, u := range upd {
		out = append(out, u.Path)
	}
	return out
}

func TestTypedUpdates(t *testing.T) {
	s, b := "x", true
	now := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name string
		upd  []firestore.Update
		want []string
	}{
		{"account, time only", AccountUpdate{UpdateTime: now}.updates(), []string{"updateTime"}},
		{"account, all", AccountUpdate{UpdateTime: now, DisplayName: &s, BasicAuth: &b, Disabled: &b}.updates(),
			[]string{"updateTime", "displayName", "enableBasicAuth", "disabled"}},
		{"project, nothing", ProjectUpdate{}.updates(), nil},
		{"project, all", ProjectUpdate{DisplayName: &s, PersonnelAccess: &s}.updates(), []string{"displayName", "personnelAccess"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := paths(tt.upd); !slices.Equal(got, tt.want) {
				t.Errorf("paths %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDeviceOrderPath(t *testing.T) {
	tests := []struct {
		field string
		want  []string // nil: refused
	}{
		{"type", []string{"type"}},
		{"productNumber", []string{"productNumber"}},
		{"labels.site", []string{"labels", "site"}},
		{"labels.a.b", []string{"labels", "a.b"}},
		{"reported.temperature.value", []string{"reported", "temperature", "value"}},
		{"labels.", nil},
		{"labels.a b", nil},
		{"reported.temperature", nil},
		{"reported.temp1.value", nil},
		{"projectId", nil},
		{"wrappedPsk", nil},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			got, ok := DeviceOrderPath(tt.field)
			if ok != (tt.want != nil) || !slices.Equal([]string(got), tt.want) {
				t.Errorf("DeviceOrderPath(%q) = %q, %v, want %q", tt.field, got, ok, tt.want)
			}
		})
	}
}
