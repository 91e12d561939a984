package custody_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sealedsense/sealedsense/shared/custody"
)

var testSecret = custody.Secret(bytes.Repeat([]byte{0x5a, 0xa5, 0x3c}, 11))

func TestWrapRoundTripAndBinding(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := custody.NewWrapper(client, newKey(t))
	ct, err := w.Wrap(ctx, testSecret, []byte("psk/device-1"))
	if err != nil {
		t.Fatalf("Wrap: %v", err)
	}
	if bytes.Contains(ct, testSecret) {
		t.Fatal("ciphertext contains the plaintext")
	}
	got, err := w.Unwrap(ctx, ct, []byte("psk/device-1"))
	if err != nil {
		t.Fatalf("Unwrap: %v", err)
	}
	if !bytes.Equal(got, testSecret) {
		t.Fatal("Unwrap returned different bytes")
	}

	tests := []struct {
		name string
		ct   []byte
		aad  string
	}{
		{"other record's aad", ct, "psk/device-2"},
		{"no aad", ct, ""},
		{"tampered ciphertext", flipLast(ct), "psk/device-1"},
		{"truncated ciphertext", ct[:len(ct)/2], "psk/device-1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := w.Unwrap(ctx, tc.ct, []byte(tc.aad))
			if status.Code(errors.Unwrap(err)) != codes.InvalidArgument {
				t.Fatalf("Unwrap = %v, want an InvalidArgument from KMS", err)
			}
			assertNoSecret(t, err)
		})
	}
}

func flipLast(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)-1] ^= 0x80
	return c
}

func TestUnwrapAfterRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	key := newKey(t)
	w := custody.NewWrapper(client, key)
	old, err := w.Wrap(ctx, testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	rotate(t, key)
	fresh, err := w.Wrap(ctx, testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		ct          []byte
		wantPrimary bool
	}{
		{"wrapped before rotation", old, false},
		{"wrapped after rotation", fresh, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := w.Unwrap(ctx, tc.ct, nil)
			if err != nil || !bytes.Equal(got, testSecret) {
				t.Fatalf("Unwrap = %v", err)
			}
			// Re-wrapping relies on this to skip what is already current.
			got, primary, err := w.UnwrapPrimary(ctx, tc.ct, nil)
			if err != nil || !bytes.Equal(got, testSecret) || primary != tc.wantPrimary {
				t.Fatalf("UnwrapPrimary = primary %v, %v; want primary %v", primary, err, tc.wantPrimary)
			}
		})
	}
}

// TestWrapVersionNamesThePrimary: a backup's manifest records the version
// WrapVersion names, so it must be the primary that wrapped, before and
// after a rotation.
func TestWrapVersionNamesThePrimary(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	key := newKey(t)
	w := custody.NewWrapper(client, key)
	for i, want := range []string{key + "/cryptoKeyVersions/1", key + "/cryptoKeyVersions/2"} {
		if i > 0 {
			rotate(t, key)
		}
		ct, got, err := w.WrapVersion(ctx, testSecret, []byte("v"))
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("step %d: version %q, want %q", i, got, want)
		}
		if pt, err := w.Unwrap(ctx, ct, []byte("v")); err != nil || !bytes.Equal(pt, testSecret) {
			t.Fatalf("step %d: unwrap: %v", i, err)
		}
	}
}

func TestIntegrityChecks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	key := newKey(t)
	tests := []struct {
		name      string
		corrupt   int64
		op        string
		wantErr   bool
		wantCalls int64
	}{
		{"one corrupted wrap is retried", 1, "wrap", false, 2},
		{"persistent corruption on wrap fails", 10, "wrap", true, 3},
		{"one corrupted unwrap is retried", 1, "unwrap", false, 2},
		{"persistent corruption on unwrap fails", 10, "unwrap", true, 3},
	}
	good, err := custody.NewWrapper(client, key).Wrap(ctx, testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k := &countingKMS{next: client}
			k.corrupt.Store(tc.corrupt)
			w := custody.NewWrapper(k, key)
			var calls int64
			if tc.op == "wrap" {
				ct, err := w.Wrap(ctx, testSecret, nil)
				calls = k.encrypts.Load()
				checkIntegrityResult(t, err, tc.wantErr)
				if err == nil {
					if pt, err := w.Unwrap(ctx, ct, nil); err != nil || !bytes.Equal(pt, testSecret) {
						t.Fatalf("a retried wrap gave an unusable ciphertext: %v", err)
					}
				}
			} else {
				pt, err := w.Unwrap(ctx, good, nil)
				calls = k.decrypts.Load()
				checkIntegrityResult(t, err, tc.wantErr)
				if err == nil && !bytes.Equal(pt, testSecret) {
					t.Fatal("a retried unwrap returned corrupted bytes")
				}
			}
			if calls != tc.wantCalls {
				t.Errorf("KMS calls = %d, want %d", calls, tc.wantCalls)
			}
		})
	}
}

func checkIntegrityResult(t *testing.T, err error, wantErr bool) {
	t.Helper()
	switch {
	case wantErr && !errors.Is(err, custody.ErrIntegrity):
		t.Fatalf("err = %v, want ErrIntegrity", err)
	case !wantErr && err != nil:
		t.Fatalf("err = %v, want success after a retry", err)
	}
	assertNoSecret(t, err)
}

func TestWrapErrorsCarryCodesNotSecrets(t *testing.T) {
	t.Parallel()
	w := custody.NewWrapper(client, "projects/custody-test/locations/europe/keyRings/missing/cryptoKeys/none")
	_, err := w.Wrap(context.Background(), testSecret, nil)
	if status.Code(errors.Unwrap(err)) != codes.NotFound {
		t.Fatalf("Wrap with a missing key = %v, want NotFound", err)
	}
	assertNoSecret(t, err)
}

// assertNoSecret fails if err's text holds the test secret in any usual
// encoding.
func assertNoSecret(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	for _, enc := range []string{string(testSecret), hex.EncodeToString(testSecret), strings.ToUpper(hex.EncodeToString(testSecret))} {
		if strings.Contains(msg, enc) {
			t.Fatalf("error text reveals the secret: %q", msg)
		}
	}
}
