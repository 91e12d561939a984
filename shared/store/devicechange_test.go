package store

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/devconfig"
)

// TestDeviceChangeUpdates pins the field paths a DeviceChange writes: the
// device document's stored shape.
func TestDeviceChangeUpdates(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	path := func(u firestore.Update) string {
		if u.Path != "" {
			return u.Path
		}
		return fmt.Sprint([]string(u.FieldPath))
	}
	tests := []struct {
		name   string
		change DeviceChange
		want   []string
	}{
		{"nothing", DeviceChange{}, nil},
		{"an acknowledged reply", DeviceChange{Verdict: &ReplyVerdict{Via: "c.1", Acked: true}},
			[]string{"[links c.1 acked]", "[replyStats acked]", "pendingReply"}},
		{"a lost reply, and readings", DeviceChange{Verdict: &ReplyVerdict{Via: "a"}, Reported: map[string]any{"temperature": 1}},
			[]string{"[links a failed]", "[replyStats failed]", "pendingReply", "[reported temperature]"}},
		{"a reply judged during a rollout", DeviceChange{Verdict: &ReplyVerdict{Via: "a", Acked: true}, SoftwareVerdict: true},
			[]string{"[links a acked]", "[replyStats acked]", "pendingReply", "[software acked]"}},
		{"a release chunk offered, the sensor fetching", DeviceChange{Software: &SoftwareChange{Offered: true, Next: ptr(int64(5)), Status: SoftwareDownloading, Updated: at}},
			[]string{"[software offers]", "[software status]", "[software reason]", "[software next]", "[software updated]"}},
		{"a reply sent", DeviceChange{
			RepliedVia: "a", Pending: &PendingReply{Via: "a", Counter: 3, Sent: at},
			Seen:            []Sighting{{ConnectorID: "a", RSSI: -70, Received: at}, {ConnectorID: "b", RSSI: -90, Received: at}},
			NetworkStatusAt: at, Reported: map[string]any{"networkStatus": 1},
		}, []string{
			"[links a replies]", "pendingReply", "[links a rssi]", "[links a lastSeen]", "[links b rssi]", "[links b lastSeen]",
			"lastNetworkStatus", "[reported networkStatus]",
		}},
		{"a connector seen twice: its first sighting", DeviceChange{
			Seen: []Sighting{{ConnectorID: "a", RSSI: -70, Received: at}, {ConnectorID: "b", RSSI: -90, Received: at}, {ConnectorID: "a", RSSI: -72, Received: at.Add(time.Millisecond)}},
		}, []string{"[links a rssi]", "[links a lastSeen]", "[links b rssi]", "[links b lastSeen]"}},
		{"a configuration sent", DeviceChange{Config: &ConfigChange{Sent: at, Updated: at}},
			[]string{"[configuration attempts]", "[configuration lastSent]", "[configuration updated]"}},
		{"a configuration confirmed", DeviceChange{Config: &ConfigChange{ReportedVersion: 2, Reported: &devconfig.Config{Batch: 2}, Status: ConfigInSync, Updated: at}},
			[]string{"[configuration reportedVersion]", "[configuration reported]", "[configuration status]", "[configuration updated]"}},
		{"a configuration rejected", DeviceChange{Config: &ConfigChange{Status: ConfigRejected, RejectReason: 1, Updated: at}},
			[]string{"[configuration status]", "[configuration rejectReason]", "[configuration updated]"}},
		{"no configuration change", DeviceChange{Config: &ConfigChange{Updated: at}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			for _, u := range tc.change.updates() {
				got = append(got, path(u))
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("updates %v, want %v", got, tc.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
