package api

import (
	"testing"
	"time"
)

func TestParseRetention(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration // 0: refused
	}{
		{"86400s", 24 * time.Hour},
		{"2592000s", 30 * 24 * time.Hour},
		{"31536000s", 365 * 24 * time.Hour},
		{"86399s", 0},
		{"31536001s", 0},
		{"0s", 0},
		{"-86400s", 0},
		{"86400", 0},
		{"1d", 0},
		{"+86400s", 0},
		{"086400s", 0},
		{"86400.0s", 0},
		{"", 0},
		{"s", 0},
		{"99999999999999999999s", 0},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseRetention(tc.in)
			if (err == nil) != (tc.want != 0) || got != tc.want {
				t.Errorf("parseRetention(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func FuzzParseRetention(f *testing.F) {
	for _, s := range []string{"86400s", "31536000s", "1s", "", "9223372036s", "86400 s", "\x0086400s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseRetention(s)
		if err == nil && (d < minEventRetention || d > maxEventRetention) {
			t.Fatalf("parseRetention(%q) = %v, outside the bounds", s, d)
		}
	})
}

func TestCheckExport(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Hour)
	many := make([]string, maxExportDevices+1)
	for i := range many {
		many[i] = "d"
	}
	for _, tc := range []struct {
		name   string
		req    exportRequest
		ok     bool
		labels int
	}{
		{"everything", exportRequest{}, true, 0},
		{"a range", exportRequest{StartTime: &t0, EndTime: &t1}, true, 0},
		{"open start", exportRequest{EndTime: &t1}, true, 0},
		{"backwards", exportRequest{StartTime: &t1, EndTime: &t0}, false, 0},
		{"empty", exportRequest{StartTime: &t0, EndTime: &t0}, false, 0},
		{"devices", exportRequest{DeviceIDs: []string{"a", "b"}}, true, 0},
		{"a slash", exportRequest{DeviceIDs: []string{"a/b"}}, false, 0},
		{"reserved id", exportRequest{DeviceIDs: []string{"__x__"}}, false, 0},
		{"too many", exportRequest{DeviceIDs: many}, false, 0},
		{"labels", exportRequest{LabelFilters: []string{"desk=4-12", "floor=4,room=a"}}, true, 3},
		{"label without value", exportRequest{LabelFilters: []string{"desk"}}, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			labels, err := checkExport(tc.req)
			if (err == nil) != tc.ok || len(labels) != tc.labels {
				t.Errorf("checkExport = %v, %v; want ok %v with %d label pairs", labels, err, tc.ok, tc.labels)
			}
		})
	}
}
