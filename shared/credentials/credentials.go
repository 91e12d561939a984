// Package credentials reads and writes the files that carry a sensor's or a
// connector's secrets from provisioning to the process that uses them. The
// files are created with mode 0600 and refused when others can read them.
package credentials

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/sealedsense/sealedsense/shared/devconfig"
)

// ErrInvalid means a credentials file is malformed or unsafe to use.
var ErrInvalid = errors.New("credentials: invalid file")

// Sensor is what a sensor holds from manufacture: its static X25519 key
// pair, its PSK and the cloud's static public key. The simulator reads it.
type Sensor struct {
	DeviceID      string `json:"deviceId"`
	DeviceType    string `json:"deviceType"`
	ProductNumber string `json:"productNumber"`
	StaticPrivate []byte `json:"staticPrivate"` // 32 bytes, X25519
	StaticPublic  []byte `json:"staticPublic"`  // 32 bytes
	PSK           []byte `json:"psk"`           // 32 bytes
	CloudPublic   []byte `json:"cloudPublic"`   // 32 bytes, the cloud's static X25519 key
	// BootEpoch counts the sensor's boots: BootSensor raises it, and
	// saves it, before the sensor sends anything, so no two boots share
	// an epoch. A reset sensor restarts its sequence numbers in a new
	// epoch, which keeps its readings' event ids apart from those it sent
	// before. 0 (absent) is a sensor that never booted this way.
	BootEpoch uint32 `json:"bootEpoch,omitempty"`
	// Configuration is the device configuration the sensor runs, kept
	// so that a restarted sensor resumes it rather than its defaults.
	// Absent (nil) in a sensor that never applied one.
	Configuration *Configuration `json:"configuration,omitempty"`
	// SoftwareVersion is the software release the sensor runs (0: the
	// one it was manufactured with), kept across restarts as flash
	// keeps it.
	SoftwareVersion uint32 `json:"softwareVersion,omitempty"`
	// ReleaseKeys are the release-signing public keys the sensor trusts
	// a software release from.
	ReleaseKeys []ReleaseKey `json:"releaseKeys,omitempty"`
}

// ReleaseKey is a release-signing public key a device trusts: the KMS key
// version that signs with it, and its PKIX (DER) ECDSA P-256 public key.
type ReleaseKey struct {
	Version uint32 `json:"version"`
	PKIX    []byte `json:"pkix"`
}

// maxReleaseKeys bounds the release keys a file may hold: the current
// one and those still trusted during a rotation.
const maxReleaseKeys = 8

// TrustedReleaseKeys parses keys into the map release.Open takes.
func TrustedReleaseKeys(keys []ReleaseKey) (map[uint32]*ecdsa.PublicKey, error) {
	if len(keys) > maxReleaseKeys {
		return nil, fmt.Errorf("%w: more than %d release keys", ErrInvalid, maxReleaseKeys)
	}
	out := make(map[uint32]*ecdsa.PublicKey, len(keys))
	for _, k := range keys {
		pub, err := x509.ParsePKIXPublicKey(k.PKIX)
		ec, ok := pub.(*ecdsa.PublicKey)
		if err != nil || !ok || ec.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: release key version %d is not a P-256 public key", ErrInvalid, k.Version)
		}
		if _, dup := out[k.Version]; dup || k.Version == 0 {
			return nil, fmt.Errorf("%w: release key version %d repeated or zero", ErrInvalid, k.Version)
		}
		out[k.Version] = ec
	}
	return out, nil
}

// Configuration is a device configuration a sensor applied, with its
// version.
type Configuration struct {
	Version  uint32           `json:"version"`
	Settings devconfig.Config `json:"settings"`
}

func (s Sensor) validate() error {
	switch {
	case s.DeviceID == "":
		return fmt.Errorf("%w: no deviceId", ErrInvalid)
	case len(s.StaticPrivate) != 32, len(s.StaticPublic) != 32, len(s.PSK) != 32, len(s.CloudPublic) != 32:
		return fmt.Errorf("%w: sensor keys must be 32 bytes each", ErrInvalid)
	}
	_, err := TrustedReleaseKeys(s.ReleaseKeys)
	return err
}

// Connector is what a Cloud Connector holds: its id, its Ed25519 signing
// key, and the cloud channel's public keys that downlinks are signed with.
// Provisioning writes the one current channel key as ChannelPublic; a
// connector that learns a newer key through the signed channel writes the
// keys it trusts as ChannelKeys instead.
type Connector struct {
	ConnectorID   string   `json:"connectorId"`
	PrivateKey    []byte   `json:"privateKey"`              // ed25519.PrivateKey (64 bytes)
	ChannelPublic []byte   `json:"channelPublic,omitempty"` // ed25519.PublicKey of the cloud channel key
	ChannelKeys   [][]byte `json:"channelKeys,omitempty"`   // the trusted channel keys, oldest first
	// ReleaseKeys are the release-signing public keys the connector
	// trusts a software release from.
	ReleaseKeys []ReleaseKey `json:"releaseKeys,omitempty"`
}

// maxChannelKeys bounds the trusted channel keys a file may hold.
const maxChannelKeys = 8

// Trusted returns the channel public keys the connector trusts, oldest
// first.
func (c Connector) Trusted() []ed25519.PublicKey {
	if len(c.ChannelKeys) == 0 {
		return []ed25519.PublicKey{c.ChannelPublic}
	}
	out := make([]ed25519.PublicKey, len(c.ChannelKeys))
	for i, k := range c.ChannelKeys {
		out[i] = k
	}
	return out
}

func (c Connector) validate() error {
	switch {
	case c.ConnectorID == "":
		return fmt.Errorf("%w: no connectorId", ErrInvalid)
	case len(c.PrivateKey) != ed25519.PrivateKeySize:
		return fmt.Errorf("%w: connector private key must be %d bytes", ErrInvalid, ed25519.PrivateKeySize)
	case len(c.ChannelKeys) > 0 && c.ChannelPublic != nil:
		return fmt.Errorf("%w: channelPublic and channelKeys both set", ErrInvalid)
	case len(c.ChannelKeys) > maxChannelKeys:
		return fmt.Errorf("%w: more than %d channel keys", ErrInvalid, maxChannelKeys)
	}
	for _, k := range c.Trusted() {
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: channel public key must be %d bytes", ErrInvalid, ed25519.PublicKeySize)
		}
	}
	_, err := TrustedReleaseKeys(c.ReleaseKeys)
	return err
}

// SaveSensor writes s to path with mode 0600.
func SaveSensor(path string, s Sensor) error {
	if err := s.validate(); err != nil {
		return err
	}
	return save(path, s)
}

// LoadSensor reads a file written by SaveSensor.
func LoadSensor(path string) (Sensor, error) {
	var s Sensor
	if err := load(path, &s); err != nil {
		return Sensor{}, err
	}
	return s, s.validate()
}

// BootSensor is a sensor's boot: it reads the file at path, raises its
// boot epoch and writes it back before returning the credentials to boot
// with, so that a crash right after never reuses the epoch.
func BootSensor(path string) (Sensor, error) {
	s, err := LoadSensor(path)
	if err != nil {
		return Sensor{}, err
	}
	if s.BootEpoch == math.MaxUint32 {
		return Sensor{}, fmt.Errorf("%w: %s: boot epoch exhausted", ErrInvalid, path)
	}
	s.BootEpoch++
	if err := SaveSensor(path, s); err != nil {
		return Sensor{}, err
	}
	return s, nil
}

// SaveConfiguration records in the sensor credentials file at path the
// configuration the sensor now runs, keeping the rest: what a sensor calls
// when it applies one, so that it survives a restart.
func SaveConfiguration(path string, c Configuration) error {
	s, err := LoadSensor(path)
	if err != nil {
		return err
	}
	s.Configuration = &c
	return SaveSensor(path, s)
}

// SaveConnector writes c to path with mode 0600.
func SaveConnector(path string, c Connector) error {
	if err := c.validate(); err != nil {
		return err
	}
	return save(path, c)
}

// LoadConnector reads a file written by SaveConnector.
func LoadConnector(path string) (Connector, error) {
	var c Connector
	if err := load(path, &c); err != nil {
		return Connector{}, err
	}
	return c, c.validate()
}

// SaveChannelKeys replaces the trusted channel keys (oldest first) in the
// connector credentials file at path, keeping the rest, atomically and
// with mode 0600: what a connector calls when it learns or forgets one.
func SaveChannelKeys(path string, keys []ed25519.PublicKey) error {
	c, err := LoadConnector(path)
	if err != nil {
		return err
	}
	c.ChannelPublic, c.ChannelKeys = nil, make([][]byte, len(keys))
	for i, k := range keys {
		c.ChannelKeys[i] = k
	}
	return SaveConnector(path, c)
}

// save writes through a 0600 temporary file and a rename, so a reader never
// sees a half-written file and the secret never exists with wider mode.
func save(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("credentials: encode %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".cred-*")
	if err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("credentials: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("credentials: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("credentials: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	return nil
}

func load(path string, v any) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %v; secrets files must be 0600", ErrInvalid, path, st.Mode().Perm())
	}
	if st.Size() > 64<<10 {
		return fmt.Errorf("%w: %s is too large", ErrInvalid, path)
	}
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, path, describe(err))
	}
	return nil
}

// describe names where decoding failed without quoting file content, which
// could be part of a key.
func describe(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at offset %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q has the wrong type", typ.Field)
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return strings.TrimPrefix(err.Error(), "json: ")
	default:
		return "not a credentials file"
	}
}

// ServiceAccount is a service-account key in the credentials-file shape DT's
// clients read.
type ServiceAccount struct {
	KeyID         string `json:"keyId"`
	Secret        string `json:"secret"`
	Email         string `json:"email"`
	Algorithm     string `json:"algorithm"`
	TokenEndpoint string `json:"tokenEndpoint"`
}

func (s ServiceAccount) validate() error {
	if s.KeyID == "" || s.Secret == "" || s.Email == "" || s.TokenEndpoint == "" || s.Algorithm != "HS256" {
		return fmt.Errorf("%w: keyId, secret, email, tokenEndpoint and algorithm HS256 are required", ErrInvalid)
	}
	return nil
}

// SaveServiceAccount writes s to path with mode 0600.
func SaveServiceAccount(path string, s ServiceAccount) error {
	if err := s.validate(); err != nil {
		return err
	}
	return save(path, s)
}

// LoadServiceAccount reads a service-account credentials file.
func LoadServiceAccount(path string) (ServiceAccount, error) {
	var s ServiceAccount
	if err := load(path, &s); err != nil {
		return ServiceAccount{}, err
	}
	return s, s.validate()
}
