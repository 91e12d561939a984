package dataconnector

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/store"
)

func TestBodyForwardsOnlyChosenLabels(t *testing.T) {
	t.Parallel()
	c := Connector{Labels: []string{"room", "floor"}}
	ev := []byte(`{"eventId":"e1","eventType":"temperature"}`)
	b, err := c.Body(ev, map[string]string{"room": "101", "secret": "x"}, Metadata{DeviceID: "d1", ProjectID: "p1", DeviceType: "temperature", ProductNumber: "102081"})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Event    map[string]any    `json:"event"`
		Labels   map[string]string `json:"labels"`
		Metadata map[string]string `json:"metadata"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Event["eventId"] != "e1" || len(got.Labels) != 1 || got.Labels["room"] != "101" || got.Metadata["deviceId"] != "d1" || got.Metadata["productNumber"] != "102081" {
		t.Fatalf("body %s", b)
	}
	if _, err := c.Body([]byte("{nope"), nil, Metadata{}); err == nil {
		t.Fatal("a broken event made a body")
	}
}

func TestWants(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		events []string
		typ    string
		want   bool
	}{
		{nil, "temperature", true},
		{[]string{"touch"}, "temperature", false},
		{[]string{"touch", "temperature"}, "temperature", true},
	} {
		if got := (Connector{Events: tc.events}).Wants(tc.typ); got != tc.want {
			t.Errorf("%v wants %s = %v", tc.events, tc.typ, got)
		}
	}
}

func TestBackoffGrowsWithJitterAndCaps(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	base, max := time.Second, time.Minute
	prevHi := time.Duration(0)
	seen := map[time.Duration]bool{}
	for n := 1; n <= 12; n++ {
		d := Backoff(n, base, max, r)
		exp := min(base<<(n-1), max)
		if d < exp/2 || d > exp {
			t.Fatalf("attempt %d waits %v, want within [%v, %v]", n, d, exp/2, exp)
		}
		if exp/2 < prevHi/2 {
			t.Fatalf("attempt %d's range shrank", n)
		}
		prevHi = exp
		seen[d] = true
	}
	if len(seen) < 8 {
		t.Fatalf("only %d distinct waits in 12 attempts: no jitter", len(seen))
	}
}

func TestCheckHeaders(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		h    map[string]string
		ok   bool
	}{
		{"custom", map[string]string{"Authorization": "Bearer x", "X-Team": "a"}, true},
		{"dt signature", map[string]string{"x-dt-signature": "forged"}, false},
		{"our es256", map[string]string{"X-Sealedsense-Signature": "forged"}, false},
		{"standard webhooks", map[string]string{"Webhook-Signature": "v1,forged"}, false},
		{"host", map[string]string{"HOST": "internal"}, false},
		{"content type", map[string]string{"Content-Type": "text/plain"}, false},
		{"line break", map[string]string{"X-A": "a\r\nX-Dt-Signature: forged"}, false},
		{"bad name", map[string]string{"X A": "a"}, false},
		{"empty name", map[string]string{"": "a"}, false},
	} {
		err := CheckHeaders(tc.h)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v", tc.name, err)
		}
	}
	many := map[string]string{}
	for i := range MaxHeaders + 1 {
		many["X-H"+strings.Repeat("a", i)] = "v"
	}
	if CheckHeaders(many) == nil {
		t.Error("too many headers accepted")
	}
}

func TestSummarizeP99(t *testing.T) {
	t.Parallel()
	lat := map[string]int64{}
	// 990 fast deliveries at 20 ms, 10 slow at 2 s: p99 is the fast bucket.
	lat[BucketField(BucketOf(20*time.Millisecond))] += 990
	lat[BucketField(BucketOf(2*time.Second))] += 10
	s := Summarize([]store.DeliveryMetric{{Success: 600, Error: 3, Latency: lat}, {Success: 400, Error: 2}})
	if s.Success != 1000 || s.Error != 5 {
		t.Fatalf("counts %+v", s)
	}
	if s.Latency99p < 20*time.Millisecond || s.Latency99p > 25*time.Millisecond {
		t.Fatalf("p99 %v, want the 20 ms bucket", s.Latency99p)
	}
	lat[BucketField(BucketOf(2*time.Second))] += 10 // now 20 of 1010 are slow
	if s := Summarize([]store.DeliveryMetric{{Latency: lat}}); s.Latency99p < 2*time.Second {
		t.Fatalf("p99 %v, want the 2 s bucket", s.Latency99p)
	}
	if s := Summarize(nil); s.Latency99p != 0 {
		t.Fatal("p99 of nothing")
	}
}

func TestUndeliveredSince(t *testing.T) {
	t.Parallel()
	a, b := time.Unix(100, 0), time.Unix(200, 0)
	if _, ok := (Connector{}).UndeliveredSince(); ok {
		t.Fatal("healthy connector has a backfill start")
	}
	if got, _ := (Connector{FailingSince: &a, DisabledAt: &b}).UndeliveredSince(); !got.Equal(a) {
		t.Fatalf("got %v", got)
	}
	if got, _ := (Connector{DisabledAt: &b}).UndeliveredSince(); !got.Equal(b) {
		t.Fatalf("got %v", got)
	}
}
