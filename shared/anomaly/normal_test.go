package anomaly_test

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/anomaly"
)

// event is one thing that happens to a simulated device, at a time.
type event struct {
	at        time.Time
	what      string // packet, handshake, review
	epoch     uint32
	seqs      []uint64
	battery   []anomaly.BatteryReading
	hearers   []anomaly.Hearer
	interval  time.Duration
	deviceTyp string
}

// normalDevice is the events of ten minutes of a healthy device: packets
// at a jittered interval (some overtaken on their way, some carrying only
// backfill), ±3 dB of RSSI noise, one of its connectors offline for two
// minutes, a handshake about every minute and a battery reading every
// tenth packet, and the sweep every 5 s.
func normalDevice(rng *rand.Rand, span time.Duration) []event {
	interval := []time.Duration{10 * time.Second, 15 * time.Second, 30 * time.Second}[rng.IntN(3)]
	configured := interval
	if rng.IntN(2) == 0 {
		configured = 0 // learned instead
	}
	batch := uint64(1 + rng.IntN(3))
	seq := uint64(rng.Int64N(1 << 40))
	epoch := uint32(rng.IntN(5))
	conns := map[string]float64{}
	for i := range 2 + rng.IntN(3) {
		conns[fmt.Sprintf("conn-%d", i)] = -110 + 60*rng.Float64()
	}
	offline := fmt.Sprintf("conn-%d", rng.IntN(len(conns)))
	typ := []string{"temperature", "co2", "touch"}[rng.IntN(3)]
	battery := 20 + rng.IntN(80)

	var evs []event
	start := t0.Add(time.Duration(rng.Int64N(int64(interval))))
	for i, sent := 0, start; sent.Before(t0.Add(span)); i++ {
		latency := time.Duration(50+rng.IntN(1500)) * time.Millisecond
		if rng.IntN(20) == 0 {
			latency += interval + interval/2 // overtaken by the next packet
		}
		var hs []anomaly.Hearer
		for _, id := range slices.Sorted(maps.Keys(conns)) {
			if id == offline && sent.Sub(t0) >= 4*time.Minute && sent.Sub(t0) < 6*time.Minute {
				continue
			}
			hs = append(hs, anomaly.Hearer{ConnectorID: id, RSSI: math.Round(conns[id] + 6*rng.Float64() - 3)})
		}
		p := event{at: sent.Add(latency), what: "packet", epoch: epoch, seqs: seqs(seq, seq+batch-1), hearers: hs, interval: configured, deviceTyp: typ}
		seq += batch
		if i%10 == 9 {
			p.battery = []anomaly.BatteryReading{{Percentage: battery - rng.IntN(2), At: sent}}
		}
		evs = append(evs, p)
		if rng.IntN(20) == 0 {
			evs = append(evs, event{at: sent.Add(latency + time.Second), what: "packet", epoch: epoch, hearers: slices.Clone(hs), interval: configured, deviceTyp: typ})
		}
		jitter := time.Duration((rng.Float64()*0.4 - 0.2) * float64(interval))
		sent = sent.Add(interval + jitter)
	}
	for at := t0.Add(time.Duration(rng.Int64N(int64(time.Minute)))); at.Before(t0.Add(span)); at = at.Add(50*time.Second + time.Duration(rng.Int64N(int64(20*time.Second)))) {
		evs = append(evs, event{at: at, what: "handshake"})
	}
	for at := t0; at.Before(t0.Add(span)); at = at.Add(5 * time.Second) {
		evs = append(evs, event{at: at, what: "review"})
	}
	slices.SortStableFunc(evs, func(a, b event) int { return a.at.Compare(b.at) })
	return evs
}

// play runs a device's events through the detectors, the way the ingest
// transactions and the sweep will, and returns every change.
func play(t testing.TB, evs []event, s anomaly.Settings) []anomaly.Change {
	var tr tracker
	var h anomaly.Health
	for _, e := range evs {
		var ch []anomaly.Change
		switch e.what {
		case "packet":
			h.Traffic, ch = anomaly.ObservePacket(h.Traffic, tr.open, anomaly.Packet{
				At: e.at, Epoch: e.epoch, Seqs: e.seqs, Battery: e.battery, Interval: e.interval, DeviceType: e.deviceTyp,
			}, s)
			tr.fold(t, ch)
			h.Location, ch = anomaly.ObserveReception(h.Location, tr.open, e.hearers, e.at, s)
		case "handshake":
			h.Handshakes, ch = anomaly.ObserveHandshake(h.Handshakes, tr.open, e.at, s)
		case "review":
			h.Open = tr.open
			ch = anomaly.Review(h, e.at, s)
		}
		tr.fold(t, ch)
	}
	return tr.all
}

// TestNormalTenMinutes: a healthy fleet raises nothing.
func TestNormalTenMinutes(t *testing.T) {
	s := anomaly.DefaultSettings()
	for d := range 50 {
		rng := rand.New(rand.NewPCG(uint64(d), 42))
		if got := play(t, normalDevice(rng, 10*time.Minute), s); len(got) != 0 {
			t.Errorf("device %d: %d changes, want none; first: %+v", d, len(got), got[0])
		}
	}
}

// TestTroubleIsSeen injects one trouble into the same simulated devices
// after 12 minutes, and checks that exactly that kind opens: the normal
// simulation above is quiet because the fleet is healthy, not because the
// detectors are blind to it.
func TestTroubleIsSeen(t *testing.T) {
	after := t0.Add(12 * time.Minute)
	late := func(e event) bool { return e.at.After(after) }
	troubles := []struct {
		kind   anomaly.Kind
		inject func([]event) []event
	}{
		{anomaly.Silent, func(evs []event) []event {
			return slices.DeleteFunc(evs, func(e event) bool { return late(e) && e.what == "packet" })
		}},
		{anomaly.HandshakeFlood, func(evs []event) []event {
			for i := range 30 {
				evs = append(evs, event{at: after.Add(time.Duration(i) * 200 * time.Millisecond), what: "handshake"})
			}
			return evs
		}},
		{anomaly.CounterJump, each(late, func(e *event) {
			for i := range e.seqs {
				e.seqs[i] += 1_000_000_000
			}
		})},
		{anomaly.CounterBackwards, each(late, func(e *event) {
			for i := range e.seqs {
				e.seqs[i] -= 1_000_000
			}
		})},
		{anomaly.Moved, each(late, func(e *event) {
			for i := range e.hearers {
				e.hearers[i].RSSI += 25
			}
		})},
		{anomaly.BatteryDrain, each(late, func(e *event) {
			for i := range e.battery {
				e.battery[i].Percentage -= 10
			}
		})},
	}
	s := anomaly.DefaultSettings()
	for _, tr := range troubles {
		t.Run(string(tr.kind), func(t *testing.T) {
			for d := range 10 {
				rng := rand.New(rand.NewPCG(uint64(d), 42))
				evs := tr.inject(normalDevice(rng, 20*time.Minute))
				slices.SortStableFunc(evs, func(a, b event) int { return a.at.Compare(b.at) })
				var opened []anomaly.Kind
				for _, c := range play(t, evs, s) {
					if c.Opened {
						opened = append(opened, c.Kind)
					}
				}
				if len(opened) != 1 || opened[0] != tr.kind {
					t.Errorf("device %d: opened %v, want exactly [%s]", d, opened, tr.kind)
				}
			}
		})
	}
}

// each changes the events that match.
func each(match func(event) bool, change func(*event)) func([]event) []event {
	return func(evs []event) []event {
		for i := range evs {
			if match(evs[i]) {
				change(&evs[i])
			}
		}
		return evs
	}
}
