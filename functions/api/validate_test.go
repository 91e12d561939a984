package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sealedsense/sealedsense/shared/store"
)

// Pure checks of the handlers' validate steps: no emulator needed.

func ptr[T any](v T) *T { return &v }

// wantCode checks an error's HTTP code; 0 means no error.
func wantCode(t *testing.T, err error, code int) {
	t.Helper()
	switch {
	case code == 0 && err != nil:
		t.Fatalf("error %v, want none", err)
	case code != 0 && !isCode(err, code):
		t.Fatalf("error %v, want code %d", err, code)
	}
}

func TestCheckBatchUpdate(t *testing.T) {
	many := make([]string, maxBatch+1)
	labels := map[string]string{}
	for i := range 51 {
		labels["k"+strings.Repeat("x", i)] = "v"
	}
	tests := []struct {
		name string
		req  batchUpdate
		code int
	}{
		{"add", batchUpdate{Devices: []string{"d"}, AddLabels: map[string]string{"site": "a"}}, 0},
		{"remove", batchUpdate{Devices: []string{"d"}, RemoveLabels: []string{"site"}}, 0},
		{"no devices", batchUpdate{AddLabels: map[string]string{"site": "a"}}, 400},
		{"too many devices", batchUpdate{Devices: many, AddLabels: map[string]string{"site": "a"}}, 400},
		{"no change", batchUpdate{Devices: []string{"d"}}, 400},
		{"too many labels", batchUpdate{Devices: []string{"d"}, AddLabels: labels}, 400},
		{"bad key", batchUpdate{Devices: []string{"d"}, AddLabels: map[string]string{"a b": "v"}}, 400},
		{"long value", batchUpdate{Devices: []string{"d"}, AddLabels: map[string]string{"k": strings.Repeat("v", 256)}}, 400},
		{"bad removed key", batchUpdate{Devices: []string{"d"}, RemoveLabels: []string{"a/b"}}, 400},
		{"added and removed", batchUpdate{Devices: []string{"d"}, AddLabels: map[string]string{"k": "v"}, RemoveLabels: []string{"k"}}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantCode(t, checkBatchUpdate(tt.req), tt.code) })
	}
}

func TestParseDeviceListing(t *testing.T) {
	tests := []struct {
		name     string
		query    string
		code     int
		filters  []string
		labelIs  [][2]string
		order    []string
		desc     bool
		keeps    int
		keepsDev bool // whether the sample device passes the kept filters
	}{
		{name: "none", query: "", keepsDev: true},
		{name: "ids", query: "device_ids=a,b&device_ids=dev1", filters: []string{"ids=a,b,dev1"}, keeps: 1, keepsDev: true},
		{name: "other ids", query: "device_ids=a", filters: []string{"ids=a"}, keeps: 1},
		{name: "types", query: "device_types=temperature", filters: []string{"types=temperature"}, keeps: 1, keepsDev: true},
		{name: "label value", query: "label_filters=site=a", filters: []string{"label=site=a"}, labelIs: [][2]string{{"site", "a"}}, keepsDev: true},
		{name: "label present", query: "label_filters=site", filters: []string{"label=site"}, keeps: 1, keepsDev: true},
		{name: "label absent", query: "label_filters=room", filters: []string{"label=room"}, keeps: 1},
		{name: "bad label", query: "label_filters=a%2Fb", code: 400},
		{name: "text in label", query: "query=NORTH", filters: []string{"query=north"}, keeps: 1, keepsDev: true},
		{name: "text nowhere", query: "query=south", filters: []string{"query=south"}, keeps: 1},
		{name: "order", query: "order_by=-labels.site", filters: []string{"order=-labels.site"}, order: []string{"labels", "site"}, desc: true, keepsDev: true},
		{name: "order reported", query: "order_by=reported.temperature.value", filters: []string{"order=reported.temperature.value"}, order: []string{"reported", "temperature", "value"}, keepsDev: true},
		{name: "bad order", query: "order_by=labels", code: 400},
		{name: "bad reported order", query: "order_by=reported.temp_1.value", code: 400},
		{name: "all", query: "device_ids=dev1&device_types=temperature&label_filters=site&query=north&order_by=type",
			filters: []string{"ids=dev1", "types=temperature", "label=site", "query=north", "order=type"}, order: []string{"type"}, keeps: 4, keepsDev: true},
	}
	dev := store.Device{Type: "temperature", Labels: map[string]string{"site": "North hall"}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			l, err := parseDeviceListing(q)
			wantCode(t, err, tt.code)
			if tt.code != 0 {
				return
			}
			if !slices.Equal(l.filters, tt.filters) {
				t.Errorf("filters %q, want %q", l.filters, tt.filters)
			}
			if !slices.Equal(l.filter.LabelIs, tt.labelIs) {
				t.Errorf("label filters %q, want %q", l.filter.LabelIs, tt.labelIs)
			}
			if !slices.Equal([]string(l.filter.Order), tt.order) || l.filter.Desc != tt.desc {
				t.Errorf("order %q desc %v, want %q %v", l.filter.Order, l.filter.Desc, tt.order, tt.desc)
			}
			if len(l.keeps) != tt.keeps {
				t.Fatalf("%d kept filters, want %d", len(l.keeps), tt.keeps)
			}
			kept := true
			for _, k := range l.keeps {
				kept = kept && k(dev, "dev1")
			}
			if kept != tt.keepsDev {
				t.Errorf("device kept %v, want %v", kept, tt.keepsDev)
			}
		})
	}
}

func TestOrderingField(t *testing.T) {
	// A page token's scope names the order as the client did, so tokens
	// stay valid across the move of field paths into the store.
	for _, f := range []string{"type", "productNumber", "labels.site", "labels.a.b", "reported.temperature.value"} {
		t.Run(f, func(t *testing.T) {
			p, ok := store.DeviceOrderPath(f)
			if !ok {
				t.Fatal("refused")
			}
			if got := (ordering{Path: p}).field(); got != f {
				t.Errorf("field %q, want %q", got, f)
			}
		})
	}
	if got := (ordering{}).field(); got != "" {
		t.Errorf("no order: field %q", got)
	}
}

func TestParseEventWindow(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		query      string
		code       int
		start, end time.Time
		types      []string
	}{
		{name: "default", start: now.Add(-24 * time.Hour), end: now},
		{name: "window", query: "startTime=2025-05-01T00:00:00Z&endTime=2025-05-02T00:00:00.5Z",
			start: time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC), end: time.Date(2025, 5, 2, 0, 0, 0, 5e8, time.UTC)},
		{name: "types", query: "eventTypes=temperature,touch", start: now.Add(-24 * time.Hour), end: now, types: []string{"temperature", "touch"}},
		{name: "bad time", query: "startTime=yesterday", code: 400},
		{name: "empty window", query: "startTime=2025-06-01T12:00:00Z", code: 400},
		{name: "unknown type", query: "eventTypes=weather", code: 400},
		{name: "too many types", query: "eventTypes=" + strings.Repeat("touch,", maxIn+1), code: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			w, err := parseEventWindow(q, now)
			wantCode(t, err, tt.code)
			if tt.code != 0 {
				return
			}
			if !w.start.Equal(tt.start) || !w.end.Equal(tt.end) || !slices.Equal(w.types, tt.types) {
				t.Errorf("got %v %v %q, want %v %v %q", w.start, w.end, w.types, tt.start, tt.end, tt.types)
			}
		})
	}
}

func TestProjectChecks(t *testing.T) {
	long := strings.Repeat("x", maxDisplayName+1)
	t.Run("create", func(t *testing.T) {
		tests := []struct {
			name string
			req  createProject
			org  string
			code int
		}{
			{"ok", createProject{DisplayName: "Main", Organization: "organizations/o1"}, "o1", 0},
			{"bare org", createProject{DisplayName: "Main", Organization: "o1"}, "o1", 0},
			{"no org", createProject{DisplayName: "Main"}, "", 400},
			{"blank name", createProject{DisplayName: "  ", Organization: "o1"}, "", 400},
			{"long name", createProject{DisplayName: long, Organization: "o1"}, "", 400},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				org, err := newProjectOrg(tt.req)
				wantCode(t, err, tt.code)
				if org != tt.org {
					t.Errorf("org %q, want %q", org, tt.org)
				}
			})
		}
	})
	t.Run("update", func(t *testing.T) {
		tests := []struct {
			name string
			req  updateProject
			code int
		}{
			{"nothing", updateProject{}, 0},
			{"name", updateProject{DisplayName: ptr("New")}, 0},
			{"access", updateProject{PersonnelAccess: ptr(PersonnelAllowWithReason)}, 0},
			{"blank name", updateProject{DisplayName: ptr(" ")}, 400},
			{"long name", updateProject{DisplayName: ptr(long)}, 400},
			{"bad access", updateProject{PersonnelAccess: ptr("ALWAYS")}, 400},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				upd, err := projectUpdate(tt.req)
				wantCode(t, err, tt.code)
				if err == nil && (upd.DisplayName != tt.req.DisplayName || upd.PersonnelAccess != tt.req.PersonnelAccess) {
					t.Errorf("update %+v from %+v", upd, tt.req)
				}
			})
		}
	})
}

func TestAccountChecks(t *testing.T) {
	now := time.Unix(1700000000, 0).UTC()
	t.Run("update", func(t *testing.T) {
		tests := []struct {
			name string
			req  updateAccount
			code int
		}{
			{"nothing", updateAccount{}, 0},
			{"all", updateAccount{DisplayName: ptr("n"), EnableBasicAuth: ptr(true), Disabled: ptr(true)}, 0},
			{"long name", updateAccount{DisplayName: ptr(strings.Repeat("x", maxDisplayName+1))}, 400},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				upd, err := accountUpdate(tt.req, now)
				wantCode(t, err, tt.code)
				if err != nil {
					return
				}
				if !upd.UpdateTime.Equal(now) || upd.DisplayName != tt.req.DisplayName || upd.BasicAuth != tt.req.EnableBasicAuth || upd.Disabled != tt.req.Disabled {
					t.Errorf("update %+v from %+v", upd, tt.req)
				}
			})
		}
	})
	t.Run("roles", func(t *testing.T) {
		const project, org = "projects/p", "organizations/o"
		tests := []struct {
			name, scope string
			roles       []string
			code        int
		}{
			{"user", project, []string{roleUser}, 0},
			{"admin", project, []string{roleAdmin}, 0},
			{"none", project, nil, 400},
			{"two", project, []string{roleUser, roleAdmin}, 400},
			{"organization admin on a project", project, []string{roleOrgAdmin}, 400},
			{"unknown", project, []string{"roles/owner"}, 400},
			{"organization admin", org, []string{roleOrgAdmin}, 0},
			{"project admin on an organization", org, []string{roleAdmin}, 400},
			{"none on an organization", org, nil, 400},
			{"two on an organization", org, []string{roleOrgAdmin, roleOrgAdmin}, 400},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) { wantCode(t, checkRoles(tt.scope, tt.roles), tt.code) })
		}
	})
}

func TestStoreErr(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code int // 0: passed on as internal
	}{
		{"missing", store.ErrNotFound, http.StatusNotFound},
		{"api error", errConflict("x"), http.StatusConflict},
		{"wrapped missing", fmt.Errorf("store: key k: %w", store.ErrNotFound), http.StatusNotFound},
		{"firestore failing", fmt.Errorf("store: key k: %w", status.Error(codes.Unavailable, "down")), http.StatusServiceUnavailable},
		{"deadline", context.DeadlineExceeded, http.StatusServiceUnavailable},
		{"undecodable", errors.New("firestore: cannot set type int to string"), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := storeErr(tt.err, "thing")
			if tt.code == 0 {
				if err != tt.err {
					t.Errorf("got %v, want %v as is", err, tt.err)
				}
				return
			}
			wantCode(t, err, tt.code)
		})
	}
	if storeErr(nil, "thing") != nil {
		t.Error("nil is an error")
	}
}
