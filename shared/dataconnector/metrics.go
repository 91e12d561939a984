package dataconnector

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/sealedsense/sealedsense/shared/store"
)

// Window is the width of one metrics document's time slot.
const Window = 5 * time.Minute

// MetricShards spreads one connector's counters over several documents
// per window, so that a busy connector does not hit Firestore's write
// rate on a single document.
const MetricShards = 8

// Latency histogram: bucket i holds latencies in (upper(i-1), upper(i)],
// upper(i) = 1 ms × 1.25^i, so a quantile read off it is within 25 %.
const (
	bucketGrowth = 1.25
	bucketCount  = 60 // upper(59) ≈ 525 s, beyond any timeout
)

// BucketOf is the histogram bucket of a latency.
func BucketOf(d time.Duration) int {
	ms := float64(d) / float64(time.Millisecond)
	if ms <= 1 {
		return 0
	}
	i := int(math.Ceil(math.Log(ms) / math.Log(bucketGrowth)))
	return min(i, bucketCount-1)
}

func upper(i int) time.Duration {
	return time.Duration(math.Pow(bucketGrowth, float64(i)) * float64(time.Millisecond))
}

// BucketField is the map key of bucket i in a metrics document.
func BucketField(i int) string { return fmt.Sprintf("b%02d", i) }

// Summary is what :metrics answers.
type Summary struct {
	Success, Error int64
	Latency99p     time.Duration
}

// Summarize adds up metrics documents and reads the 99th percentile of
// successful deliveries' latency off their histograms (the bucket's upper
// bound, so it never understates).
func Summarize(docs []store.DeliveryMetric) Summary {
	var s Summary
	hist := make([]int64, bucketCount)
	for _, d := range docs {
		s.Success += d.Success
		s.Error += d.Error
		for k, n := range d.Latency {
			i, err := strconv.Atoi(strings.TrimPrefix(k, "b"))
			if err != nil || i < 0 || i >= bucketCount {
				continue
			}
			hist[i] += n
		}
	}
	var total int64
	for _, n := range hist {
		total += n
	}
	if total == 0 {
		return s
	}
	rank := int64(math.Ceil(0.99 * float64(total)))
	var seen int64
	for i, n := range hist {
		seen += n
		if seen >= rank {
			s.Latency99p = upper(i)
			break
		}
	}
	return s
}
