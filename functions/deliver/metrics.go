package deliver

import (
	"context"
	"fmt"
	"time"

	"github.com/sealedsense/sealedsense/shared/dataconnector"
	"github.com/sealedsense/sealedsense/shared/store"
)

type metricKey struct {
	connector string
	window    time.Time
}

type metricDelta struct {
	success, errors int64
	latency         map[int]int64
}

// Metrics are counted in memory and written as increments every
// flushEvery or flushCount attempts, so a delivery costs one Firestore
// write, not two; a crash loses at most that many from the figures, never
// a delivery.
const (
	flushEvery = 5 * time.Second
	flushCount = 200
)

// count adds an attempt to the pending metrics and says whether they are
// due to be written.
func (s *Service) count(connector string, now time.Time, out outcome) bool {
	k := metricKey{connector, now.Truncate(dataconnector.Window)}
	s.metricMu.Lock()
	defer s.metricMu.Unlock()
	m := s.metrics[k]
	if m == nil {
		m = &metricDelta{latency: map[int]int64{}}
		s.metrics[k] = m
	}
	if out.ok {
		m.success++
		m.latency[dataconnector.BucketOf(out.latency)]++
	} else {
		m.errors++
	}
	s.metricCount++
	if s.flushed.IsZero() {
		s.flushed = now
	}
	return s.metricCount >= flushCount || now.Sub(s.flushed) >= flushEvery
}

// flushMetrics writes the pending metrics as increments to this
// instance's shard of each (connector, window) document.
func (s *Service) flushMetrics(ctx context.Context) error {
	s.metricMu.Lock()
	pending := s.metrics
	s.metrics, s.metricCount, s.flushed = map[metricKey]*metricDelta{}, 0, s.deps.Now()
	s.metricMu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	deltas := make([]store.DeliveryMetricDelta, 0, len(pending))
	for k, m := range pending {
		lat := make(map[string]int64, len(m.latency))
		for b, n := range m.latency {
			lat[dataconnector.BucketField(b)] = n
		}
		deltas = append(deltas, store.DeliveryMetricDelta{ConnectorID: k.connector, Window: k.window, Shard: s.shard,
			Success: m.success, Error: m.errors, Latency: lat, ExpireAt: k.window.Add(s.cfg.Retention)})
	}
	if err := s.db.AddDeliveryMetrics(ctx, deltas); err != nil {
		return fmt.Errorf("deliver: %w", err)
	}
	return nil
}
