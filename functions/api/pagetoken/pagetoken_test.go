package pagetoken_test

import (
	"errors"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/functions/api/pagetoken"
)

func TestRoundTripAndRefusals(t *testing.T) {
	t.Parallel()
	key := make([]byte, pagetoken.KeySize)
	other := make([]byte, pagetoken.KeySize)
	other[0] = 1
	at := time.Date(2026, 11, 25, 8, 0, 0, 123456789, time.UTC)
	tok, err := pagetoken.Seal(key, "scope", pagetoken.Cursor{T: &at, ID: "dev1"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := pagetoken.Open(key, "scope", tok)
	if err != nil || c.ID != "dev1" || !c.T.Equal(at) {
		t.Fatalf("Open = %+v, %v", c, err)
	}
	flipped := []byte(tok)
	flipped[len(flipped)/2] ^= 1
	for _, tc := range []struct {
		name, scope, tok string
		key              []byte
	}{
		{"other scope", "scope2", tok, key},
		{"other key", "scope", tok, other},
		{"edited", "scope", string(flipped), key},
		{"truncated", "scope", tok[:len(tok)-4], key},
		{"empty", "scope", "", key},
		{"not base64", "scope", "!!!", key},
	} {
		if _, err := pagetoken.Open(tc.key, tc.scope, tc.tok); !errors.Is(err, pagetoken.ErrInvalid) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// FuzzOpen: never a panic, and nothing opens but what was sealed under the
// key for that scope (the corpus's token, sealed by some earlier process
// with a nonce of its own, is as good as this one's).
func FuzzOpen(f *testing.F) {
	key := make([]byte, pagetoken.KeySize)
	good, err := pagetoken.Seal(key, "scope", pagetoken.Cursor{ID: "dev1", V: 21.5})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("scope", good)
	f.Add("other", good)
	f.Add("scope", "")
	f.Add("scope", "AAAA")
	f.Fuzz(func(t *testing.T, scope, tok string) {
		c, err := pagetoken.Open(key, scope, tok)
		if err == nil && (scope != "scope" || c.ID != "dev1" || c.V != 21.5) {
			t.Fatalf("opened %q in scope %q as %+v", tok, scope, c)
		}
	})
}
