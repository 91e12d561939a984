package anomaly_test

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/anomaly"
)

// t0 is an arbitrary start for every scenario.
var t0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

// tracker holds the open troubles of one device across calls and checks
// what every caller relies on: a kind opens only when closed and clears
// only when open, and evidence is storable.
type tracker struct {
	open map[anomaly.Kind]anomaly.Open
	all  []anomaly.Change
}

// fold applies changes and returns them summarised as "+KIND" / "-KIND".
func (tr *tracker) fold(t testing.TB, ch []anomaly.Change) []string {
	t.Helper()
	var got []string
	for _, c := range ch {
		_, isOpen := tr.open[c.Kind]
		if c.Opened && isOpen {
			t.Fatalf("%s opened while already open (since %v): %+v", c.Kind, tr.open[c.Kind].Since, c)
		}
		if !c.Opened && !isOpen {
			t.Fatalf("%s cleared while not open: %+v", c.Kind, c)
		}
		if err := storable(c.Evidence); err != nil {
			t.Fatalf("%s evidence %v: %v", c.Kind, c.Evidence, err)
		}
		if c.Severity != anomaly.Warning && c.Severity != anomaly.Critical {
			t.Fatalf("%s severity %q", c.Kind, c.Severity)
		}
		tr.open = anomaly.Apply(tr.open, []anomaly.Change{c})
		got = append(got, summary(c))
	}
	tr.all = append(tr.all, ch...)
	return got
}

func summary(c anomaly.Change) string {
	if c.Opened {
		return "+" + string(c.Kind)
	}
	return "-" + string(c.Kind)
}

// storable reports a value Firestore or JSON would not keep as it is: an
// unsigned or odd-sized integer, a NaN or infinity, or a type outside the
// documented set.
func storable(v any) error {
	switch x := v.(type) {
	case nil, string, bool, int64, time.Time:
		return nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("non-finite float %v", x)
		}
		return nil
	case []any:
		for _, e := range x {
			if err := storable(e); err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		for k, e := range x {
			if err := storable(e); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
		return nil
	}
	return fmt.Errorf("type %T (%v)", v, v)
}

// finiteState reports what Firestore would refuse or a reader could not
// use anywhere in v (a state struct): a NaN or infinite float, or a time
// outside the years Firestore stores (1..9999). It walks by reflection,
// so new fields are covered too.
func finiteState(v any) error {
	return walkFloats(reflect.ValueOf(v), "")
}

func walkFloats(v reflect.Value, path string) error {
	switch v.Kind() {
	case reflect.Float32, reflect.Float64:
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%s = %v", path, f)
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			if tm := v.Interface().(time.Time); !tm.IsZero() && (tm.Year() < 1 || tm.Year() > 9999) {
				return fmt.Errorf("%s = %v, outside what Firestore stores", path, tm)
			}
			return nil
		}
		for i := range v.NumField() {
			if err := walkFloats(v.Field(i), path+"."+v.Type().Field(i).Name); err != nil {
				return err
			}
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			if err := walkFloats(v.MapIndex(k), fmt.Sprintf("%s[%v]", path, k)); err != nil {
				return err
			}
		}
	}
	return nil
}

func join(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, " ")
}

func seqs(from, to uint64) []uint64 {
	var out []uint64
	for q := from; q <= to; q++ {
		out = append(out, q)
	}
	slices.Reverse(out) // sensors send their newest reading first
	return out
}
