package event

import (
	"testing"
	"time"
)

func TestSoftwareUpdateStatusFor(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	ids := map[string]string{}
	for _, tc := range []struct {
		u    SoftwareUpdate
		want string
	}{
		{SoftwareUpdate{Status: "DOWNLOADING", ReleaseID: "r1", Version: 2, SoftwareVersion: 1},
			`{"softwareUpdateStatus":{"status":"DOWNLOADING","releaseId":"r1","version":2,"softwareVersion":1,"updateTime":"2026-12-01T12:00:00.000000000Z"}}`},
		{SoftwareUpdate{Status: "INSTALLED", ReleaseID: "r1", Version: 2, SoftwareVersion: 2},
			`{"softwareUpdateStatus":{"status":"INSTALLED","releaseId":"r1","version":2,"softwareVersion":2,"updateTime":"2026-12-01T12:00:00.000000000Z"}}`},
		{SoftwareUpdate{Status: "REFUSED", ReleaseID: "r2", Version: 3, SoftwareVersion: 2, Reason: "HashMismatch"},
			`{"softwareUpdateStatus":{"status":"REFUSED","releaseId":"r2","version":3,"softwareVersion":2,"reason":"HashMismatch","updateTime":"2026-12-01T12:00:00.000000000Z"}}`},
	} {
		t.Run(tc.u.Status, func(t *testing.T) {
			e := SoftwareUpdateStatusFor("p", "d", tc.u, at)
			if string(e.Data) != tc.want || e.EventType != "softwareUpdateStatus" || !KnownType(e.EventType) {
				t.Fatalf("event %s data %s, want %s", e.EventType, e.Data, tc.want)
			}
			if again := SoftwareUpdateStatusFor("p", "d", tc.u, at.Add(time.Hour)); again.EventID != e.EventID {
				t.Fatalf("the same step later has id %s, want %s", again.EventID, e.EventID)
			}
			if prev, ok := ids[e.EventID]; ok {
				t.Fatalf("id %s of %s is %s's too", e.EventID, tc.u.Status, prev)
			}
			ids[e.EventID] = tc.u.Status
		})
	}
}
