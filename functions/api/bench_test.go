package api_test

import (
	"testing"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
)

// BenchmarkGetDevice is an authenticated GET of one device through the
// local functions server against the emulators: token check, cached
// principal, one device read and one audit write. kms-calls/op must be 0.
func BenchmarkGetDevice(b *testing.B) {
	w := newWorld(b, "SEALEDSENSE_API_RATE=1000000")
	d := w.devices(w.tenant.Project, "", 1)[0]
	path := "/v2/projects/" + w.tenant.Project + "/devices/" + d
	auth := "Bearer " + w.admin.token()
	if code, body := w.request("GET", path, auth, nil); code != 200 {
		b.Fatalf("%d %s", code, body)
	}
	calls := platformtest.Platform().KMSCalls()
	for b.Loop() {
		if code, _ := w.request("GET", path, auth, nil); code != 200 {
			b.Fatalf("status %d", code)
		}
	}
	b.ReportMetric(float64(platformtest.Platform().KMSCalls()-calls)/float64(b.N), "kms-calls/op")
}
