package simulator

import (
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/devicetype"
	"github.com/sealedsense/sealedsense/shared/payload"
)

// take runs a generator of typ for n readings, a minute apart.
func take(typ string, seed uint64, n int) []payload.Reading {
	g := newGenerator(typ, seed)
	start := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	out := make([]payload.Reading, n)
	for i := range out {
		out[i] = g.next(start.Add(time.Duration(i)*time.Minute), 97)
		out[i].Seq = uint64(i + 1)
	}
	return out
}

// TestEveryTypeEmitsItsEvents: a sensor of each type takes valid readings
// of exactly the event types the catalogue says it emits, its battery
// every tenth.
func TestEveryTypeEmitsItsEvents(t *testing.T) {
	t.Parallel()
	for _, typ := range devicetype.Sensors() {
		t.Run(typ, func(t *testing.T) {
			t.Parallel()
			rs := take(typ, 1, 1000)
			seen := map[string]bool{}
			for i, r := range rs {
				if err := r.Validate(); err != nil {
					t.Fatalf("reading %d: %v", i+1, err)
				}
				if (r.Kind == payload.Battery) != ((i+1)%batteryEvery == 0) {
					t.Fatalf("reading %d is %s; the battery is every %dth", i+1, r.Kind.EventType(), batteryEvery)
				}
				seen[r.Kind.EventType()] = true
				if !devicetype.Emits(typ, r.Kind.EventType()) {
					t.Fatalf("a %s sensor took a %s reading", typ, r.Kind.EventType())
				}
			}
			want, _ := devicetype.Lookup(typ)
			for _, e := range want.Events {
				if !seen[e] && e != "networkStatus" { // the cloud makes networkStatus
					t.Errorf("no %s reading in 1000", e)
				}
			}
			if again := take(typ, 1, 1000); !reflect.DeepEqual(again, rs) {
				t.Error("the same seed took other readings")
			}
		})
	}
}

// values are a type's readings of kind k, battery left out.
func values(rs []payload.Reading, k payload.Kind) []payload.Reading {
	return slices.DeleteFunc(slices.Clone(rs), func(r payload.Reading) bool { return r.Kind != k })
}

// TestCounters: a counter's total starts anywhere, never falls, and grows
// by a few at a time, at its own rate.
func TestCounters(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		typ  string
		kind payload.Kind
		mean float64
	}{
		{"proximityCounter", payload.ObjectPresentCount, passesPerReading},
		{"touchCounter", payload.TouchCount, touchesPerReading},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			t.Parallel()
			starts := map[uint32]bool{}
			for seed := range uint64(5) {
				rs := values(take(tc.typ, seed, 2000), tc.kind)
				starts[*rs[0].Total] = true
				for i := 1; i < len(rs); i++ {
					if step := int64(*rs[i].Total) - int64(*rs[i-1].Total); step < 0 || step > 20 {
						t.Fatalf("seed %d: the total went from %d to %d", seed, *rs[i-1].Total, *rs[i].Total)
					}
				}
				// A battery reading between two counts lets one interval's
				// events count in the next.
				mean := float64(*rs[len(rs)-1].Total-*rs[0].Total) / float64(len(rs)-1)
				if math.Abs(mean-tc.mean) > tc.mean*0.25 {
					t.Fatalf("seed %d: %.2f a reading on average; want about %g", seed, mean, tc.mean)
				}
			}
			if len(starts) < 5 {
				t.Fatalf("five sensors started at %v: the start is not random", starts)
			}
		})
	}
}

// stateRuns are a two-state sensor's runs: how many readings in a row
// each state held, the last run (cut off by the end) left out.
func stateRuns(rs []payload.Reading) (on, off []int) {
	for i := 0; i < len(rs); {
		j := i
		for j < len(rs) && *rs[j].State == *rs[i].State {
			j++
		}
		if j == len(rs) {
			break
		}
		if *rs[i].State {
			on = append(on, j-i)
		} else {
			off = append(off, j-i)
		}
		i = j
	}
	return on, off
}

// TestTwoStates: motion in short bursts among longer calm, a desk taken
// for long runs, a door closed but for a reading or two now and then.
func TestTwoStates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		typ  string
		kind payload.Kind
		runs runs
		// onShare bounds the share of readings in the on state.
		onShare [2]float64
	}{
		{"motion", payload.Motion, motionRuns, [2]float64{0.1, 0.4}},
		{"deskOccupancy", payload.DeskOccupancy, deskRuns, [2]float64{0.6, 0.9}},
		{"contact", payload.Contact, contactRuns, [2]float64{0.85, 0.99}},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			t.Parallel()
			rs := values(take(tc.typ, 3, 3000), tc.kind)
			on, off := stateRuns(rs[1:]) // the first run may have begun before
			if len(on) < 10 || len(off) < 10 {
				t.Fatalf("%d runs on, %d off in %d readings: the state hardly changes", len(on), len(off), len(rs))
			}
			for name, runs := range map[string][]int{"on": on[1:], "off": off[1:]} {
				span := tc.runs.off
				if name == "on" {
					span = tc.runs.on
				}
				if lo, hi := slices.Min(runs), slices.Max(runs); lo < span[0] || hi > span[1] {
					t.Errorf("%s runs of %d..%d readings; want within %v", name, lo, hi, span)
				}
			}
			n := 0
			for _, r := range rs {
				if *r.State {
					n++
				}
			}
			if share := float64(n) / float64(len(rs)); share < tc.onShare[0] || share > tc.onShare[1] {
				t.Errorf("on for %.2f of the readings; want %v", share, tc.onShare)
			}
		})
	}
}

// TestCO2SensorMeasuresPressure: CO2 and pressure by turns, CO2 first;
// pressure in whole pascals near the standard atmosphere, drifting slowly.
func TestCO2SensorMeasuresPressure(t *testing.T) {
	t.Parallel()
	rs := take("co2", 4, 2000)
	for i, r := range rs {
		want := payload.CO2
		switch {
		case (i+1)%batteryEvery == 0:
			want = payload.Battery
		case (i+1)%2 == 0:
			want = payload.Pressure
		}
		if r.Kind != want {
			t.Fatalf("reading %d is %s, want %s", i+1, r.Kind.EventType(), want.EventType())
		}
	}
	ps := values(rs, payload.Pressure)
	for i, r := range ps {
		if pa := *r.Pascal; pa != math.Round(pa) || pa < minWeather || pa > maxWeather {
			t.Fatalf("pressure %v Pa", pa)
		}
		if i > 0 && math.Abs(*r.Pascal-*ps[i-1].Pascal) > 8*pascalStep {
			t.Fatalf("pressure jumped from %v to %v Pa", *ps[i-1].Pascal, *r.Pascal)
		}
	}
	if math.Abs(*ps[0].Pascal-standardPascal) > 2000 {
		t.Fatalf("the first pressure is %v Pa", *ps[0].Pascal)
	}
}

// TestKeptReadingsAreBounded: a sensor keeps its newest KeptReadings
// readings, in order.
func TestKeptReadingsAreBounded(t *testing.T) {
	t.Parallel()
	var ss simSensor
	const extra = 2*KeptReadings + 17
	for seq := range uint64(extra) {
		ss.keep(payload.Reading{Seq: seq + 1})
	}
	if len(ss.taken) != KeptReadings || ss.taken[0].Seq != extra-KeptReadings+1 || ss.taken[KeptReadings-1].Seq != extra {
		t.Fatalf("kept %d readings, %d to %d", len(ss.taken), ss.taken[0].Seq, ss.taken[len(ss.taken)-1].Seq)
	}
	if c := cap(ss.taken); c > 4*KeptReadings {
		t.Fatalf("a backing array of %d readings", c)
	}
}
