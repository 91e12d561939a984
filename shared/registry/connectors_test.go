package registry_test

import (
	"bytes"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/registry"
	"github.com/sealedsense/sealedsense/shared/store"
)

func TestConnectorKeysAt(t *testing.T) {
	t.Parallel()
	cur, prev := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	until := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	rotated := registry.Connector{ID: "c", Connector: store.Connector{PublicKey: cur, PreviousPublicKey: prev, PreviousUntil: until}}
	revoked := rotated
	revoked.Revoked = true
	tests := []struct {
		name           string
		c              registry.Connector
		now            time.Time
		valid, retired [][]byte
	}{
		{"never rotated", registry.Connector{Connector: store.Connector{PublicKey: cur}}, until, [][]byte{cur}, nil},
		{"within grace", rotated, until.Add(-time.Nanosecond), [][]byte{cur, prev}, nil},
		{"at the deadline", rotated, until, [][]byte{cur}, [][]byte{prev}},
		{"after grace", rotated, until.Add(time.Hour), [][]byte{cur}, [][]byte{prev}},
		{"revoked", revoked, until.Add(-time.Hour), nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			valid, retired := tc.c.Keys(tc.now)
			if !same(valid, tc.valid) || !same(retired, tc.retired) {
				t.Fatalf("Keys(%v) = valid %x, retired %x; want %x, %x", tc.now, valid, retired, tc.valid, tc.retired)
			}
		})
	}
}

func same(a []ed25519.PublicKey, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
