package studio

import (
	"testing"

	"github.com/sealedsense/sealedsense/shared/store"
)

func TestCSRFOK(t *testing.T) {
	good := "a-csrf-token-of-the-session"
	for _, tc := range []struct {
		name, token, hash string
		want              bool
	}{
		{"the session's token", good, store.TokenHash(good), true},
		{"no token", "", store.TokenHash(good), false},
		{"another token", good + "x", store.TokenHash(good), false},
		{"the hash itself sent as the token", store.TokenHash(good), store.TokenHash(good), false},
		{"a session without a hash", good, "", false},
		{"nothing at all", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := csrfOK(tc.token, tc.hash); got != tc.want {
				t.Errorf("csrfOK = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSignInConfigured(t *testing.T) {
	full := Config{Issuer: "https://accounts.google.com", ClientID: "id", ClientSecret: "secret"}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want bool
	}{
		{"all three", func(*Config) {}, true},
		{"no issuer", func(c *Config) { c.Issuer = "" }, false},
		{"no client id", func(c *Config) { c.ClientID = "" }, false},
		{"no secret", func(c *Config) { c.ClientSecret = "" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := full
			tc.mod(&c)
			if got := c.signInConfigured(); got != tc.want {
				t.Errorf("signInConfigured = %v, want %v", got, tc.want)
			}
		})
	}
}
