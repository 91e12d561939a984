package apikey_test

import (
	"testing"

	"github.com/sealedsense/sealedsense/shared/apikey"
)

// The bytes are what stored secrets were wrapped with: changing them
// strands every stored key, so they are pinned here.
func TestAADsAreStable(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"bound", apikey.SecretAAD("k1", "acc1"), "sealedsense/serviceaccount-key/k1/account/acc1"},
		{"legacy", apikey.LegacySecretAAD("k1"), "sealedsense/serviceaccount-key/k1"},
		{"stored bound", apikey.StoredSecretAAD("k1", "acc1", true), "sealedsense/serviceaccount-key/k1/account/acc1"},
		{"stored legacy", apikey.StoredSecretAAD("k1", "acc1", false), "sealedsense/serviceaccount-key/k1"},
		{"page key", apikey.PageKeyAAD(), "sealedsense/api-page-token-key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if string(tc.got) != tc.want {
				t.Fatalf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}
