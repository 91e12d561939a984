package ingest

import (
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/store"
)

// TestLiveState: a session's state is read from its device while the
// device uses it, from its own document only before its first packet,
// and never from a session the device has moved on from.
func TestLiveState(t *testing.T) {
	t.Parallel()
	older, newer := t0, t0.Add(time.Hour)
	handshake := store.Session{DeviceID: "d", Sealed: []byte("handshake"), Created: newer}
	tests := []struct {
		name    string
		sd      store.Session
		live    *store.LiveSession
		want    string
		first   bool
		refused bool
	}{
		{"the session the device uses", store.Session{DeviceID: "d", Moved: true, Created: newer},
			&store.LiveSession{Index: 7, Sealed: []byte("live"), Created: newer}, "live", false, false},
		{"a device's first session, first packet", handshake, nil, "handshake", true, false},
		{"a newer session than the device's, first packet", handshake,
			&store.LiveSession{Index: 6, Sealed: []byte("old"), Created: older}, "handshake", true, false},
		{"an older session than the device's", store.Session{DeviceID: "d", Sealed: []byte("stale"), Created: older},
			&store.LiveSession{Index: 8, Sealed: []byte("live"), Created: newer}, "", false, true},
		{"a moved session the device no longer uses", store.Session{DeviceID: "d", Moved: true, Created: newer},
			&store.LiveSession{Index: 8, Sealed: []byte("live"), Created: newer.Add(time.Minute)}, "", false, true},
		{"a moved session whose device lost its state (a restore)", store.Session{DeviceID: "d", Moved: true, Created: newer},
			nil, "", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sealed, first, err := liveState(7, tc.sd, store.Device{Session: tc.live})
			if tc.refused != isReject(err, "superseded-session") || (!tc.refused && err != nil) {
				t.Fatalf("error %v, want refused %v", err, tc.refused)
			}
			if string(sealed) != tc.want || first != tc.first {
				t.Fatalf("state %q first %v, want %q %v", sealed, first, tc.want, tc.first)
			}
		})
	}
}
