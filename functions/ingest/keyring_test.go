package ingest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/radio"
	"github.com/sealedsense/sealedsense/shared/registry"
)

// fakeLoads counts the keyring's loads and fails them on demand; each
// successful load returns new keys.
type fakeLoads struct {
	n    int
	fail bool
}

func (f *fakeLoads) load(context.Context) (*cloudKeys, error) {
	f.n++
	if f.fail {
		return nil, errors.New("firestore unavailable")
	}
	return &cloudKeys{}, nil
}

// TestKeyringReloads: the keys are read again when maxAge old, on
// traffic's demand at most every minReload, and a failed reload keeps the
// keys in hand instead of failing traffic.
func TestKeyringReloads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Unix(1_000_000, 0)
	loads := &fakeLoads{}
	k := newKeyring(loads.load, time.Minute, func() time.Time { return now }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	step := func(name string, d time.Duration, f func() (*cloudKeys, error), wantLoads int) *cloudKeys {
		t.Helper()
		now = now.Add(d)
		got, err := f()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if loads.n != wantLoads {
			t.Fatalf("%s: %d loads in all, want %d", name, loads.n, wantLoads)
		}
		return got
	}
	get := func() (*cloudKeys, error) { return k.get(ctx) }
	first := step("first use", 0, get, 1)
	step("fresh keys", 59*time.Second, get, 1)
	second := step("keys maxAge old", time.Second, get, 2)
	if second == first {
		t.Fatal("the reload did not replace the keys")
	}
	third, reloaded, err := k.refresh(ctx, second)
	if err != nil || !reloaded || third == second || loads.n != 3 {
		t.Fatalf("first asked-for reload: reloaded %v, err %v, %d loads, want a reload", reloaded, err, loads.n)
	}
	if got, reloaded, _ := k.refresh(ctx, third); reloaded || got != third || loads.n != 3 {
		t.Fatalf("asked again at once: reloaded %v, %d loads; want no reload within minReload", reloaded, loads.n)
	}
	if got, reloaded, _ := k.refresh(ctx, second); !reloaded || got != third || loads.n != 3 {
		t.Fatalf("asked with keys already replaced: reloaded %v, %d loads; want the newer keys, no load", reloaded, loads.n)
	}
	now = now.Add(minReload)
	if _, reloaded, _ := k.refresh(ctx, third); !reloaded || loads.n != 4 {
		t.Fatalf("asked after minReload: reloaded %v, %d loads; want a reload", reloaded, loads.n)
	}

	loads.fail = true
	kept := step("reload fails", time.Minute, get, 5)
	if kept == nil {
		t.Fatal("a failed reload dropped the keys in hand")
	}
	step("within minReload of the failure", minReload-time.Second, get, 5)
	step("minReload after the failure", time.Second, get, 6)
	loads.fail = false
	step("recovered", minReload, get, 7)
}

func TestKeyringFirstLoadFailureIsAnError(t *testing.T) {
	t.Parallel()
	loads := &fakeLoads{fail: true}
	k := newKeyring(loads.load, time.Minute, time.Now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := k.get(context.Background()); err == nil {
		t.Fatal("no keys and a failed load, but no error")
	}
	loads.fail = false
	if keys, err := k.get(context.Background()); err != nil || keys == nil || loads.n != 2 {
		t.Fatalf("the next use after a failed first load: %v, %d loads; want a load", err, loads.n)
	}
}

func TestRetiredKEK(t *testing.T) {
	t.Parallel()
	keys := &cloudKeys{newestKEK: 3}
	for id, want := range map[string]bool{
		"kek-1": true, "kek-2": true, // older than the newest, and missing
		"kek-3": false, "kek-4": false, // the newest, or newer than these keys
		"kek-nobody-has": false, "": false, "kek-01": false,
	} {
		if got := keys.retiredKEK(id); got != want {
			t.Errorf("retiredKEK(%q) with newest version 3 = %v, want %v", id, got, want)
		}
	}
}

func TestKeyOffer(t *testing.T) {
	t.Parallel()
	v1 := registry.StaticKey{Version: 1, KeyPair: radio.KeyPair{Public: [32]byte{1}}}
	v2 := registry.StaticKey{Version: 2, KeyPair: radio.KeyPair{Public: [32]byte{2}}}
	tests := []struct {
		name    string
		statics []registry.StaticKey // newest first
		under   int
		want    []byte // nil: no configuration
	}{
		{"one version", []registry.StaticKey{v1}, 1, nil},
		{"device on the newest", []registry.StaticKey{v2, v1}, 2, nil},
		{"device on an older version", []registry.StaticKey{v2, v1}, 1, v2.Public[:]},
		{"device never handshook", []registry.StaticKey{v2, v1}, 0, nil},
		{"device ahead of the instance's keys", []registry.StaticKey{v1}, 2, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := keyOffer(tc.statics, tc.under)
			switch {
			case tc.want == nil && got != nil:
				t.Fatalf("offered %x, want no configuration", got.CloudKey)
			case tc.want != nil && (got == nil || !bytes.Equal(got.CloudKey, tc.want) || got.ReportInterval != 0):
				t.Fatalf("offered %+v, want the cloud key %x alone", got, tc.want)
			}
		})
	}
}
