package main

import (
	"fmt"
	"time"
)

// prices are list prices in US dollars, without free tiers (a fleet worth
// pricing is far past them) or discounts, as the pages named beside each
// listed them when read on priceDate. An operator's own bill differs with
// currency, contract and region tier: check the pages before quoting.
type prices struct {
	// cloud.google.com/firestore/pricing, Standard edition, multi-region
	// (eur3, where DESIGN.md keeps the data).
	docWrite, docRead, docDelete float64 // per document
	storedGiBMonth               float64
	// cloud.google.com/pubsub/pricing: throughput, publish and delivery
	// alike, at least 1000 bytes per request.
	pubsubTiB float64
	// cloud.google.com/run/pricing, Tier 1 region (europe-west1),
	// request-based billing, which Cloud Run functions default to.
	vcpuSecond, gibSecond, request float64
}

const priceDate = "2026-12-02"

var listPrices = prices{
	docWrite: 0.18 / 100_000, docRead: 0.06 / 100_000, docDelete: 0.02 / 100_000,
	storedGiBMonth: 0.18,
	pubsubTiB:      40,
	vcpuSecond:     0.000024, gibSecond: 0.0000025, request: 0.40 / 1_000_000,
}

// functionMemoryGiB is the memory Terraform gives each function
// (terraform/functions.tf, 256M).
const functionMemoryGiB = 0.25

// usageWindow is what a measured window used, as counted by ingest (the
// functions server's Firestore and Pub/Sub calls and push deliveries) and
// by /proc (its CPU time).
type usageWindow struct {
	readings, packets   float64
	docWrites, docReads float64
	// pubsubBytes is billable throughput: the functions' publishes and
	// the deliveries pushed to them, and the connectors' publishes
	// (uplinks) and pulls (downlinks), counted as the pushes and
	// publishes of the same messages.
	pubsubBytes float64
	pushes      float64
	cpuSeconds  float64
	// eventBytes is one reading event's stored size with its index
	// entries (storedSize), kept for retention.
	eventBytes float64
	retention  time.Duration
}

// billLine is one resource's share of the bill per million readings.
type billLine struct {
	what    string
	per     string // the usage behind it, per reading
	dollars float64
}

// perMillion prices a window's usage per million stored readings.
func (p prices) perMillion(u usageWindow) []billLine {
	if u.readings == 0 {
		return nil
	}
	per := func(x float64) float64 { return x / u.readings }
	m := 1e6
	// Every event is deleted once by its TTL. A data packet leaves no
	// other document to delete; a session's handshake leaves two, too
	// few to count.
	deletes := 1.0
	storedGiB := per(u.eventBytes*u.readings) / (1 << 30)
	months := u.retention.Hours() / (30 * 24)
	return []billLine{
		{"Firestore writes", fmt.Sprintf("%.2f", per(u.docWrites)), m * per(u.docWrites) * p.docWrite},
		{"Firestore reads", fmt.Sprintf("%.2f", per(u.docReads)), m * per(u.docReads) * p.docRead},
		{"Firestore TTL deletes", fmt.Sprintf("%.2f", deletes), m * deletes * p.docDelete},
		{"Firestore storage", fmt.Sprintf("%.0f bytes, %.0f days", u.eventBytes, u.retention.Hours()/24), m * storedGiB * months * p.storedGiBMonth},
		{"Pub/Sub throughput", fmt.Sprintf("%.0f bytes", per(u.pubsubBytes)), m * per(u.pubsubBytes) / (1 << 40) * p.pubsubTiB},
		{"function requests", fmt.Sprintf("%.3f", per(u.pushes)), m * per(u.pushes) * p.request},
		{"function CPU and memory", fmt.Sprintf("%.2f ms", per(u.cpuSeconds)*1000),
			m * per(u.cpuSeconds) * (p.vcpuSecond + functionMemoryGiB*p.gibSecond)},
	}
}

// fleetReadingsPerMonth is the README's reference fleet: 10,000 sensors
// sending one reading every 15 minutes, over 30 days.
const fleetReadingsPerMonth = 10_000 * 4 * 24 * 30

// printBill prints the bill per million readings and for the reference
// fleet, and returns the first.
func printBill(u usageWindow) float64 {
	lines := listPrices.perMillion(u)
	if lines == nil {
		return 0
	}
	fmt.Printf("the bill per million stored readings, at list prices of %s (scripts/load/bill.go):\n", priceDate)
	total := 0.0
	for _, l := range lines {
		fmt.Printf("  %-24s %-32s $%8.4f\n", l.what, l.per+" per reading", l.dollars)
		total += l.dollars
	}
	fmt.Printf("  %-24s %-32s $%8.4f\n", "total", "", total)
	fmt.Printf("10,000 sensors at one reading every 15 minutes (%.1f million readings a month) at this run's readings per packet: $%.2f a month\n",
		fleetReadingsPerMonth/1e6, total*fleetReadingsPerMonth/1e6)
	return total
}

// eventIndexes are the events collection's indexes (terraform/firestore.tf):
// the fields with single-field indexes, each kept ascending and
// descending, and the number of composite indexes.
var eventIndexes = struct {
	single     []string
	composites int
}{[]string{"projectId", "deviceId", "eventType", "timestamp", "storedAt"}, 4}

// storedSize is a document's storage size by Firestore's documented
// rules (cloud.google.com/firestore/docs/storage-size): its name, each
// field's name and value and 32 bytes, plus its index entries, each the
// document name, the indexed values and 32 bytes. A composite entry is
// counted with every single-indexed value, a slight overestimate.
func storedSize(collection, id string, fields map[string]any, single []string, composites int) int {
	name := len(collection) + 1 + len(id) + 1 + 16
	size := name + 32
	indexed := 0
	for k, v := range fields {
		size += len(k) + 1 + valueSize(v)
	}
	for _, f := range single {
		v, ok := fields[f]
		if !ok {
			continue
		}
		entry := name + len(f) + 1 + valueSize(v) + 32
		size += 2 * entry
		indexed += valueSize(v)
	}
	return size + composites*(name+indexed+32)
}

// valueSize is a field value's size by Firestore's rules.
func valueSize(v any) int {
	switch v := v.(type) {
	case string:
		return len(v) + 1
	case []byte:
		return len(v)
	case bool, nil:
		return 1
	case map[string]any:
		n := 0
		for k, x := range v {
			n += len(k) + 1 + valueSize(x)
		}
		return n
	case []any:
		n := 0
		for _, x := range v {
			n += valueSize(x)
		}
		return n
	default: // numbers, timestamps
		return 8
	}
}
