package deliver

import (
	"context"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/dataconnector"
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
	fs := s.deps.Firestore
	bw := fs.BulkWriter(ctx)
	var jobs []*firestore.BulkWriterJob
	for k, m := range pending {
		lat := map[string]any{}
		for b, n := range m.latency {
			lat[dataconnector.BucketField(b)] = firestore.Increment(n)
		}
		doc := map[string]any{"connectorId": k.connector, "window": k.window, "expireAt": k.window.Add(s.cfg.Retention),
			"success": firestore.Increment(m.success), "error": firestore.Increment(m.errors)}
		if len(lat) > 0 {
			// An empty map would be merged as a value and clear the
			// histogram; only buckets with counts are sent.
			doc["latency"] = lat
		}
		j, err := bw.Set(fs.Collection(dataconnector.Metrics).Doc(dataconnector.MetricID(k.connector, k.window, s.shard)), doc, firestore.MergeAll)
		if err != nil {
			bw.End()
			return fmt.Errorf("deliver: metrics: %w", err)
		}
		jobs = append(jobs, j)
	}
	bw.End()
	for _, j := range jobs {
		if _, err := j.Results(); err != nil {
			return fmt.Errorf("deliver: metrics: %w", err)
		}
	}
	return nil
}
