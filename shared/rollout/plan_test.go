package rollout_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/rollout"
)

// TestBucket pins the hash: a change would move devices between stages of
// rollouts under way. The vectors were computed apart from this code.
func TestBucket(t *testing.T) {
	cases := []struct {
		rollout, device string
		want            int
	}{
		{"r1", "dev-1", 6487},
		{"r1", "dev-2", 8669},
		{"rollout-2026-03", "sensor-000042", 8469},
	}
	for _, tc := range cases {
		t.Run(tc.rollout+"/"+tc.device, func(t *testing.T) {
			got, err := rollout.Bucket(tc.rollout, tc.device)
			if err != nil || got != tc.want {
				t.Errorf("Bucket(%q, %q) = %d, %v, want %d", tc.rollout, tc.device, got, err, tc.want)
			}
		})
	}
	for _, ids := range [][2]string{{"", "d"}, {"r", ""}, {"r\x00", "d"}, {"r", "\x00d"}} {
		t.Run(fmt.Sprintf("refused %q", ids), func(t *testing.T) {
			if _, err := rollout.Bucket(ids[0], ids[1]); !errors.Is(err, rollout.ErrInvalid) {
				t.Errorf("Bucket(%q, %q) error %v, want ErrInvalid", ids[0], ids[1], err)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	eu := map[string]string{"region": "eu"}
	euCanary := map[string]string{"region": "eu", "ring": "canary"}
	tooMany := map[string]string{}
	for i := range rollout.MaxStageLabels + 1 {
		tooMany[fmt.Sprint("k", i)] = "v"
	}
	var eleven rollout.Plan
	for i := range 11 {
		eleven = append(eleven, rollout.Stage{Percent: float64(i+1) * 100 / 11})
	}
	cases := []struct {
		name string
		plan rollout.Plan
		ok   bool
	}{
		{"default", rollout.DefaultPlan(), true},
		{"one stage", rollout.Plan{{Percent: 100}}, true},
		{"labels dropped one by one", rollout.Plan{{Percent: 5, Labels: euCanary}, {Percent: 5, Labels: eu}, {Percent: 100}}, true},
		{"limited to a label to the end", rollout.Plan{{Percent: 1, Labels: eu}, {Percent: 100, Labels: eu}}, true},
		{"finest percent", rollout.Plan{{Percent: rollout.MinPercent}, {Percent: 100}}, true},
		{"longest soak", rollout.Plan{{Percent: 100, Soak: rollout.MaxSoak, MinDevices: rollout.MaxMinDevices}}, true},
		{"ten stages", eleven[1:], true},
		{"no stage", nil, false},
		{"eleven stages", eleven, false},
		{"last below 100", rollout.Plan{{Percent: 1}, {Percent: 50}}, false},
		{"decreasing", rollout.Plan{{Percent: 10}, {Percent: 1}, {Percent: 100}}, false},
		{"same devices twice", rollout.Plan{{Percent: 10}, {Percent: 10}, {Percent: 100}}, false},
		{"same buckets", rollout.Plan{{Percent: 10}, {Percent: 10.001}, {Percent: 100}}, false},
		{"same labels and percent", rollout.Plan{{Percent: 10, Labels: eu}, {Percent: 10, Labels: map[string]string{"region": "eu"}}, {Percent: 100}}, false},
		{"label added", rollout.Plan{{Percent: 1}, {Percent: 100, Labels: eu}}, false},
		{"label value changed", rollout.Plan{{Percent: 1, Labels: eu}, {Percent: 100, Labels: map[string]string{"region": "us"}}}, false},
		{"zero percent", rollout.Plan{{Percent: 0}, {Percent: 100}}, false},
		{"below one bucket", rollout.Plan{{Percent: rollout.MinPercent / 2}, {Percent: 100}}, false},
		{"above 100", rollout.Plan{{Percent: 101}}, false},
		{"NaN percent", rollout.Plan{{Percent: math.NaN()}, {Percent: 100}}, false},
		{"infinite percent", rollout.Plan{{Percent: math.Inf(1)}}, false},
		{"negative soak", rollout.Plan{{Percent: 100, Soak: -time.Second}}, false},
		{"soak too long", rollout.Plan{{Percent: 100, Soak: rollout.MaxSoak + 1}}, false},
		{"negative min devices", rollout.Plan{{Percent: 100, MinDevices: -1}}, false},
		{"min devices too many", rollout.Plan{{Percent: 100, MinDevices: rollout.MaxMinDevices + 1}}, false},
		{"bad label key", rollout.Plan{{Percent: 100, Labels: map[string]string{"a b": "v"}}}, false},
		{"empty label key", rollout.Plan{{Percent: 100, Labels: map[string]string{"": "v"}}}, false},
		{"long label value", rollout.Plan{{Percent: 100, Labels: map[string]string{"k": strings.Repeat("v", 256)}}}, false},
		{"too many labels", rollout.Plan{{Percent: 100, Labels: tooMany}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.plan.Validate()
			if tc.ok && err != nil {
				t.Errorf("Validate(%+v) = %v, want nil", tc.plan, err)
			}
			if !tc.ok && !errors.Is(err, rollout.ErrInvalid) {
				t.Errorf("Validate(%+v) = %v, want ErrInvalid", tc.plan, err)
			}
		})
	}
}

// TestInStage uses devices of known buckets: dev-1 is in bucket 6487 and
// dev-2 in 8669 of rollout r1.
func TestInStage(t *testing.T) {
	eu := map[string]string{"region": "eu"}
	cases := []struct {
		name   string
		device string
		labels map[string]string
		stage  rollout.Stage
		want   bool
	}{
		{"bucket below the percent", "dev-1", nil, rollout.Stage{Percent: 65}, true},
		{"bucket at the percent", "dev-1", nil, rollout.Stage{Percent: 64.87}, false},
		{"bucket just below the percent", "dev-1", nil, rollout.Stage{Percent: 64.88}, true},
		{"percent rounded to a bucket", "dev-1", nil, rollout.Stage{Percent: 64.875}, true},
		{"bucket above the percent", "dev-1", nil, rollout.Stage{Percent: 64}, false},
		{"every device at 100", "dev-2", nil, rollout.Stage{Percent: 100}, true},
		{"labels match", "dev-1", map[string]string{"region": "eu", "x": "y"}, rollout.Stage{Percent: 100, Labels: eu}, true},
		{"label missing", "dev-1", map[string]string{"x": "y"}, rollout.Stage{Percent: 100, Labels: eu}, false},
		{"label differs", "dev-1", map[string]string{"region": "us"}, rollout.Stage{Percent: 100, Labels: eu}, false},
		{"labels match, bucket above", "dev-2", eu, rollout.Stage{Percent: 65, Labels: eu}, false},
		{"no labels needed", "dev-1", nil, rollout.Stage{Percent: 100, Labels: map[string]string{}}, true},
		{"zero percent", "dev-1", nil, rollout.Stage{}, false},
		{"negative percent", "dev-1", nil, rollout.Stage{Percent: -5}, false},
		{"NaN percent", "dev-1", nil, rollout.Stage{Percent: math.NaN()}, false},
		{"above 100", "dev-1", nil, rollout.Stage{Percent: 1e9}, false},
		{"empty device id", "", nil, rollout.Stage{Percent: 100}, false},
		{"device id with NUL", "dev-1\x00", nil, rollout.Stage{Percent: 100}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := rollout.InStage("r1", tc.device, tc.labels, tc.stage); got != tc.want {
				t.Errorf("InStage(r1, %q, %v, %+v) = %v, want %v", tc.device, tc.labels, tc.stage, got, tc.want)
			}
		})
	}
	if rollout.InStage("", "dev-1", nil, rollout.Stage{Percent: 100}) {
		t.Errorf("InStage with an empty rollout id reached dev-1")
	}
}

// fleet is 10,000 fixed device ids, so that counts are exact, not random.
func fleet() []string {
	ids := make([]string, 10000)
	for i := range ids {
		ids[i] = fmt.Sprintf("sensor-%05d", i)
	}
	return ids
}

// TestShare: a stage reaches about its percent of the devices. The ids are
// fixed, so the test cannot flake; the bound is 5 standard deviations of
// the binomial count, which a sound hash meets for all but 1 in 1.7 million
// fleets.
func TestShare(t *testing.T) {
	ids := fleet()
	n := float64(len(ids))
	for _, pct := range []float64{rollout.MinPercent, 0.5, 1, 10, 33.3, 50, 90, 100} {
		t.Run(fmt.Sprint(pct, "%"), func(t *testing.T) {
			got := 0
			for _, id := range ids {
				if rollout.InStage("share", id, nil, rollout.Stage{Percent: pct}) {
					got++
				}
			}
			p := pct / 100
			mean, sd := n*p, math.Sqrt(n*p*(1-p))
			if math.Abs(float64(got)-mean) > 5*sd+1 {
				t.Errorf("%v%% reached %d of %d devices, want %.0f ± %.0f", pct, got, len(ids), mean, 5*sd+1)
			}
		})
	}
}

// TestMonotonic: a device a stage reaches, every later stage of a valid
// plan reaches too.
func TestMonotonic(t *testing.T) {
	eu := map[string]string{"region": "eu"}
	euCanary := map[string]string{"region": "eu", "ring": "canary"}
	plans := map[string]rollout.Plan{
		"default":  rollout.DefaultPlan(),
		"labelled": {{Percent: 2, Labels: euCanary}, {Percent: 2, Labels: eu}, {Percent: 7.5, Labels: eu}, {Percent: 40}, {Percent: 100}},
		"fine":     {{Percent: 0.01}, {Percent: 0.02}, {Percent: 0.1}, {Percent: 99.99}, {Percent: 100}},
	}
	labelSets := []map[string]string{nil, eu, euCanary, {"region": "us", "ring": "canary"}}
	for name, plan := range plans {
		t.Run(name, func(t *testing.T) {
			if err := plan.Validate(); err != nil {
				t.Fatalf("plan %+v: %v", plan, err)
			}
			for i, id := range fleet() {
				labels := labelSets[i%len(labelSets)]
				in := false
				for s, st := range plan {
					now := rollout.InStage("mono", id, labels, st)
					if in && !now {
						t.Fatalf("%s (labels %v) left the rollout at stage %d (%+v)", id, labels, s, st)
					}
					in = now
				}
			}
		})
	}
}
