package custody_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/custody"
)

func newEnvelopeKEK(t *testing.T, w *custody.Wrapper, id string) (custody.KEK, []byte) {
	t.Helper()
	kek, stored, err := custody.NewKEK(context.Background(), w, id)
	if err != nil {
		t.Fatal(err)
	}
	return kek, stored
}

func TestEnvelopeSteadyStateCostsNoKMSCalls(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k := &countingKMS{next: client}
	w := custody.NewWrapper(k, newKey(t))
	_, stored := newEnvelopeKEK(t, w, "kek-1")

	// A function instance: the KEK is unwrapped through the cache on first use.
	cache := custody.NewCache(w, time.Hour)
	const packets = 1000
	for i := range packets {
		kek, err := custody.UnwrapKEK(ctx, cache, "kek-1", stored)
		if err != nil {
			t.Fatal(err)
		}
		env, err := custody.NewEnvelope(kek)
		if err != nil {
			t.Fatal(err)
		}
		aad := []byte{byte(i), byte(i >> 8)}
		blob, err := env.Seal(testSecret, aad)
		if err != nil {
			t.Fatal(err)
		}
		got, err := env.Open(blob, aad)
		if err != nil || !bytes.Equal(got, testSecret) {
			t.Fatalf("packet %d: Open = %v", i, err)
		}
	}
	if n := k.decrypts.Load(); n != 1 {
		t.Fatalf("%d packets cost %d KMS decrypts, want 1 per instance", packets, n)
	}
}

func TestEnvelopeRejects(t *testing.T) {
	t.Parallel()
	w := custody.NewWrapper(client, newKey(t))
	kek1, _ := newEnvelopeKEK(t, w, "kek-1")
	kek2, _ := newEnvelopeKEK(t, w, "kek-2")
	env1, err := custody.NewEnvelope(kek1)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := env1.Seal(testSecret, []byte("session-a"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(blob, testSecret) {
		t.Fatal("blob contains the plaintext")
	}
	env2, err := custody.NewEnvelope(kek2)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := custody.NewEnvelope(kek2, kek1)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rotated.Open(blob, []byte("session-a")); err != nil || !bytes.Equal(got, testSecret) {
		t.Fatalf("after KEK rotation an old blob must still open: %v", err)
	}

	tests := []struct {
		name string
		env  *custody.Envelope
		blob []byte
		aad  string
	}{
		{"another record", env1, blob, "session-b"},
		{"unknown kek", env2, blob, "session-a"},
		{"empty", env1, nil, "session-a"},
		{"truncated", env1, blob[:len(blob)-1], "session-a"},
		{"header only", env1, blob[:7], "session-a"},
	}
	for i := range blob {
		tampered := bytes.Clone(blob)
		tampered[i] ^= 0x01
		tests = append(tests, struct {
			name string
			env  *custody.Envelope
			blob []byte
			aad  string
		}{"bit flip", env1, tampered, "session-a"})
	}
	for _, tc := range tests {
		if _, err := tc.env.Open(tc.blob, []byte(tc.aad)); !errors.Is(err, custody.ErrEnvelope) {
			t.Errorf("%s: Open = %v, want ErrEnvelope", tc.name, err)
		}
	}
}

func FuzzEnvelopeOpen(f *testing.F) {
	kek := custody.KEK{ID: "kek-1", Key: bytes.Repeat([]byte{7}, 32)}
	env, err := custody.NewEnvelope(kek)
	if err != nil {
		f.Fatal(err)
	}
	blob, err := env.Seal([]byte("session keys"), []byte("aad"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(blob, []byte("aad"))
	f.Add([]byte{1, 5, 'k', 'e', 'k', '-', '1'}, []byte(nil))
	f.Add([]byte{1, 255}, []byte("aad"))
	f.Fuzz(func(t *testing.T, b, aad []byte) {
		pt, err := env.Open(b, aad)
		// Whatever opens must be what was sealed, under the same aad.
		if err == nil && !(bytes.Equal(pt, []byte("session keys")) && bytes.Equal(aad, []byte("aad"))) {
			t.Fatalf("opened a blob it did not seal: %x", pt)
		}
		// The KEK a blob names is read from any input without a panic,
		// and is the one that opened it.
		if id, ok := custody.SealedKEK(b); err == nil && (!ok || id != "kek-1") {
			t.Fatalf("SealedKEK of an opened blob = %q, %v; want kek-1", id, ok)
		}
	})
}

// TestUnknownKEKIsTold: a blob sealed under a KEK the envelope does not
// hold says so (a caller may retry once it loads that KEK); a tampered
// blob under a known KEK does not.
func TestUnknownKEKIsTold(t *testing.T) {
	key := func(b byte) custody.Secret { return custody.Secret(bytes.Repeat([]byte{b}, 32)) }
	a, err := custody.NewEnvelope(custody.KEK{ID: "kek-a", Key: key(1)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := custody.NewEnvelope(custody.KEK{ID: "kek-b", Key: key(2)})
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := a.Seal([]byte("session"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Open(sealed, []byte("aad")); !errors.Is(err, custody.ErrUnknownKEK) || !errors.Is(err, custody.ErrEnvelope) {
		t.Fatalf("open under another KEK: %v, want ErrUnknownKEK wrapping ErrEnvelope", err)
	}
	if id, ok := custody.SealedKEK(sealed); !ok || id != "kek-a" {
		t.Fatalf("SealedKEK = %q, %v; want the sealing kek-a", id, ok)
	}
	for _, bad := range [][]byte{nil, {1}, {2, 1, 'k'}, {1, 5, 'k', 'e', 'k'}} {
		if id, ok := custody.SealedKEK(bad); ok {
			t.Errorf("SealedKEK(%x) = %q; want no id from a malformed blob", bad, id)
		}
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := a.Open(sealed, []byte("aad")); !errors.Is(err, custody.ErrEnvelope) || errors.Is(err, custody.ErrUnknownKEK) {
		t.Fatalf("open of a tampered blob: %v, want ErrEnvelope only", err)
	}
}
