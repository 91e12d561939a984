// Package slots keeps a connector's software on disk in two slots, the
// running one and the one it ran before, and puts a newly installed
// release on trial: its first boot must prove healthy, or the next start
// rolls back to the previous slot and says why.
//
// The supervisor (systemd on the hardware, the local deployment here)
// restarts the connector whenever it exits with an error; a boot that
// fails, and a trial that does not become healthy within its bound, exit
// with one. The state is one JSON file, replaced atomically, beside the
// images.
package slots

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/release"
)

// ErrBootFailed is a trial boot that failed; the next start rolls back.
var ErrBootFailed = errors.New("slots: the new release did not boot")

const stateFile = "software.json"

// Slot is one installed version.
type Slot struct {
	Version uint32 `json:"version"`
	Release string `json:"release,omitempty"` // hex release id; empty for the factory version
	Image   string `json:"image,omitempty"`   // file name in the directory
}

// State is what the file holds.
type State struct {
	Running  Slot  `json:"running"`
	Previous *Slot `json:"previous,omitempty"`
	// Trial, when set, is the running slot on trial: Boots counts the
	// starts it was given.
	Trial *Trial `json:"trial,omitempty"`
	// Report is the last update's outcome, for the status: INSTALLED
	// once a trial is confirmed, ROLLED_BACK after a failed one.
	Report *payload.UpdateReport `json:"report,omitempty"`
}

// Trial is a new release's probation.
type Trial struct {
	Boots int `json:"boots"`
}

// Slots is a connector's software directory.
type Slots struct {
	dir string
	st  State
}

// Open reads dir's state; a directory without one runs factory, the
// version the connector was made with.
func Open(dir string, factory uint32) (*Slots, error) {
	s := &Slots{dir: dir, st: State{Running: Slot{Version: factory}}}
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("slots: %w", err)
	}
	if err := json.Unmarshal(b, &s.st); err != nil {
		return nil, fmt.Errorf("slots: %s: %w", stateFile, err)
	}
	return s, nil
}

// State is the current state.
func (s *Slots) State() State { return s.st }

// Boot decides what this start runs, and the report its statuses carry.
// A trial given a start already without being confirmed failed: it rolls
// back to the previous slot and records why. A trial's first start checks
// its image boots, and ErrBootFailed says it did not (the caller exits
// and is restarted).
func (s *Slots) Boot() (State, error) {
	t := s.st.Trial
	switch {
	case t == nil:
		return s.st, nil
	case t.Boots >= 1 && s.st.Previous != nil:
		failed := s.st.Running
		s.st.Running, s.st.Previous, s.st.Trial = *s.st.Previous, nil, nil
		s.st.Report = report(payload.UpdateRolledBack, s.st.Running.Version, failed.Release, release.BootFailed)
		return s.st, s.save()
	}
	t.Boots++
	if err := s.save(); err != nil {
		return s.st, err
	}
	img, err := os.ReadFile(filepath.Join(s.dir, s.st.Running.Image))
	if err != nil {
		return s.st, fmt.Errorf("%w: %v", ErrBootFailed, err)
	}
	if bytes.HasPrefix(img, []byte(release.BadBootMagic)) {
		return s.st, ErrBootFailed
	}
	// What the trial's statuses report: the first that gets through is
	// the confirmation, so the cloud hears INSTALLED only from a release
	// that came up. Confirm stores it.
	st := s.st
	st.Report = report(payload.UpdateInstalled, st.Running.Version, st.Running.Release, 0)
	return st, nil
}

// Confirm ends a trial: the new release came up healthy.
func (s *Slots) Confirm() error {
	if s.st.Trial == nil {
		return nil
	}
	s.st.Trial = nil
	s.st.Report = report(payload.UpdateInstalled, s.st.Running.Version, s.st.Running.Release, 0)
	return s.save()
}

// Stage installs a verified image as the slot to run at the next start,
// on trial; the running slot becomes the previous one.
func (s *Slots) Stage(m release.Manifest, image []byte) error {
	name := fmt.Sprintf("image-%d", m.Version)
	if err := writeFile(filepath.Join(s.dir, name), image); err != nil {
		return fmt.Errorf("slots: %w", err)
	}
	prev := s.st.Running
	s.st.Previous = &prev
	s.st.Running = Slot{Version: m.Version, Release: hex.EncodeToString(m.ReleaseID[:]), Image: name}
	s.st.Trial = &Trial{}
	return s.save()
}

func report(state payload.UpdateState, version uint32, releaseHex string, reason release.Reason) *payload.UpdateReport {
	r := &payload.UpdateReport{Version: version, State: state, Reason: reason}
	if id, err := hex.DecodeString(releaseHex); err == nil && len(id) == payload.ReleaseIDSize {
		r.Release = id
	}
	return r
}

func (s *Slots) save() error {
	b, err := json.MarshalIndent(s.st, "", "  ")
	if err != nil {
		return fmt.Errorf("slots: %w", err)
	}
	if err := writeFile(filepath.Join(s.dir, stateFile), b); err != nil {
		return fmt.Errorf("slots: %w", err)
	}
	return nil
}

// writeFile replaces path atomically: a power cut leaves the old file or
// the new one, never half of either.
func writeFile(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
