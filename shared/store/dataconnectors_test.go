package store

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Document ids of stored data: they must never change, or existing
// deliveries and metrics would no longer be found.
func TestDeliveryDocumentIDs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, got, want string }{
		{"delivery", DeliveryID("c1", "e1", ""), "cf18eb9c2a2e36ff12123c4ecc3064b2"},
		{"sync delivery", DeliveryID("c1", "e1", "job7"), "4a857451c9f9cbb9a40eabb758454306"},
		{"metric", DeliveryMetricID("c1", time.Unix(1700000100, 0), 3), "c1_1700000100_3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Fatalf("%s, want %s", tc.got, tc.want)
			}
		})
	}
}

func updateValues(upd []firestore.Update) map[string]any {
	m := map[string]any{}
	for _, u := range upd {
		m[u.Path] = u.Value
	}
	return m
}

func TestDataConnectorUpdates(t *testing.T) {
	t.Parallel()
	now := time.Unix(1700000000, 0)
	name, url := "warehouse", "https://hooks.example.com"
	events, headers := []string{"touch"}, map[string]string{"A": "b"}
	for _, tc := range []struct {
		name string
		upd  []firestore.Update
		want map[string]any
	}{
		{"edit of nothing", DataConnectorEdit{UpdateTime: now}.updates(), map[string]any{"updateTime": now}},
		{"edit of all", DataConnectorEdit{DisplayName: &name, Events: &events, Labels: &[]string{}, URL: &url, Headers: &headers,
			WrappedSecret: []byte{1}, UpdateTime: now}.updates(),
			map[string]any{"updateTime": now, "displayName": name, "events": events, "labels": []string{}, "url": url, "headers": headers, "wrappedSecret": []byte{1}}},
		{"disable", DataConnectorStatus{Status: "USER_DISABLED", DisabledAt: &now}.updates(),
			map[string]any{"status": "USER_DISABLED", "disabledAt": now}},
		{"enable", DataConnectorStatus{Status: "ACTIVE"}.updates(),
			map[string]any{"status": "ACTIVE", "failingSince": nil, "disabledAt": nil}},
		{"attempt retried", DeliveryAttempt{Attempts: 2, LastResult: "503", Due: now}.updates(),
			map[string]any{"attempts": 2, "lastResult": "503", "due": now}},
		{"attempt delivered", DeliveryAttempt{Attempts: 1, LastResult: "200", Status: "delivered", DeliveredAt: now}.updates(),
			map[string]any{"attempts": 1, "lastResult": "200", "status": "delivered", "deliveredAt": now}},
		{"attempt given up", DeliveryAttempt{Attempts: 9, LastResult: "timeout", Status: "expired"}.updates(),
			map[string]any{"attempts": 9, "lastResult": "timeout", "status": "expired"}},
		{"backfill page", DeliveryJobStep{CursorTime: &now, CursorID: "e9", Done: true, Queued: 3}.updates(),
			map[string]any{"cursorTime": now, "cursorId": "e9", "done": true, "queued": firestore.Increment(3)}},
		{"sync page", DeliveryJobStep{CursorID: "d9", Queued: 0}.updates(),
			map[string]any{"cursorId": "d9", "done": false, "queued": firestore.Increment(0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := updateValues(tc.upd); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("%v, want %v", got, tc.want)
			}
		})
	}
}

func TestIsChanged(t *testing.T) {
	t.Parallel()
	lost := status.Error(codes.FailedPrecondition, "update time does not match")
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"lost race", lost, true},
		{"wrapped", wrapCond("lease delivery d1", lost), true},
		{"sentinel", fmt.Errorf("x: %w", ErrChanged), true},
		{"missing", wrapCond("lease delivery d1", status.Error(codes.NotFound, "no")), false},
		{"other", errors.New("boom"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsChanged(tc.err); got != tc.want {
				t.Fatalf("IsChanged(%v) = %v", tc.err, got)
			}
		})
	}
	if !IsNotFound(wrapCond("x", status.Error(codes.NotFound, "no"))) {
		t.Fatal("a missing document is not NotFound through wrapCond")
	}
}
