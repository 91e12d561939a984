package relay_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/relay"
)

// TestSoftware: a connector opens only the software envelopes its trusted
// channel key signed for it, unexpired, and no envelope of another kind
// passes as one.
func TestSoftware(t *testing.T) {
	k := newKeys(t)
	trusted := []ed25519.PublicKey{k.channel.Public().(ed25519.PublicKey)}
	chunks := [][]byte{bytes.Repeat([]byte{7}, 40), {1, 2, 3}}
	good, err := relay.SignSoftware(k.channel, relay.Software{ConnectorID: "ccon-1", Expires: t0.Add(time.Minute), Chunks: chunks})
	if err != nil {
		t.Fatal(err)
	}
	sw, err := relay.OpenSoftware(good, trusted, "ccon-1", t0)
	if err != nil || len(sw.Chunks) != 2 || !bytes.Equal(sw.Chunks[0], chunks[0]) {
		t.Fatalf("OpenSoftware = %+v, %v", sw, err)
	}
	if kind, err := relay.KindOf(good); err != nil || kind != relay.KindSoftware {
		t.Fatalf("KindOf = %d, %v", kind, err)
	}
	forged, _ := relay.SignSoftware(k.other, relay.Software{ConnectorID: "ccon-1", Expires: t0.Add(time.Minute), Manifest: []byte{1}})
	downlink, _ := relay.SignDownlink(k.channel, relay.Downlink{ConnectorID: "ccon-1", Expires: t0.Add(time.Minute), Packet: []byte{3}})
	for _, tc := range []struct {
		name string
		data []byte
		self string
		now  time.Time
		want error
	}{
		{"another key", forged, "ccon-1", t0, relay.ErrSignature},
		{"another connector's", good, "ccon-2", t0, relay.ErrNotAddressed},
		{"expired", good, "ccon-1", t0.Add(time.Minute), relay.ErrStale},
		{"a downlink", downlink, "ccon-1", t0, relay.ErrMalformed},
		{"garbage", []byte{0xa1, 1}, "ccon-1", t0, relay.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := relay.OpenSoftware(tc.data, trusted, tc.self, tc.now); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name string
		sw   relay.Software
	}{
		{"empty", relay.Software{ConnectorID: "ccon-1"}},
		{"manifest and chunks", relay.Software{ConnectorID: "ccon-1", Manifest: []byte{1}, Chunks: chunks}},
		{"too many chunks", relay.Software{ConnectorID: "ccon-1", Chunks: make([][]byte, relay.MaxSoftwareChunks+1)}},
		{"an empty chunk", relay.Software{ConnectorID: "ccon-1", Chunks: [][]byte{{}}}},
	} {
		t.Run("sign "+tc.name, func(t *testing.T) {
			if _, err := relay.SignSoftware(k.channel, tc.sw); !errors.Is(err, relay.ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func FuzzOpenSoftware(f *testing.F) {
	k := newKeys(f)
	pub := k.channel.Public().(ed25519.PublicKey)
	manifest, _ := relay.SignSoftware(k.channel, relay.Software{ConnectorID: "ccon-1", Expires: t0.Add(time.Hour), Manifest: []byte{0xa2, 1, 2}})
	chunks, _ := relay.SignSoftware(k.channel, relay.Software{ConnectorID: "ccon-1", Expires: t0.Add(time.Hour), Chunks: [][]byte{{1}, {2, 3}}})
	f.Add(manifest)
	f.Add(chunks)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = relay.KindOf(data)
		sw, err := relay.OpenSoftware(data, []ed25519.PublicKey{pub}, "ccon-1", t0)
		if err != nil {
			return
		}
		// Only the seeds were signed: whatever opens is one of them.
		if !bytes.Equal(sw.Manifest, []byte{0xa2, 1, 2}) && len(sw.Chunks) != 2 {
			t.Fatalf("opened an envelope that was never signed: %+v", sw)
		}
	})
}
