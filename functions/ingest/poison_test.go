package ingest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/store"
)

func TestCheckReading(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ms := func(at time.Time) int64 { return at.UnixMilli() }
	c := func(v float64) *float64 { return &v }
	temp := func(at time.Time, v float64) payload.Reading {
		return payload.Reading{Seq: 9, Kind: payload.Temperature, Time: ms(at), Celsius: c(v)}
	}
	withSample := func(r payload.Reading, at time.Time) payload.Reading {
		r.Samples = []payload.Sample{{Time: ms(at), Value: 20}}
		return r
	}
	backfilled := temp(now.Add(-90*24*time.Hour), 20)
	backfilled.Backfilled = true
	tests := []struct {
		name   string
		r      payload.Reading
		reason string // "" accepts
	}{
		{"now", temp(now, 21), ""},
		{"a clock a little ahead", temp(now.Add(maxSensorSkew), 21), ""},
		{"old backfill", backfilled, ""},
		{"at the floor", temp(readingFloor, 21), ""},
		{"sample before the reading", withSample(temp(now, 21), now.Add(-time.Minute)), ""},
		{"touch", payload.Reading{Seq: 1, Kind: payload.Touch, Time: ms(now)}, ""},
		{"past the skew", temp(now.Add(maxSensorSkew+time.Second), 21), "time-in-future"},
		{"a year ahead", temp(now.AddDate(1, 0, 0), 21), "time-in-future"},
		{"past Firestore's range", payload.Reading{Seq: 9, Kind: payload.Touch, Time: ms(time.Date(10001, 1, 1, 0, 0, 0, 0, time.UTC))}, "time-in-future"},
		{"largest time", payload.Reading{Seq: 9, Kind: payload.Touch, Time: math.MaxInt64}, "time-in-future"},
		{"before the floor", temp(readingFloor.Add(-time.Millisecond), 21), "time-before-floor"},
		{"1970", payload.Reading{Seq: 9, Kind: payload.Touch, Time: 1}, "time-before-floor"},
		{"no time", payload.Reading{Seq: 9, Kind: payload.Touch}, "invalid-reading"},
		{"negative time", payload.Reading{Seq: 9, Kind: payload.Touch, Time: -1}, "invalid-reading"},
		{"sample from the future", withSample(temp(now, 21), now.Add(time.Hour)), "time-in-future"},
		{"sample before the floor", withSample(temp(now, 21), readingFloor.AddDate(-1, 0, 0)), "time-before-floor"},
		{"nan", temp(now, math.NaN()), "invalid-reading"},
		{"infinite", temp(now, math.Inf(-1)), "invalid-reading"},
		{"out of range", temp(now, 151), "invalid-reading"},
		{"missing value", payload.Reading{Seq: 9, Kind: payload.Temperature, Time: ms(now)}, "invalid-reading"},
		{"unknown kind", payload.Reading{Seq: 9, Kind: 77, Time: ms(now)}, "invalid-reading"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bad := checkReading(tc.r, now)
			switch {
			case tc.reason == "" && bad != nil:
				t.Fatalf("refused as %s: %v", bad.reason, bad.err)
			case tc.reason != "" && bad == nil:
				t.Fatalf("accepted, want %s", tc.reason)
			case bad != nil && (bad.reason != tc.reason || bad.seq != tc.r.Seq || bad.err == nil):
				t.Fatalf("refused %+v, want %s for seq %d", bad, tc.reason, tc.r.Seq)
			}
		})
	}
}

func TestScreenReadings(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	v := 20.0
	ul := payload.Uplink{Readings: []payload.Reading{
		{Seq: 1, Kind: payload.Temperature, Time: now.UnixMilli(), Celsius: &v},
		{Seq: 2, Kind: payload.Temperature, Time: now.AddDate(100, 0, 0).UnixMilli(), Celsius: &v},
		{Seq: 3, Kind: payload.Touch, Time: now.UnixMilli()},
	}}
	good, bad := screenReadings(ul, []payload.Refusal{{Index: 3, Seq: 4, Err: payload.ErrInvalid}}, now)
	if len(good) != 2 || good[0].Seq != 1 || good[1].Seq != 3 {
		t.Fatalf("kept %+v, want seqs 1 and 3", good)
	}
	if len(bad) != 2 || bad[0].seq != 4 || bad[0].reason != "invalid-reading" || bad[1].seq != 2 || bad[1].reason != "time-in-future" {
		t.Fatalf("refused %+v, want seq 4 (invalid-reading) and seq 2 (time-in-future)", bad)
	}
	for _, b := range bad {
		if msg := b.err.Error(); len(msg) == 0 || containsValue(msg) {
			t.Fatalf("a refusal quotes a value: %q", msg)
		}
	}
}

// containsValue reports whether a refusal's text quotes the test's
// reading values or times.
func containsValue(msg string) bool {
	for _, f := range strings.Fields(msg) {
		if f == "20" || strings.Contains(f, "2126") {
			return true
		}
	}
	return false
}

func TestClassify(t *testing.T) {
	t.Parallel()
	grpcErr := func(c codes.Code) error { return fmt.Errorf("store: packet state: %w", status.Error(c, "x")) }
	tests := []struct {
		name      string
		err       error
		reason    string
		permanent bool
	}{
		{"none", nil, "", false},
		{"rejection", reject("replay", errors.New("seen")), "replay", true},
		{"wrapped rejection", fmt.Errorf("packet 1/2: %w", reject("decrypt", errors.New("auth"))), "decrypt", true},
		{"bad payload", fmt.Errorf("reading 0: %w", payload.ErrInvalid), "bad-payload", true},
		{"undecodable document", fmt.Errorf("store: sessions/1: %w: %w", store.ErrUndecodable, errors.New("type")), "undecodable-document", true},
		{"invalid argument", grpcErr(codes.InvalidArgument), "invalid-argument", true},
		{"out of range", grpcErr(codes.OutOfRange), "invalid-argument", true},
		{"unimplemented", grpcErr(codes.Unimplemented), "unimplemented", true},
		{"unavailable", grpcErr(codes.Unavailable), "", false},
		{"deadline exceeded", grpcErr(codes.DeadlineExceeded), "", false},
		{"aborted", grpcErr(codes.Aborted), "", false},
		{"resource exhausted", grpcErr(codes.ResourceExhausted), "", false},
		{"internal", grpcErr(codes.Internal), "", false},
		{"unknown code", grpcErr(codes.Unknown), "", false},
		{"permission denied", grpcErr(codes.PermissionDenied), "", false},
		{"failed precondition", grpcErr(codes.FailedPrecondition), "", false},
		{"context cancelled", fmt.Errorf("get: %w", context.Canceled), "", false},
		{"context deadline", context.DeadlineExceeded, "", false},
		// A KEK this instance has not loaded yet: another instance, or
		// this one later, can open it.
		{"envelope", fmt.Errorf("session: %w", custody.ErrEnvelope), "", false},
		{"plain error", errors.New("connection reset"), "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reason, permanent := classify(tc.err)
			if reason != tc.reason || permanent != tc.permanent {
				t.Fatalf("classify = %q, %v; want %q, %v", reason, permanent, tc.reason, tc.permanent)
			}
		})
	}
}
