package api

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/dataconnector"
	"github.com/sealedsense/sealedsense/shared/store"
)

// wantAPIError checks err against a wanted status and message part; code 0
// wants no error.
func wantAPIError(t *testing.T, err error, code int, msg string) {
	t.Helper()
	if code == 0 {
		if err != nil {
			t.Fatalf("err = %v, want none", err)
		}
		return
	}
	var ae *apiError
	if !errors.As(err, &ae) || ae.code != code || !strings.Contains(ae.msg, msg) {
		t.Fatalf("err = %v, want %d %q", err, code, msg)
	}
}

func TestDataConnectorValidateCreate(t *testing.T) {
	t.Parallel()
	ok := HTTPConfig{URL: "https://hooks.example.com/in"}
	for _, tc := range []struct {
		name  string
		req   createConnector
		local bool
		code  int
		msg   string
	}{
		{"defaults", createConnector{HTTPConfig: ok}, false, 0, ""},
		{"user disabled", createConnector{Status: dataconnector.UserDisabled, HTTPConfig: ok}, false, 0, ""},
		{"other type", createConnector{Type: "MQTT", HTTPConfig: ok}, false, 400, "type must be HTTP_PUSH"},
		{"system status", createConnector{Status: dataconnector.SystemDisabled, HTTPConfig: ok}, false, 400, "status must be"},
		{"long name", createConnector{DisplayName: strings.Repeat("x", maxDisplayNameLen+1), HTTPConfig: ok}, false, 400, "displayName"},
		{"no url", createConnector{}, false, 400, "httpConfig.url"},
		{"long url", createConnector{HTTPConfig: HTTPConfig{URL: "https://a.example/" + strings.Repeat("x", maxURLLen)}}, false, 400, "longer than"},
		{"plain http", createConnector{HTTPConfig: HTTPConfig{URL: "http://hooks.example.com"}}, false, 400, "httpConfig.url"},
		{"loopback in the cloud", createConnector{HTTPConfig: HTTPConfig{URL: "https://127.0.0.1/x"}}, false, 400, "httpConfig.url: egress: refused"},
		{"loopback in local mode", createConnector{HTTPConfig: HTTPConfig{URL: "http://127.0.0.1:8080/x"}}, true, 0, ""},
		{"private", createConnector{HTTPConfig: HTTPConfig{URL: "https://10.0.0.1/x"}}, false, 400, "httpConfig.url: egress: refused"},
		{"unknown event", createConnector{Events: []string{"smell"}, HTTPConfig: ok}, false, 400, "unknown event type"},
		{"bad label", createConnector{Labels: []string{"a b"}, HTTPConfig: ok}, false, 400, "invalid label key"},
		{"our header", createConnector{HTTPConfig: HTTPConfig{URL: ok.URL, Headers: map[string]string{"X-Dt-Signature": "x"}}}, false, 400, "httpConfig.headers"},
		{"short secret", createConnector{HTTPConfig: HTTPConfig{URL: ok.URL, SignatureSecret: "short"}}, false, 400, "signatureSecret"},
		{"good secret", createConnector{HTTPConfig: HTTPConfig{URL: ok.URL, SignatureSecret: "sixteen chars ok"}}, false, 0, ""},
		// The first problem is the one answered.
		{"type before url", createConnector{Type: "MQTT"}, false, 400, "type must be"},
		{"url before headers", createConnector{HTTPConfig: HTTPConfig{Headers: map[string]string{"Host": "x"}}}, false, 400, "httpConfig.url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := validateCreate(tc.req, tc.local)
			wantAPIError(t, err, tc.code, tc.msg)
			if err == nil && tc.req.Status == "" && got.Status != dataconnector.Active {
				t.Fatalf("status defaulted to %q", got.Status)
			}
		})
	}
}

func TestDataConnectorCheckUpdate(t *testing.T) {
	t.Parallel()
	active, disabled := ptr(dataconnector.Active), ptr(dataconnector.UserDisabled)
	for _, tc := range []struct {
		name     string
		req      updateConnector
		backfill string
		want     bool
		code     int
		msg      string
	}{
		{"nothing", updateConnector{}, "", false, 0, ""},
		{"enable with backfill", updateConnector{Status: active}, "true", true, 0, ""},
		{"enable without", updateConnector{Status: active}, "false", false, 0, ""},
		{"backfill not a bool", updateConnector{Status: active}, "yes please", false, 400, "backfill must be true or false"},
		{"backfill without enabling", updateConnector{DisplayName: ptr("x")}, "true", false, 400, "backfill needs status ACTIVE"},
		{"backfill while disabling", updateConnector{Status: disabled}, "true", false, 400, "backfill needs status ACTIVE"},
		{"system status", updateConnector{Status: ptr(dataconnector.SystemDisabled)}, "", false, 400, "status must be"},
		{"long name", updateConnector{DisplayName: ptr(strings.Repeat("x", maxDisplayNameLen+1))}, "", false, 400, "displayName"},
		{"unknown event", updateConnector{Events: &[]string{"smell"}}, "", false, 400, "unknown event type"},
		{"bad label", updateConnector{Labels: &[]string{"a b"}}, "", false, 400, "invalid label key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := checkConnectorUpdate(tc.req, tc.backfill)
			wantAPIError(t, err, tc.code, tc.msg)
			if got != tc.want {
				t.Fatalf("backfill = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDataConnectorCheckHTTPConfigUpdate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		h     *updateHTTPConfig
		local bool
		code  int
		msg   string
	}{
		{"none", nil, false, 0, ""},
		{"empty", &updateHTTPConfig{}, false, 0, ""},
		{"url", &updateHTTPConfig{URL: ptr("https://hooks.example.com")}, false, 0, ""},
		{"metadata server", &updateHTTPConfig{URL: ptr("https://169.254.169.254/")}, false, 400, "httpConfig.url"},
		{"local http", &updateHTTPConfig{URL: ptr("http://localhost:9000/")}, true, 0, ""},
		{"host header", &updateHTTPConfig{Headers: &map[string]string{"Host": "internal"}}, false, 400, "httpConfig.headers"},
		{"short secret", &updateHTTPConfig{SignatureSecret: ptr("short")}, false, 400, "signatureSecret"},
		{"long secret", &updateHTTPConfig{SignatureSecret: ptr(strings.Repeat("s", maxSecretLen+1))}, false, 400, "signatureSecret"},
		{"url first", &updateHTTPConfig{URL: ptr("ftp://x"), SignatureSecret: ptr("short")}, false, 400, "httpConfig.url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantAPIError(t, checkHTTPConfigUpdate(tc.h, tc.local), tc.code, tc.msg)
		})
	}
}

func TestDataConnectorStatusChange(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	const retention = 30 * 24 * time.Hour
	failing, disabledAt, ancient := now.Add(-2*time.Hour), now.Add(-time.Hour), now.Add(-40*24*time.Hour)
	for _, tc := range []struct {
		name     string
		want     *string
		backfill bool
		cur      store.DataConnector
		status   *store.DataConnectorStatus
		jobFrom  *time.Time
	}{
		{"no status", nil, false, store.DataConnector{Status: dataconnector.Active}, nil, nil},
		{"unchanged", ptr(dataconnector.Active), true, store.DataConnector{Status: dataconnector.Active, DisabledAt: &disabledAt}, nil, nil},
		{"disable", ptr(dataconnector.UserDisabled), false, store.DataConnector{Status: dataconnector.Active},
			&store.DataConnectorStatus{Status: dataconnector.UserDisabled, DisabledAt: &now}, nil},
		{"enable", ptr(dataconnector.Active), false, store.DataConnector{Status: dataconnector.UserDisabled, DisabledAt: &disabledAt},
			&store.DataConnectorStatus{Status: dataconnector.Active}, nil},
		{"enable with backfill from the failing streak", ptr(dataconnector.Active), true,
			store.DataConnector{Status: dataconnector.SystemDisabled, FailingSince: &failing, DisabledAt: &disabledAt},
			&store.DataConnectorStatus{Status: dataconnector.Active}, &failing},
		{"backfill of nothing missed", ptr(dataconnector.Active), true, store.DataConnector{Status: dataconnector.UserDisabled},
			&store.DataConnectorStatus{Status: dataconnector.Active}, nil},
		{"backfill no further than retention", ptr(dataconnector.Active), true, store.DataConnector{Status: dataconnector.UserDisabled, DisabledAt: &ancient},
			&store.DataConnectorStatus{Status: dataconnector.Active}, ptr(now.Add(-retention))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, job := statusChange(tc.want, tc.backfill, "p1", "c1", now, retention)(tc.cur)
			switch {
			case (st == nil) != (tc.status == nil):
				t.Fatalf("status change %+v, want %+v", st, tc.status)
			case st != nil && (st.Status != tc.status.Status || (st.DisabledAt == nil) != (tc.status.DisabledAt == nil) ||
				(st.DisabledAt != nil && !st.DisabledAt.Equal(*tc.status.DisabledAt))):
				t.Fatalf("status change %+v, want %+v", st, tc.status)
			}
			if (job == nil) != (tc.jobFrom == nil) {
				t.Fatalf("job %+v, want one from %v", job, tc.jobFrom)
			}
			if job != nil && (!job.From.Equal(*tc.jobFrom) || !job.To.Equal(now) || job.Kind != dataconnector.Backfill ||
				job.ProjectID != "p1" || job.ConnectorID != "c1" || job.Done || !job.ExpireAt.Equal(now.Add(7*24*time.Hour))) {
				t.Fatalf("job %+v", job)
			}
		})
	}
}
