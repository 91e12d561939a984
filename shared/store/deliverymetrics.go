package store

import (
	"context"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
)

// deliveryMetricsCollection holds per-connector delivery counters and
// latency histograms, one document per (connector, window, shard) named
// by DeliveryMetricID.
const deliveryMetricsCollection = "deliveryMetrics"

// DeliveryMetric is one (connector, window, shard) document. The window
// width, shards and histogram buckets are shared/dataconnector's.
type DeliveryMetric struct {
	ConnectorID string           `firestore:"connectorId"`
	Window      time.Time        `firestore:"window"`
	Success     int64            `firestore:"success"`
	Error       int64            `firestore:"error"`
	Latency     map[string]int64 `firestore:"latency"` // bucket field → successes
	ExpireAt    time.Time        `firestore:"expireAt"`
}

// DeliveryMetricID names the document of a connector's window and shard.
func DeliveryMetricID(connectorID string, window time.Time, shard int) string {
	return fmt.Sprintf("%s_%d_%d", connectorID, window.Unix(), shard)
}

// DeliveryMetricDelta is what one instance adds to its shard of a
// (connector, window) document.
type DeliveryMetricDelta struct {
	ConnectorID string
	Window      time.Time
	Shard       int
	Success     int64
	Error       int64
	Latency     map[string]int64 // bucket field → successes to add
	ExpireAt    time.Time
}

// AddDeliveryMetrics adds deltas to their documents as increments, each
// document its own write. It returns the deltas not written, with the
// first error, for the caller to add again later: a transient failure
// delays figures rather than losing them.
func (db *DB) AddDeliveryMetrics(ctx context.Context, deltas []DeliveryMetricDelta) ([]DeliveryMetricDelta, error) {
	bw := db.fs.BulkWriter(ctx)
	jobs := make([]*firestore.BulkWriterJob, 0, len(deltas))
	var left []DeliveryMetricDelta
	var first error
	fail := func(m DeliveryMetricDelta, err error) {
		left = append(left, m)
		if first == nil {
			first = wrap("delivery metrics", err)
		}
	}
	for _, m := range deltas {
		doc := map[string]any{"connectorId": m.ConnectorID, "window": m.Window, "expireAt": m.ExpireAt,
			"success": firestore.Increment(m.Success), "error": firestore.Increment(m.Error)}
		lat := map[string]any{}
		for b, n := range m.Latency {
			lat[b] = firestore.Increment(n)
		}
		if len(lat) > 0 {
			// An empty map would be merged as a value and clear the
			// histogram; only buckets with counts are sent.
			doc["latency"] = lat
		}
		ref := db.fs.Collection(deliveryMetricsCollection).Doc(DeliveryMetricID(m.ConnectorID, m.Window, m.Shard))
		j, err := bw.Set(ref, doc, firestore.MergeAll)
		if err != nil {
			fail(m, err)
		}
		jobs = append(jobs, j)
	}
	bw.End()
	for i, j := range jobs {
		if j == nil {
			continue
		}
		if _, err := j.Results(); err != nil {
			fail(deltas[i], err)
		}
	}
	return left, first
}

// deliveryMetricsSince is :metrics' query: a connector's windows from a
// time on.
var _ = needs(deliveryMetricsCollection, Field{"connectorId", Asc}, Field{"window", Asc})

// DeliveryMetricsSince reads a connector's metrics documents of the
// windows from since on.
func (db *DB) DeliveryMetricsSince(ctx context.Context, connectorID string, since time.Time) ([]DeliveryMetric, error) {
	docs, err := db.fs.Collection(deliveryMetricsCollection).Where("connectorId", "==", connectorID).
		Where("window", ">=", since).Documents(ctx).GetAll()
	if err != nil {
		return nil, wrap("delivery metrics of "+connectorID, err)
	}
	out := make([]DeliveryMetric, 0, len(docs))
	for _, d := range docs {
		m, err := decode[DeliveryMetric](d)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}
