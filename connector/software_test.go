package connector

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"log/slog"
	"testing"

	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/relay"
	"github.com/sealedsense/sealedsense/shared/release"
)

// testRelease is a signed release of image for target at version.
func testRelease(t *testing.T, key *ecdsa.PrivateKey, target string, version uint32, image []byte) ([]byte, [][]byte) {
	t.Helper()
	m := release.Manifest{Target: target, Version: version, MinFrom: 1, Size: uint32(len(image)), ChunkSize: 64,
		ImageSHA256: sha256.Sum256(image), KeyVersion: 1}
	if _, err := rand.Read(m.ReleaseID[:]); err != nil {
		t.Fatal(err)
	}
	signed, err := release.Seal(m, func(d [32]byte) ([]byte, error) { return ecdsa.SignASN1(rand.Reader, key, d[:]) })
	if err != nil {
		t.Fatal(err)
	}
	chunks, err := release.Split(m, image)
	if err != nil {
		t.Fatal(err)
	}
	var wire [][]byte
	for _, c := range chunks {
		b, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		wire = append(wire, b)
	}
	return signed, wire
}

// TestUpdaterTakesOnlyItsRelease: a connector running version 2 installs
// a signed connector release of version 3 fetched in two runs of chunks,
// and refuses, with the reason its status reports, every release or chunk
// it must not install.
func TestUpdaterTakesOnlyItsRelease(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cfg := Software{Version: 2, ReleaseKeys: map[uint32]*ecdsa.PublicKey{1: &key.PublicKey}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	image := make([]byte, 200) // 4 chunks of 64, the last of 8
	_, _ = rand.Read(image)

	t.Run("a good release", func(t *testing.T) {
		signed, chunks := testRelease(t, key, release.ConnectorTarget, 3, image)
		u := newUpdater(cfg)
		if done, _, _ := u.take(cfg, relay.Software{Manifest: signed}, log); done || u.current().State != payload.UpdateFetching || u.current().Next != 0 {
			t.Fatalf("after the manifest: %+v", u.current())
		}
		if done, _, _ := u.take(cfg, relay.Software{Chunks: chunks[:2]}, log); done || u.current().Next != 2 {
			t.Fatalf("after 2 chunks: %+v", u.current())
		}
		// The manifest again (a heartbeat crossed the download) restarts nothing.
		u.take(cfg, relay.Software{Manifest: signed}, log)
		done, got, m := u.take(cfg, relay.Software{Chunks: chunks[2:]}, log)
		if !done || m.Version != 3 || string(got) != string(image) {
			t.Fatalf("done %v, version %d, image of %d bytes", done, m.Version, len(got))
		}
	})

	t.Run("the release it runs, offered again", func(t *testing.T) {
		// A manifest sent in answer to the old version's last status
		// reaches the new one: no refusal (which would pause the rollout).
		signed, _ := testRelease(t, key, release.ConnectorTarget, 3, image)
		m, err := release.Open(signed, cfg.ReleaseKeys)
		if err != nil {
			t.Fatal(err)
		}
		running := Software{Version: 3, ReleaseKeys: cfg.ReleaseKeys,
			Report: &payload.UpdateReport{Version: 3, State: payload.UpdateInstalled, Release: m.ReleaseID[:]}}
		u := newUpdater(running)
		u.take(running, relay.Software{Manifest: signed}, log)
		if r := u.current(); r.State != payload.UpdateInstalled || r.Version != 3 {
			t.Fatalf("report %+v; want still INSTALLED version 3", r)
		}
	})

	tampered := func(chunks [][]byte) [][]byte {
		c, _ := release.ParseChunk(chunks[1])
		c.Data[0] ^= 1
		b, _ := c.Marshal()
		return append([][]byte{chunks[0], b}, chunks[2:]...)
	}
	good, goodChunks := testRelease(t, key, release.ConnectorTarget, 3, image)
	_, strayChunks := testRelease(t, key, release.ConnectorTarget, 4, image)
	for _, tc := range []struct {
		name     string
		manifest []byte
		chunks   [][]byte
		want     release.Reason
	}{
		{"signed by another key", first(testRelease(t, other, release.ConnectorTarget, 3, image)), nil, release.BadSignature},
		{"for a sensor type", first(testRelease(t, key, "temperature", 3, image)), nil, release.WrongTarget},
		{"a downgrade", first(testRelease(t, key, release.ConnectorTarget, 2, image)), nil, release.Downgrade},
		{"a tampered chunk", good, tampered(goodChunks), release.HashMismatch},
		{"a chunk of another release", good, strayChunks[:1], release.WrongRelease},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newUpdater(cfg)
			u.take(cfg, relay.Software{Manifest: tc.manifest}, log)
			done := false
			if tc.chunks != nil {
				done, _, _ = u.take(cfg, relay.Software{Chunks: tc.chunks}, log)
			}
			r := u.current()
			if done || r.State != payload.UpdateRefused || r.Reason != tc.want || r.Version != 2 {
				t.Fatalf("done %v, report %+v; want refused for %v, still version 2", done, r, tc.want)
			}
			if err := r.Validate(); err != nil {
				t.Fatalf("the report would not pass the cloud's check: %v", err)
			}
		})
	}
}

func first(a []byte, _ [][]byte) []byte { return a }
