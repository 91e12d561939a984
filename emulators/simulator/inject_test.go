package simulator_test

import (
	"bytes"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/emulators/simulator"
	"github.com/sealedsense/sealedsense/shared/payload"
)

// waitFor polls cond until it holds; the deadline is a failsafe, not an
// assertion of speed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// meanStd is the mean and the (population) standard deviation of xs.
func meanStd(xs []float64) (mean, std float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	for _, x := range xs {
		std += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(std / float64(len(xs)))
}

// TestRSSINoise: over many packets a connector hears a sensor at the
// RSSI of its distance on average, spread by the noise asked for. The
// packet's noise is shared by its copies, so the nearer connector hears
// every packet stronger; fading, drawn per copy, spreads their difference.
func TestRSSINoise(t *testing.T) {
	t.Parallel()
	near, far := simulator.RSSI(10), simulator.RSSI(30)
	for _, tc := range []struct {
		name          string
		noise, fading float64
		wantStd       float64 // of each connector's RSSI
		wantDiffStd   float64 // of near minus far, packet by packet
	}{
		{"default", 0, 0, 2, 0},
		{"wide", 5, 0, 5, 0},
		{"none", -1, 0, 0, 0},
		{"fading only", -1, 3, 3, 3 * math.Sqrt2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, simulator.Config{Interval: 10 * time.Millisecond, Seed: 3, RSSINoise: tc.noise, RSSIFading: tc.fading},
				simulator.Point{}, simulator.Connector{ID: "near", At: simulator.Point{X: 10}}, simulator.Connector{ID: "far", At: simulator.Point{X: -30}})
			const packets = 400
			// A few more, as the last copies may still be on their way.
			w.cloud.until("carrying reading 410", func(_ string, up payload.Uplink) bool {
				return slices.ContainsFunc(up.Readings, func(r payload.Reading) bool { return r.Seq >= packets+10 })
			})
			byPacket := map[string]map[string]float64{}
			w.cloud.mu.Lock()
			for _, c := range w.cloud.copies {
				if byPacket[c.pkt] == nil {
					byPacket[c.pkt] = map[string]float64{}
				}
				byPacket[c.pkt][c.via] = c.rssi
			}
			w.cloud.mu.Unlock()
			var nearRSSI, farRSSI, diff []float64
			for _, heard := range byPacket {
				n, okN := heard["near"]
				f, okF := heard["far"]
				if !okN || !okF {
					continue // a copy still on its way
				}
				nearRSSI, farRSSI, diff = append(nearRSSI, n), append(farRSSI, f), append(diff, n-f)
				if tc.fading == 0 && n <= f {
					t.Fatalf("a packet heard at %v dBm by the nearer connector and %v by the farther: shared noise keeps the ranking", n, f)
				}
			}
			if len(diff) < packets {
				t.Fatalf("%d packets heard by both connectors; want at least %d", len(diff), packets)
			}
			// Whole dBm on the air add a rounding error of 1/sqrt(12) dB.
			tol := 0.1*tc.wantStd + 0.35
			for _, c := range []struct {
				name      string
				got       []float64
				mean, std float64
			}{{"near", nearRSSI, near, tc.wantStd}, {"far", farRSSI, far, tc.wantStd}, {"near minus far", diff, near - far, tc.wantDiffStd}} {
				m, s := meanStd(c.got)
				t.Logf("%s: mean %.2f dB, spread %.2f over %d packets", c.name, m, s, len(c.got))
				if math.Abs(m-c.mean) > tol || math.Abs(s-c.std) > tol {
					t.Errorf("%s over %d packets: mean %.2f dB, spread %.2f; want %.2f and %.2f (±%.2f)", c.name, len(c.got), m, s, c.mean, c.std, tol)
				}
			}
		})
	}
}

// TestMoveSensor: a moved sensor is heard by the connectors near its new
// place, through which its packets and replies go; moved back, it is heard
// as before.
func TestMoveSensor(t *testing.T) {
	t.Parallel()
	home, away := simulator.Point{Y: 10}, simulator.Point{X: 1000, Y: 10}
	w := newWorld(t, simulator.Config{Interval: 20 * time.Millisecond, Seed: 4}, home,
		simulator.Connector{ID: "c1", At: simulator.Point{}}, simulator.Connector{ID: "c2", At: simulator.Point{X: 1000}})
	picture := func(want string) {
		t.Helper()
		if got := w.sim.InRange(sensorID); !slices.Equal(got, []string{want}) || w.sim.Strongest(sensorID) != want {
			t.Fatalf("the sensor is heard by %v, best by %q; want only %s", got, w.sim.Strongest(sensorID), want)
		}
	}
	picture("c1")
	last := uint64(0)
	through := func(via string) func(string, payload.Uplink) bool {
		return func(got string, up payload.Uplink) bool {
			fresh := slices.ContainsFunc(up.Readings, func(r payload.Reading) bool { return r.Seq > last })
			for _, r := range up.Readings {
				last = max(last, r.Seq)
			}
			return got == via && fresh
		}
	}
	w.cloud.until("through c1 from home", through("c1"))

	if err := w.sim.MoveSensor(sensorID, away); err != nil {
		t.Fatal(err)
	}
	picture("c2")
	w.cloud.until("through c2 with new readings once moved away", through("c2"))
	if err := w.sim.MoveSensor(sensorID, home); err != nil {
		t.Fatal(err)
	}
	picture("c1")
	w.cloud.until("through c1 with new readings once moved back", through("c1"))

	// The connectors are 1000 m apart: no packet reaches both, and each
	// copy's RSSI is that of 10 m, give or take the noise.
	seen := map[string]string{}
	w.cloud.mu.Lock()
	defer w.cloud.mu.Unlock()
	for _, c := range w.cloud.copies {
		if other, ok := seen[c.pkt]; ok && other != c.via {
			t.Fatalf("a packet reached both %s and %s", other, c.via)
		}
		seen[c.pkt] = c.via
		if math.Abs(c.rssi-simulator.RSSI(10)) > 12 {
			t.Fatalf("%s heard a packet at %v dBm; want about %.1f, the RSSI at 10 m", c.via, c.rssi, simulator.RSSI(10))
		}
	}
	if err := w.sim.MoveSensor("nobody", home); err == nil {
		t.Fatal("moving an unknown sensor succeeded")
	}
}

// batteryReadings are the battery levels the sensor reported, in order.
func batteryReadings(rs []payload.Reading) []payload.Reading {
	return slices.DeleteFunc(slices.Clone(rs), func(r payload.Reading) bool { return r.Kind != payload.Battery })
}

// TestBattery: a battery keeps its charge in a normal run, falls at the
// rate DrainBattery asks while it is asked, stays where it is once the
// drain stops, and reads 100 once replaced.
func TestBattery(t *testing.T) {
	t.Parallel()
	// TimeScale 100: a day of device time goes by in under 15 minutes,
	// and still the normal drain leaves the battery flat.
	w := newWorld(t, simulator.Config{Interval: 10 * time.Millisecond, TimeScale: 100, Seed: 5}, simulator.Point{},
		simulator.Connector{ID: "c1", At: simulator.Point{X: 10}})
	batteries := func(after int64) func() []payload.Reading {
		return func() []payload.Reading {
			return slices.DeleteFunc(batteryReadings(w.cloud.allReadings()), func(r payload.Reading) bool { return r.Time <= after })
		}
	}
	mark := func() int64 { return time.Now().UnixMilli() }
	waitFor(t, "5 battery readings", func() bool { return len(batteries(0)()) >= 5 })

	const rate = 600.0 // points a minute
	drainFrom := mark()
	if err := w.sim.DrainBattery(sensorID, rate); err != nil {
		t.Fatal(err)
	}
	draining := mark()
	waitFor(t, "a battery reading of 80 or less", func() bool {
		b := batteries(draining)()
		return len(b) > 0 && *b[len(b)-1].Percentage <= 80
	})
	stopFrom := mark()
	if err := w.sim.DrainBattery(sensorID, 0); err != nil {
		t.Fatal(err)
	}
	stopped := mark()
	waitFor(t, "5 battery readings after the drain stopped", func() bool { return len(batteries(stopped)()) >= 5 })
	replaceFrom := mark()
	if err := w.sim.ReplaceBattery(sensorID); err != nil {
		t.Fatal(err)
	}
	replaced := mark()
	waitFor(t, "5 battery readings after the replacement", func() bool { return len(batteries(replaced)()) >= 5 })
	w.drain(t)

	var normal, drained, held, fresh []payload.Reading
	for _, r := range batteryReadings(w.cloud.allReadings()) {
		switch {
		case r.Time < drainFrom:
			normal = append(normal, r)
		case r.Time > draining && r.Time < stopFrom:
			drained = append(drained, r)
		case r.Time > stopped && r.Time < replaceFrom:
			held = append(held, r)
		case r.Time > replaced:
			fresh = append(fresh, r)
		}
	}
	levels := func(rs []payload.Reading) []uint8 {
		var out []uint8
		for _, r := range rs {
			out = append(out, *r.Percentage)
		}
		return out
	}
	if slices.Min(levels(normal)) < 99 {
		t.Errorf("normal run's battery readings %v; want 99 or more", levels(normal))
	}
	if len(drained) < 2 || !slices.IsSortedFunc(levels(drained), func(a, b uint8) int { return int(b) - int(a) }) {
		t.Fatalf("battery readings while draining %v: want several, falling", levels(drained))
	}
	first, last := drained[0], drained[len(drained)-1]
	fell := float64(*first.Percentage) - float64(*last.Percentage)
	minutes := float64(last.Time-first.Time) / 60000
	// Whole points: the fall measured is within a point of the true one.
	if got := fell / minutes; math.Abs(got-rate) > (1/minutes)+0.02*rate {
		t.Errorf("battery fell %v points in %.3f minutes (%v → %v): %.0f a minute; want %v", fell, minutes, *first.Percentage, *last.Percentage, got, rate)
	}
	t.Logf("battery fell %v points in %.3f minutes; held at %v; replaced %v", fell, minutes, levels(held), levels(fresh))
	if h := levels(held); slices.Min(h) != slices.Max(h) || h[0] > *last.Percentage {
		t.Errorf("battery readings once the drain stopped %v; want one level, at most the last while draining, %d", h, *last.Percentage)
	}
	if f := levels(fresh); slices.Min(f) != 100 {
		t.Errorf("battery readings after the replacement %v; want 100", f)
	}
	if err := w.sim.DrainBattery(sensorID, -1); err == nil {
		t.Error("a negative drain was accepted")
	}
}

// TestJumpSequence: a jump ahead leaves a gap in the reading numbers; a
// jump back, without a new boot epoch, repeats numbers already used. The
// readings taken before keep their numbers.
func TestJumpSequence(t *testing.T) {
	t.Parallel()
	w := newWorld(t, simulator.Config{Interval: 20 * time.Millisecond, Seed: 6}, simulator.Point{},
		simulator.Connector{ID: "c1", At: simulator.Point{X: 10}})
	above := func(n uint64, count int) func(string, payload.Uplink) bool {
		seen := 0
		return func(_ string, up payload.Uplink) bool {
			for _, r := range up.Readings {
				if r.Seq > n && !r.Backfilled {
					seen++
				}
			}
			return seen >= count
		}
	}
	w.cloud.until("with 3 readings", above(0, 3))
	const ahead, back = 1000, 3
	if err := w.sim.JumpSequence(sensorID, ahead); err != nil {
		t.Fatal(err)
	}
	w.cloud.until("with 4 readings past the jump ahead", above(ahead, 4))
	if err := w.sim.JumpSequence(sensorID, -back); err != nil {
		t.Fatal(err)
	}
	// The sensor runs on meanwhile: next is at most a reading or two past
	// the first number repeated. Readings go on past the numbers repeated.
	next := w.sim.Sensor(sensorID).NextSeq()
	w.cloud.until("with 2 readings past the numbers repeated", above(next+back, 2))
	w.drain(t)

	count := map[uint64]int{}
	var seqs []uint64
	for _, r := range w.cloud.allReadings() {
		if count[r.Seq] == 0 {
			seqs = append(seqs, r.Seq)
		}
		count[r.Seq]++
	}
	slices.Sort(seqs)
	var gaps [][2]uint64
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			gaps = append(gaps, [2]uint64{seqs[i-1], seqs[i]})
		}
	}
	if seqs[0] != 1 || len(gaps) != 1 || gaps[0][1]-gaps[0][0] != ahead+1 {
		t.Fatalf("reading numbers from %d with gaps %v; want from 1 with one gap, of %d numbers", seqs[0], gaps, ahead)
	}
	var twice []uint64
	for _, seq := range seqs {
		switch count[seq] {
		case 1:
		case 2:
			twice = append(twice, seq)
		default:
			t.Fatalf("reading number %d used %d times", seq, count[seq])
		}
	}
	if len(twice) != back || twice[back-1] != twice[0]+back-1 || twice[0] <= gaps[0][1] || next < twice[0] {
		t.Fatalf("reading numbers used twice %v; want %d in a row after the gap %v, from at most %d", twice, back, gaps[0], next)
	}
}

// TestClone: a clone sends valid handshake initiations under the
// sensor's key, each newer than the last, at about the rate asked, while
// the original sensor keeps taking readings; stop ends them.
func TestClone(t *testing.T) {
	t.Parallel()
	w := newWorld(t, simulator.Config{Interval: 50 * time.Millisecond, Seed: 7}, simulator.Point{},
		simulator.Connector{ID: "c1", At: simulator.Point{X: 10}})
	w.cloud.until("from the sensor", func(string, payload.Uplink) bool { return true })
	initiations := func() int {
		w.cloud.mu.Lock()
		defer w.cloud.mu.Unlock()
		return len(w.cloud.initiations)
	}
	before, recorded := initiations(), w.sim.Sensor(sensorID).Stats().Recorded
	const every = 100 * time.Millisecond
	stop, err := w.sim.Clone(sensorID, every)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "10 initiations from the clone", func() bool { return initiations() >= before+10 })
	waitFor(t, "the original to take more readings", func() bool { return w.sim.Sensor(sensorID).Stats().Recorded > recorded })
	stop()
	cloned := w.sim.Stats().Cloned
	waitFor(t, "every initiation the clone sent", func() bool { return initiations() == before+int(cloned) })
	time.Sleep(5 * every) // a clone still on the air would send 5 more meanwhile
	if got := w.sim.Stats().Cloned; got != cloned || initiations() != before+int(cloned) {
		t.Fatalf("after stop the clone sent %d more initiations, the peer heard %d more", got-cloned, initiations()-before-int(cloned))
	}
	if st := w.sim.Sensor(sensorID).Stats(); st.Handshakes != uint64(before) {
		t.Fatalf("the original made %d handshakes; want its %d from before the clone", st.Handshakes, before)
	}

	w.cloud.mu.Lock()
	defer w.cloud.mu.Unlock()
	var gaps []time.Duration
	for i, rh := range w.cloud.initiations {
		if key := rh.PeerStatic(); !bytes.Equal(key[:], w.creds.StaticPublic) {
			t.Fatalf("initiation %d is under another key than the sensor's", i)
		}
		if i == 0 {
			continue
		}
		prev := w.cloud.initiations[i-1].Timestamp()
		if !rh.Timestamp().After(prev) {
			t.Fatalf("initiation %d's timestamp %v is not after the one before, %v", i, rh.Timestamp(), prev)
		}
		if i > before {
			gaps = append(gaps, rh.Timestamp().Sub(prev))
		}
	}
	slices.Sort(gaps)
	t.Logf("%d initiations from the clone, median %v apart", len(gaps), gaps[len(gaps)/2])
	if median := gaps[len(gaps)/2]; median < every/2 || median > 3*every/2 {
		t.Fatalf("the clone's initiations came %v apart (median of %v); want about %v", median, gaps, every)
	}
}
