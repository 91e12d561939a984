package slots_test

import (
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/sealedsense/sealedsense/connector/slots"
	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/release"
)

func manifest(version uint32, image []byte) release.Manifest {
	return release.Manifest{Target: "ccon", Version: version, Size: uint32(len(image)), ChunkSize: 64, ImageSHA256: sha256.Sum256(image), ReleaseID: [16]byte{byte(version)}}
}

// TestTrialConfirmedOrRolledBack: a staged release runs on trial; once
// confirmed it stays, across restarts. One that fails its boot is rolled
// back at the next start, with BootFailed for the status.
func TestTrialConfirmedOrRolledBack(t *testing.T) {
	dir := t.TempDir()
	s, err := slots.Open(dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := s.Boot(); err != nil || st.Running.Version != 1 || st.Trial != nil {
		t.Fatalf("factory boot: %+v, %v", st, err)
	}
	good := []byte("version 2")
	if err := s.Stage(manifest(2, good), good); err != nil {
		t.Fatal(err)
	}
	s, _ = slots.Open(dir, 1) // the restart
	st, err := s.Boot()
	if err != nil || st.Running.Version != 2 || st.Trial == nil || st.Trial.Boots != 1 {
		t.Fatalf("trial boot: %+v, %v", st, err)
	}
	if r := st.Report; r == nil || r.State != payload.UpdateInstalled || r.Version != 2 || r.Release[0] != 2 {
		t.Fatalf("the trial reports %+v; want version 2's release INSTALLED", r)
	}
	if err := s.Confirm(); err != nil {
		t.Fatal(err)
	}
	s, _ = slots.Open(dir, 1)
	st, err = s.Boot()
	if err != nil || st.Running.Version != 2 || st.Trial != nil || st.Report.State != payload.UpdateInstalled {
		t.Fatalf("after confirming: %+v, %v", st, err)
	}

	bad := []byte(release.BadBootMagic + " version 3")
	if err := s.Stage(manifest(3, bad), bad); err != nil {
		t.Fatal(err)
	}
	s, _ = slots.Open(dir, 1)
	if _, err := s.Boot(); !errors.Is(err, slots.ErrBootFailed) {
		t.Fatalf("a bad image booted: %v", err)
	}
	s, _ = slots.Open(dir, 1)
	st, err = s.Boot()
	if err != nil || st.Running.Version != 2 || st.Trial != nil {
		t.Fatalf("after the failed boot: %+v, %v", st, err)
	}
	if r := st.Report; r == nil || r.State != payload.UpdateRolledBack || r.Reason != release.BootFailed || r.Version != 2 || r.Release[0] != 3 {
		t.Fatalf("report %+v, want version 3's release rolled back for BootFailed, running 2", r)
	}
}
