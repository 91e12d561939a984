package ingest

import (
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/devconfig"
	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/store"
)

func TestPlanConfig(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	desired := devconfig.Config{SampleInterval: 60, Batch: 4}
	shadow := func(status string, reported int64) *store.ConfigState {
		return &store.ConfigState{Desired: desired, DesiredVersion: 3, ReportedVersion: reported, Status: status}
	}
	report := func(v uint32, reason devconfig.Reason) *payload.ConfigReport {
		return &payload.ConfigReport{Version: v, Reason: uint8(reason)}
	}
	for _, tc := range []struct {
		name       string
		cs         *store.ConfigState
		rep        *payload.ConfigReport
		send       bool
		transition string
		status     string // the status the change stores, "" for none
		reported   int64  // the reported version it stores, 0 for none
	}{
		{"no configuration", nil, report(2, 0), false, "", "", 0},
		{"pending, no report: sent", shadow(store.ConfigPending, 2), nil, true, "", "", 0},
		{"pending, the old version reported: sent again", shadow(store.ConfigPending, 2), report(2, 0), true, "", "", 0},
		{"confirmed: in sync, not sent", shadow(store.ConfigPending, 2), report(3, 0), false, store.ConfigInSync, store.ConfigInSync, 3},
		{"in sync, confirmed again: nothing", shadow(store.ConfigInSync, 3), report(3, 0), false, "", "", 0},
		{"refused: rejected, not sent", shadow(store.ConfigPending, 2), report(3, devconfig.OutOfRange), false, store.ConfigRejected, store.ConfigRejected, 0},
		{"rejected, refused again: nothing", shadow(store.ConfigRejected, 2), report(3, devconfig.OutOfRange), false, "", "", 0},
		{"a stale report moves the reported version, stays pending", shadow(store.ConfigPending, 1), report(2, 0), true, "", "", 2},
		{"an older report than stored: nothing", shadow(store.ConfigPending, 2), report(1, 0), true, "", "", 0},
		{"a refusal of another version: ignored", shadow(store.ConfigPending, 2), report(2, devconfig.Unsupported), true, "", "", 0},
		{"a version never sent: ignored, still sent", shadow(store.ConfigPending, 2), report(9, 0), true, "", "", 0},
		{"expired: not sent", shadow(store.ConfigExpired, 2), nil, false, "", "", 0},
		{"expired, then confirmed: in sync", shadow(store.ConfigExpired, 2), report(3, 0), false, store.ConfigInSync, store.ConfigInSync, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := planConfig(tc.cs, tc.rep, now)
			if (st.send != nil) != tc.send || st.transition != tc.transition {
				t.Fatalf("send %+v, transition %q; want send %v, transition %q", st.send, st.transition, tc.send, tc.transition)
			}
			if tc.send && (st.send.Version != 3 || st.send.SampleInterval != 60 || st.send.Batch != 4 || st.change == nil || !st.change.Sent.Equal(now)) {
				t.Fatalf("sent %+v with change %+v; want version 3 of %+v, recorded as sent", st.send, st.change, desired)
			}
			var status string
			var reported int64
			if st.change != nil {
				status, reported = st.change.Status, st.change.ReportedVersion
			}
			if status != tc.status || reported != tc.reported {
				t.Fatalf("stores status %q, reported version %d; want %q, %d", status, reported, tc.status, tc.reported)
			}
			if tc.transition == store.ConfigRejected && (st.reason != devconfig.OutOfRange || st.change.RejectReason != int(devconfig.OutOfRange)) {
				t.Fatalf("rejected with reason %v (stored %d), want %v", st.reason, st.change.RejectReason, devconfig.OutOfRange)
			}
		})
	}
}
