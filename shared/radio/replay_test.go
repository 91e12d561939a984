package radio_test

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/sealedsense/sealedsense/shared/radio"
)

// model is the replay rule stated plainly: accept a counter once, unless it
// is WindowSize or more behind the newest accepted one.
type model struct {
	seen   map[uint64]bool
	newest uint64
	any    bool
}

func (m *model) update(c uint64) error {
	if m.any && c < m.newest && m.newest-c >= radio.WindowSize {
		return radio.ErrTooOld
	}
	if m.seen[c] {
		return radio.ErrReplay
	}
	m.seen[c] = true
	if !m.any || c > m.newest {
		m.newest, m.any = c, true
	}
	return nil
}

func TestReplayWindowAgainstModel(t *testing.T) {
	t.Parallel()
	gens := map[string]func(r *rand.Rand, last uint64) uint64{
		"in order": func(_ *rand.Rand, last uint64) uint64 { return last + 1 },
		"out of order within the window": func(r *rand.Rand, last uint64) uint64 {
			return max(int64ToU(int64(last)-int64(r.IntN(radio.WindowSize))), 0) + uint64(r.IntN(8))
		},
		"duplicates": func(r *rand.Rand, last uint64) uint64 { return last - uint64(r.IntN(3)) },
		"far jumps": func(r *rand.Rand, last uint64) uint64 {
			if r.IntN(10) == 0 {
				return last + uint64(r.IntN(10*radio.WindowSize))
			}
			return int64ToU(int64(last) - int64(r.IntN(3*radio.WindowSize)))
		},
		"around block edges": func(r *rand.Rand, last uint64) uint64 {
			return (last/64+uint64(r.IntN(3)))*64 - uint64(r.IntN(2))
		},
	}
	for name, gen := range gens {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for seed := range uint64(20) {
				r := rand.New(rand.NewPCG(seed, 42))
				var w radio.ReplayWindow
				m := &model{seen: map[uint64]bool{}}
				last := uint64(0)
				for step := range 5000 {
					c := gen(r, last)
					if err := w.Check(c); !sameErr(err, m.peek(c)) {
						t.Fatalf("seed %d step %d: Check(%d) = %v, model says %v", seed, step, c, err, m.peek(c))
					}
					got, want := w.Update(c), m.update(c)
					if !sameErr(got, want) {
						t.Fatalf("seed %d step %d: Update(%d) = %v, model says %v", seed, step, c, got, want)
					}
					if c > last {
						last = c
					}
					if step == 2500 {
						// Serialising mid-sequence must change nothing.
						b, _ := w.MarshalBinary()
						var restored radio.ReplayWindow
						if err := restored.UnmarshalBinary(b); err != nil {
							t.Fatal(err)
						}
						w = restored
					}
				}
			}
		})
	}
}

func (m *model) peek(c uint64) error {
	if m.any && c < m.newest && m.newest-c >= radio.WindowSize {
		return radio.ErrTooOld
	}
	if m.seen[c] {
		return radio.ErrReplay
	}
	return nil
}

func int64ToU(v int64) uint64 {
	if v < 0 {
		return 0
	}
	return uint64(v)
}

func sameErr(a, b error) bool { return errors.Is(a, b) && errors.Is(b, a) || a == nil && b == nil }

func TestReplayWindowSize(t *testing.T) {
	t.Parallel()
	if radio.WindowSize < 1024 {
		t.Fatalf("window of %d packets, the protocol promises at least 1024", radio.WindowSize)
	}
	var w radio.ReplayWindow
	if err := w.Update(5000); err != nil {
		t.Fatal(err)
	}
	if err := w.Update(5000 - radio.WindowSize + 1); err != nil {
		t.Fatalf("oldest counter inside the window refused: %v", err)
	}
	if err := w.Update(5000 - radio.WindowSize); !errors.Is(err, radio.ErrTooOld) {
		t.Fatalf("first counter outside the window: %v", err)
	}
	var bad radio.ReplayWindow
	if err := bad.UnmarshalBinary(make([]byte, 7)); !errors.Is(err, radio.ErrMalformed) {
		t.Fatalf("short window encoding: %v", err)
	}
}
