package sensor

import (
	"testing"
	"time"
)

func TestKeyTrial(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	inUse, offered, other := [32]byte{1}, [32]byte{2}, [32]byte{3}
	const silent, retry = time.Minute, 10 * time.Minute
	type step struct {
		name string
		do   func(*keyTrial)
		at   time.Duration // since t0, for due
		due  bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"the key in use is no offer", []step{
			{"offer", func(k *keyTrial) { k.offer(inUse, inUse, t0) }, 0, false},
		}},
		{"an offer is due at once and stays due while it runs", []step{
			{"offer", func(k *keyTrial) { k.offer(offered, inUse, t0) }, 0, true},
			{"start", func(k *keyTrial) { k.start(t0) }, 30 * time.Second, true},
			{"not given up before silentAfter", func(k *keyTrial) { k.giveUp(t0.Add(59*time.Second), silent, retry) }, 59 * time.Second, true},
		}},
		{"an unanswered trial is given up until retryAfter", []step{
			{"offer", func(k *keyTrial) { k.offer(offered, inUse, t0) }, 0, true},
			{"start", func(k *keyTrial) { k.start(t0) }, 0, true},
			{"give up", func(k *keyTrial) { k.giveUp(t0.Add(silent), silent, retry) }, silent, false},
			{"the same offer again", func(k *keyTrial) { k.offer(offered, inUse, t0.Add(2*silent)) }, 2 * silent, false},
			{"retryAfter passed", func(*keyTrial) {}, silent + retry, true},
		}},
		{"a different offer replaces a given-up one at once", []step{
			{"offer", func(k *keyTrial) { k.offer(offered, inUse, t0) }, 0, true},
			{"start", func(k *keyTrial) { k.start(t0) }, 0, true},
			{"give up", func(k *keyTrial) { k.giveUp(t0.Add(silent), silent, retry) }, silent, false},
			{"another key", func(k *keyTrial) { k.offer(other, inUse, t0.Add(silent)) }, silent, true},
		}},
		{"adopting the offered key ends the offer", []step{
			{"offer", func(k *keyTrial) { k.offer(offered, inUse, t0) }, 0, true},
			{"adopted", func(k *keyTrial) { k.adopted(offered) }, 0, false},
			{"offered again once in use", func(k *keyTrial) { k.offer(offered, offered, t0) }, 0, false},
		}},
		{"adopting another key keeps the offer", []step{
			{"offer", func(k *keyTrial) { k.offer(offered, inUse, t0) }, 0, true},
			{"adopted other", func(k *keyTrial) { k.adopted(other) }, 0, true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var k keyTrial
			for _, s := range tc.steps {
				s.do(&k)
				if got := k.due(t0.Add(s.at)); got != s.due {
					t.Fatalf("after %q: due at +%v = %v, want %v (state %+v)", s.name, s.at, got, s.due, k)
				}
			}
		})
	}
}
