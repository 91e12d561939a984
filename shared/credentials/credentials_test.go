package credentials_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/devconfig"
)

func sensor() credentials.Sensor {
	return credentials.Sensor{
		DeviceID:      "dev1",
		DeviceType:    "temperature",
		StaticPrivate: bytes.Repeat([]byte{1}, 32),
		StaticPublic:  bytes.Repeat([]byte{2}, 32),
		PSK:           bytes.Repeat([]byte{3}, 32),
		CloudPublic:   bytes.Repeat([]byte{4}, 32),
	}
}

func TestSensorRoundTripIsPrivate(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "s.json")
	if err := credentials.SaveSensor(path, sensor()); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, want 0600", st.Mode().Perm())
	}
	got, err := credentials.LoadSensor(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.PSK, sensor().PSK) || got.DeviceID != "dev1" || !bytes.Equal(got.StaticPrivate, sensor().StaticPrivate) {
		t.Fatalf("round trip changed the credentials")
	}
}

// TestConfigurationSurvivesABoot: the configuration a sensor applied is
// saved beside its keys and read back at the next boot, and a file that
// never held one names none.
func TestConfigurationSurvivesABoot(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "s.json")
	if err := credentials.SaveSensor(path, sensor()); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); strings.Contains(string(b), "configuration") {
		t.Fatal("a sensor that never applied a configuration names one in its file")
	}
	want := credentials.Configuration{Version: 7, Settings: devconfig.Config{SampleInterval: 60, Batch: 4}}
	if err := credentials.SaveConfiguration(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := credentials.BootSensor(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Configuration == nil || *got.Configuration != want || got.BootEpoch != 1 || !bytes.Equal(got.PSK, sensor().PSK) {
		t.Fatalf("booted with configuration %+v, epoch %d; want %+v, epoch 1, keys unchanged", got.Configuration, got.BootEpoch, want)
	}
}

// TestBootSensorRaisesTheEpoch: every boot saves a new epoch before the
// sensor uses it, and a file written before epochs existed boots into 1.
func TestBootSensorRaisesTheEpoch(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "s.json")
	if err := credentials.SaveSensor(path, sensor()); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); strings.Contains(string(b), "bootEpoch") {
		t.Fatal("a never-booted sensor's file names bootEpoch: files from before epochs must stay as they were")
	}
	for want := uint32(1); want <= 3; want++ {
		s, err := credentials.BootSensor(path)
		if err != nil {
			t.Fatal(err)
		}
		saved, err := credentials.LoadSensor(path)
		if err != nil {
			t.Fatal(err)
		}
		if s.BootEpoch != want || saved.BootEpoch != want {
			t.Fatalf("boot %d: epoch %d, saved %d", want, s.BootEpoch, saved.BootEpoch)
		}
		if !bytes.Equal(saved.PSK, sensor().PSK) {
			t.Fatal("a boot changed the keys")
		}
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode after a boot = %v, want 0600", st.Mode().Perm())
	}
	if _, err := credentials.BootSensor(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Fatal("booting without a credentials file succeeded")
	}
}

func TestConnectorRoundTrip(t *testing.T) {
	t.Parallel()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "c.json")
	in := credentials.Connector{ConnectorID: "ccon-1", PrivateKey: priv, ChannelPublic: pub}
	if err := credentials.SaveConnector(path, in); err != nil {
		t.Fatal(err)
	}
	got, err := credentials.LoadConnector(path)
	if err != nil || !bytes.Equal(got.PrivateKey, priv) {
		t.Fatalf("LoadConnector = %v", err)
	}
}

// TestConnectorChannelKeys: a file from provisioning holds one channel
// key; once the connector saves the keys it trusts, they replace it, and
// the rest of the file is kept.
func TestConnectorChannelKeys(t *testing.T) {
	t.Parallel()
	oldPub, priv, _ := ed25519.GenerateKey(nil)
	newPub, _, _ := ed25519.GenerateKey(nil)
	path := filepath.Join(t.TempDir(), "c.json")
	if err := credentials.SaveConnector(path, credentials.Connector{ConnectorID: "ccon-1", PrivateKey: priv, ChannelPublic: oldPub}); err != nil {
		t.Fatal(err)
	}
	got, err := credentials.LoadConnector(path)
	if err != nil || len(got.Trusted()) != 1 || !bytes.Equal(got.Trusted()[0], oldPub) {
		t.Fatalf("provisioned file trusts %x, %v; want the one channel key", got.Trusted(), err)
	}
	if err := credentials.SaveChannelKeys(path, []ed25519.PublicKey{oldPub, newPub}); err != nil {
		t.Fatal(err)
	}
	assertMode(t, path)
	got, err = credentials.LoadConnector(path)
	if err != nil || len(got.Trusted()) != 2 || !bytes.Equal(got.Trusted()[1], newPub) || !bytes.Equal(got.PrivateKey, priv) || got.ConnectorID != "ccon-1" {
		t.Fatalf("after saving two keys: %+v, %v", got, err)
	}
	for name, c := range map[string]credentials.Connector{
		"both forms":     {ConnectorID: "c", PrivateKey: priv, ChannelPublic: oldPub, ChannelKeys: [][]byte{newPub}},
		"short key":      {ConnectorID: "c", PrivateKey: priv, ChannelKeys: [][]byte{newPub[:31]}},
		"no channel key": {ConnectorID: "c", PrivateKey: priv},
	} {
		if err := credentials.SaveConnector(filepath.Join(t.TempDir(), "x"), c); !errors.Is(err, credentials.ErrInvalid) {
			t.Errorf("%s: SaveConnector = %v, want ErrInvalid", name, err)
		}
	}
}

func assertMode(t *testing.T, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("%s: mode %v, want 0600", path, st.Mode().Perm())
	}
}

func TestLoadRejects(t *testing.T) {
	t.Parallel()
	short := sensor()
	short.PSK = short.PSK[:31]
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
	}{
		{"readable by others", `{"deviceId":"d"}`, 0o644},
		{"unknown field", `{"deviceId":"d","extra":1}`, 0o600},
		{"syntax", `{"deviceId": 0102030405`, 0o600},
		{"wrong type", `{"deviceId": 5}`, 0o600},
		{"missing keys", `{"deviceId":"d"}`, 0o600},
		{"short psk", `{"deviceId":"d","staticPrivate":"AQ==","staticPublic":"AQ==","psk":"AQ==","cloudPublic":"AQ=="}`, 0o600},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "s.json")
			if err := os.WriteFile(path, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := credentials.LoadSensor(path)
			if !errors.Is(err, credentials.ErrInvalid) {
				t.Fatalf("LoadSensor = %v, want ErrInvalid", err)
			}
			if strings.Contains(err.Error(), "0102030405") {
				t.Fatalf("error quotes file content: %v", err)
			}
		})
	}
	if err := credentials.SaveSensor(filepath.Join(t.TempDir(), "x"), short); !errors.Is(err, credentials.ErrInvalid) {
		t.Fatalf("SaveSensor with a short PSK = %v, want ErrInvalid", err)
	}
}

func FuzzLoadSensor(f *testing.F) {
	good, _ := json.Marshal(sensor())
	f.Add(good)
	f.Add([]byte(`{"deviceId":1}`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "s.json")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := credentials.LoadSensor(path)
		if err == nil && (len(s.PSK) != 32 || s.DeviceID == "") {
			t.Fatal("loaded an invalid sensor")
		}
		if err != nil && !errors.Is(err, credentials.ErrInvalid) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}
