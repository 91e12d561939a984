package radio_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden vectors")

// golden is the wire format pinned down: fixed keys, PSK, indexes,
// timestamp and ephemerals must give exactly these bytes.
type golden struct {
	SensorPrivate, SensorPublic, CloudPrivate, CloudPublic, PSK string
	Initiation, Response, Uplink, Downlink                      string
}

func TestGoldenVectors(t *testing.T) {
	w := newWorld(t, "golden")
	sensor, cloud, init, resp := w.pair(t)
	up, _, err := sensor.Seal(nil, []byte("uplink payload"), t0)
	if err != nil {
		t.Fatal(err)
	}
	down, _, err := cloud.Seal(nil, []byte("downlink payload"), t0)
	if err != nil {
		t.Fatal(err)
	}
	got := golden{
		SensorPrivate: hex.EncodeToString(w.sensor.Private[:]), SensorPublic: hex.EncodeToString(w.sensor.Public[:]),
		CloudPrivate: hex.EncodeToString(w.cloud.Private[:]), CloudPublic: hex.EncodeToString(w.cloud.Public[:]),
		PSK:        hex.EncodeToString(w.psk[:]),
		Initiation: hex.EncodeToString(init), Response: hex.EncodeToString(resp),
		Uplink: hex.EncodeToString(up), Downlink: hex.EncodeToString(down),
	}
	path := filepath.Join("testdata", "golden.json")
	if *update {
		b, _ := json.MarshalIndent(got, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestGoldenVectors -update once)", err)
	}
	var want golden
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("the wire format changed:\n got %+v\nwant %+v", got, want)
	}

	// The committed bytes open to the committed plaintext, so an
	// independent implementation can be checked against testdata alone.
	upBytes, _ := hex.DecodeString(want.Uplink)
	if pt, _, err := cloud.Open(nil, upBytes, t0); err != nil || !bytes.Equal(pt, []byte("uplink payload")) {
		t.Fatalf("golden uplink does not open: %q %v", pt, err)
	}
}

// goldenPackets returns the committed packets, for fuzz seeds.
func goldenPackets(f *testing.F) [][]byte {
	b, err := os.ReadFile(filepath.Join("testdata", "golden.json"))
	if err != nil {
		f.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	for _, h := range []string{g.Initiation, g.Response, g.Uplink, g.Downlink} {
		p, _ := hex.DecodeString(h)
		out = append(out, p)
	}
	return out
}
