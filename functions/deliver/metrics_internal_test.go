package deliver

import (
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/dataconnector"
	"github.com/sealedsense/sealedsense/shared/store"
)

// TestRecount: metrics a flush could not write are counted again, added
// to what was counted since, so the next flush writes them: a failed
// write delays the figures and loses none.
func TestRecount(t *testing.T) {
	t.Parallel()
	s := &Service{metrics: map[metricKey]*metricDelta{}}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	w := now.Truncate(dataconnector.Window)
	fast := dataconnector.BucketField(dataconnector.BucketOf(10 * time.Millisecond))
	s.count("c1", now, outcome{ok: true, latency: 10 * time.Millisecond})
	s.count("c1", now, outcome{})
	s.recount([]store.DeliveryMetricDelta{
		{ConnectorID: "c1", Window: w, Success: 3, Error: 1, Latency: map[string]int64{fast: 3}},
		{ConnectorID: "c2", Window: w, Success: 2, Latency: map[string]int64{fast: 2}},
	})
	for _, tt := range []struct {
		connector             string
		success, errors, fast int64
	}{
		{"c1", 4, 2, 4},
		{"c2", 2, 0, 2},
	} {
		m := s.metrics[metricKey{tt.connector, w}]
		if m == nil || m.success != tt.success || m.errors != tt.errors || m.latency[fast] != tt.fast {
			t.Errorf("%s: %+v, want %d successes, %d errors, %d fast", tt.connector, m, tt.success, tt.errors, tt.fast)
		}
	}
}
