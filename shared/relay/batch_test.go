package relay_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/relay"
)

func uplinks(t testing.TB, n int) [][]byte {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(nil)
	var out [][]byte
	for i := range n {
		env, err := relay.SignUplink(key, relay.Uplink{ConnectorID: "ccon-1", Received: time.Unix(1_800_000_000, int64(i)), RSSI: -70, Packet: []byte{3, byte(i), 1, 2, 3}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, env)
	}
	return out
}

func TestBatchRoundTripAndSingles(t *testing.T) {
	t.Parallel()
	envs := uplinks(t, 5)
	b, err := relay.EncodeBatch(envs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := relay.SplitBatch(b)
	if err != nil || len(got) != 5 {
		t.Fatalf("SplitBatch = %d, %v", len(got), err)
	}
	for i := range envs {
		if !bytes.Equal(got[i], envs[i]) {
			t.Fatalf("envelope %d changed", i)
		}
	}
	// A single envelope is its own one-element batch: old connectors work.
	one, err := relay.SplitBatch(envs[0])
	if err != nil || len(one) != 1 || !bytes.Equal(one[0], envs[0]) {
		t.Fatalf("single envelope: %d, %v", len(one), err)
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"garbage", []byte("\x00\x01 garbage")},
		{"empty", nil},
		{"batch of nothing", []byte{0xa2, 0x01, 0x04, 0x04, 0x80}},
		{"wrong kind", []byte{0xa2, 0x01, 0x01, 0x04, 0x81, 0x41, 0x00}},
		{"trailing bytes", append(bytes.Clone(b), 0)},
	} {
		if _, err := relay.SplitBatch(tc.data); !errors.Is(err, relay.ErrNotBatch) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if _, err := relay.EncodeBatch(uplinks(t, relay.MaxBatch+1)); err == nil {
		t.Error("a batch over MaxBatch was encoded")
	}
	if _, err := relay.EncodeBatch(nil); err == nil {
		t.Error("an empty batch was encoded")
	}
}

func FuzzSplitBatch(f *testing.F) {
	envs := uplinks(f, 3)
	b, _ := relay.EncodeBatch(envs)
	f.Add(b)
	f.Add(envs[0])
	f.Add([]byte{0xa2, 0x01, 0x04, 0x04, 0x80})
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := relay.SplitBatch(data)
		if err != nil {
			return
		}
		if len(got) == 0 || len(got) > relay.MaxBatch {
			t.Fatalf("%d envelopes", len(got))
		}
		for _, e := range got {
			if len(e) == 0 || len(e) > relay.MaxEnvelope {
				t.Fatalf("envelope of %d bytes", len(e))
			}
		}
	})
}
