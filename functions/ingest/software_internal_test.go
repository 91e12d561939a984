package ingest

import (
	"encoding/hex"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/release"
	"github.com/sealedsense/sealedsense/shared/store"
)

// TestPlanSoftware: a pending release rides every reply (the manifest
// until the sensor fetches, then the chunk it asks for); the sensor's
// reports move the shadow, once per step; a report about another release
// or none moves nothing but the version it runs.
func TestPlanSoftware(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	relID := make([]byte, 16)
	relID[0] = 7
	rel := hex.EncodeToString(relID)
	other := make([]byte, 16)
	assigned := &store.SoftwareState{ReportedVersion: 1, Release: rel, Version: 2, RolloutID: "r", Status: store.SoftwareAssigned, Chunks: 128}
	downloading := &store.SoftwareState{ReportedVersion: 1, Release: rel, Version: 2, RolloutID: "r", Status: store.SoftwareDownloading, Next: 5, Chunks: 128}
	tests := []struct {
		name      string
		sw        *store.SoftwareState
		rep       *payload.UpdateReport
		offer     softwareOffer
		status    string // the event's status; "" for none
		version   int64  // the reported version stored; 0 for unchanged
		noChanges bool
	}{
		{"nothing assigned, nothing said", nil, nil, softwareOffer{}, "", 0, true},
		{"nothing assigned, version said", nil, &payload.UpdateReport{Version: 1, State: payload.UpdateInstalled}, softwareOffer{}, "", 1, false},
		{"assigned: the manifest", assigned, nil, softwareOffer{release: rel, manifest: true}, "", 0, false},
		{"fetching: the chunk asked for", assigned, &payload.UpdateReport{Version: 1, Release: relID, Next: 9, State: payload.UpdateFetching},
			softwareOffer{release: rel, chunk: 9}, "DOWNLOADING", 0, false},
		{"still fetching: no second event", downloading, &payload.UpdateReport{Version: 1, Release: relID, Next: 6, State: payload.UpdateFetching},
			softwareOffer{release: rel, chunk: 6}, "", 0, false},
		{"installed", downloading, &payload.UpdateReport{Version: 2, Release: relID, State: payload.UpdateInstalled}, softwareOffer{}, "INSTALLED", 2, false},
		{"installed, release forgotten after a restart", downloading, &payload.UpdateReport{Version: 2, State: payload.UpdateInstalled}, softwareOffer{}, "INSTALLED", 2, false},
		{"refused", downloading, &payload.UpdateReport{Version: 1, Release: relID, State: payload.UpdateRefused, Reason: release.HashMismatch}, softwareOffer{}, "REFUSED", 0, false},
		{"a chunk refused ends it too", downloading, &payload.UpdateReport{Version: 1, Release: relID, Next: 5, State: payload.UpdateRefused, Reason: release.WrongRelease}, softwareOffer{}, "REFUSED", 0, false},
		{"rolled back", downloading, &payload.UpdateReport{Version: 1, Release: relID, State: payload.UpdateRolledBack, Reason: release.BootFailed}, softwareOffer{}, "ROLLED_BACK", 0, false},
		{"about another release", downloading, &payload.UpdateReport{Version: 1, Release: other, Next: 3, State: payload.UpdateFetching},
			softwareOffer{release: rel, chunk: 5}, "", 0, false},
		{"an older version is not the release", downloading, &payload.UpdateReport{Version: 1, State: payload.UpdateInstalled}, softwareOffer{release: rel, chunk: 5}, "", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := planSoftware(tc.sw, tc.rep, now)
			if st.offer != tc.offer {
				t.Errorf("offer %+v, want %+v", st.offer, tc.offer)
			}
			got := ""
			if st.update != nil {
				got = st.update.Status
			}
			if got != tc.status {
				t.Errorf("event %q, want %q", got, tc.status)
			}
			if (st.change == nil) != tc.noChanges {
				t.Errorf("change %+v, want none: %v", st.change, tc.noChanges)
			}
			if st.change != nil && st.change.ReportedVersion != tc.version {
				t.Errorf("reported version %d, want %d", st.change.ReportedVersion, tc.version)
			}
			if st.change != nil && st.change.Status != tc.status {
				t.Errorf("stored status %q, want %q", st.change.Status, tc.status)
			}
		})
	}
}
