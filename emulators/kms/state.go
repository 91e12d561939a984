// Package kms emulates the Cloud KMS gRPC API for local runs and tests, so
// that product code uses the real cloud.google.com/go/kms client unchanged,
// pointed at it by KMS_EMULATOR_HOST. It keeps its keys in memory and,
// optionally, in a 0600 state file so a restarted platform can still
// decrypt what it wrapped before.
package kms

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// state is everything the emulator knows; it is what the state file holds.
type state struct {
	Rings map[string]time.Time  `json:"rings"` // key ring name -> create time
	Keys  map[string]*cryptoKey `json:"keys"`  // crypto key name -> key
}

type cryptoKey struct {
	Purpose          kmspb.CryptoKey_CryptoKeyPurpose                 `json:"purpose"`
	Algorithm        kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm `json:"algorithm"`
	Primary          int                                              `json:"primary"` // version number, 0 if none
	CreateTime       time.Time                                        `json:"createTime"`
	RotationPeriod   time.Duration                                    `json:"rotationPeriod,omitempty"`
	NextRotationTime time.Time                                        `json:"nextRotationTime,omitzero"`
	Labels           map[string]string                                `json:"labels,omitempty"`
	Versions         []*keyVersion                                    `json:"versions"` // version n is Versions[n-1]
}

type keyVersion struct {
	State      kmspb.CryptoKeyVersion_CryptoKeyVersionState `json:"state"`
	Material   []byte                                       `json:"material"` // AES-256 key, or PKCS #8 EC private key
	CreateTime time.Time                                    `json:"createTime"`
}

// validID is the real API's rule for resource ids: [a-zA-Z0-9_-]{1,63}.
func validID(id string) bool {
	if len(id) < 1 || len(id) > 63 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func checkID(kind, id string) error {
	if !validID(id) {
		return status.Errorf(codes.InvalidArgument, "invalid %s id %q", kind, id)
	}
	return nil
}

// names splits resource names; ok is false for anything malformed.
func locationOK(parent string) bool {
	p := strings.Split(parent, "/")
	return len(p) == 4 && p[0] == "projects" && p[2] == "locations" && p[1] != "" && p[3] != ""
}

func ringOK(name string) bool {
	p := strings.Split(name, "/")
	return len(p) == 6 && locationOK(strings.Join(p[:4], "/")) && p[4] == "keyRings" && validID(p[5])
}

func keyOK(name string) bool {
	p := strings.Split(name, "/")
	return len(p) == 8 && ringOK(strings.Join(p[:6], "/")) && p[6] == "cryptoKeys" && validID(p[7])
}

// splitVersion returns the key name and version number of a version name.
func splitVersion(name string) (string, int, bool) {
	i := strings.LastIndex(name, "/cryptoKeyVersions/")
	if i < 0 || !keyOK(name[:i]) {
		return "", 0, false
	}
	var n int
	if _, err := fmt.Sscanf(name[i+len("/cryptoKeyVersions/"):], "%d", &n); err != nil || n < 1 ||
		fmt.Sprint(n) != name[i+len("/cryptoKeyVersions/"):] {
		return "", 0, false
	}
	return name[:i], n, true
}

func versionName(key string, n int) string { return fmt.Sprintf("%s/cryptoKeyVersions/%d", key, n) }

func load(path string) (*state, error) {
	st := &state{Rings: map[string]time.Time{}, Keys: map[string]*cryptoKey{}}
	if path == "" {
		return st, nil
	}
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kms emulator: %w", err)
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("kms emulator: state file %s is corrupt", path)
	}
	return st, nil
}

// save writes the state atomically: a temporary 0600 file, then a rename.
func (st *state) save(path string) error {
	if path == "" {
		return nil
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kms-state-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
