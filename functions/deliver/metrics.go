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
	latency         map[string]int64 // by bucket field
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
		m = &metricDelta{latency: map[string]int64{}}
		s.metrics[k] = m
	}
	if out.ok {
		m.success++
		m.latency[dataconnector.BucketField(dataconnector.BucketOf(out.latency))]++
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
// instance's shard of each (connector, window) document. What could not
// be written is counted again, for the next flush. The write is the
// instance's, not the caller's: it is not cut short with the request that
// happened to trigger it.
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
		deltas = append(deltas, store.DeliveryMetricDelta{ConnectorID: k.connector, Window: k.window, Shard: s.shard,
			Success: m.success, Error: m.errors, Latency: m.latency, ExpireAt: k.window.Add(s.cfg.Retention)})
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
	defer cancel()
	left, err := s.db.AddDeliveryMetrics(ctx, deltas)
	s.recount(left)
	if err != nil {
		return fmt.Errorf("deliver: %d of %d metric documents not written, kept for the next flush: %w", len(left), len(deltas), err)
	}
	return nil
}

// flushTimeout bounds one flush of the metrics.
const flushTimeout = 10 * time.Second

// recount adds deltas that were not written back to the pending metrics.
func (s *Service) recount(deltas []store.DeliveryMetricDelta) {
	s.metricMu.Lock()
	defer s.metricMu.Unlock()
	for _, d := range deltas {
		k := metricKey{d.ConnectorID, d.Window}
		m := s.metrics[k]
		if m == nil {
			m = &metricDelta{latency: map[string]int64{}}
			s.metrics[k] = m
		}
		m.success += d.Success
		m.errors += d.Error
		for b, n := range d.Latency {
			m.latency[b] += n
		}
	}
}
