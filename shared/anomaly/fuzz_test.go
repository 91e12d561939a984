package anomaly_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/anomaly"
)

// bytesIn reads fuzz input; past its end it reads zeros.
type bytesIn struct{ b []byte }

func (r *bytesIn) more() bool { return len(r.b) > 0 }

func (r *bytesIn) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *bytesIn) u32() uint32 {
	var buf [4]byte
	for i := range buf {
		buf[i] = r.byte()
	}
	return binary.LittleEndian.Uint32(buf[:])
}

func (r *bytesIn) u64() uint64 { return uint64(r.u32()) | uint64(r.u32())<<32 }

// when is a time near cur (possibly before it), or now and then an absurd
// one.
func (r *bytesIn) when(cur time.Time) time.Time {
	switch m := r.byte(); {
	case m == 255:
		return time.Time{}
	case m == 254:
		return time.Unix(int64(r.u64()), int64(r.u32()))
	default:
		return cur.Add(time.Duration(int32(r.u32())) * time.Millisecond)
	}
}

// FuzzObservePacket drives one device's packets, handshakes and sweeps
// from arbitrary bytes: no panic, no kind opened twice or cleared unopened,
// no NaN or unstorable time in the state, evidence storable.
func FuzzObservePacket(f *testing.F) {
	f.Add([]byte{})
	f.Add(packetSeed(1, 0))
	f.Add(packetSeed(2, 1))
	f.Add(packetSeed(3, 2))
	f.Add([]byte{0, 255, 0, 0, 0, 0, 0, 7, 255, 255, 255, 255, 255, 255, 255, 255, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &bytesIn{data}
		s := anomaly.DefaultSettings()
		var tr tracker
		var h anomaly.Health
		cur := t0
		var last uint64
		for r.more() {
			var ch []anomaly.Change
			switch r.byte() % 4 {
			case 0:
				p := anomaly.Packet{At: r.when(cur), Epoch: uint32(r.byte() % 4), Interval: time.Duration(int64(r.u64()))}
				for range r.byte() % 8 {
					if m := r.byte(); m < 200 {
						last += uint64(int8(r.byte())) // wraps, on purpose
					} else {
						last = r.u64()
					}
					p.Seqs = append(p.Seqs, last)
				}
				for range r.byte() % 3 {
					p.Battery = append(p.Battery, anomaly.BatteryReading{Percentage: int(int8(r.byte())), At: r.when(cur)})
				}
				h.Traffic, ch = anomaly.ObservePacket(h.Traffic, tr.open, p, s)
			case 1:
				h.Handshakes, ch = anomaly.ObserveHandshake(h.Handshakes, tr.open, r.when(cur), s)
			case 2:
				h.Open = tr.open
				ch = anomaly.Review(h, r.when(cur), s)
			case 3:
				cur = cur.Add(time.Duration(r.u32()%100_000) * time.Second)
			}
			tr.fold(t, ch)
			h.Open = tr.open
			anomaly.ReviewAt(h, s)
			if err := finiteState(h); err != nil {
				t.Fatalf("state: %v", err)
			}
		}
	})
}

// packetSeed encodes a plausible stream for FuzzObservePacket: packets
// every 10 s, a handshake every 6th step, a sweep every 4th, and with
// variant 1 a counter jump, with variant 2 a handshake flood.
func packetSeed(seed uint64, variant int) []byte {
	rng := rand.New(rand.NewPCG(seed, 3))
	var b []byte
	u32 := func(v uint32) { b = binary.LittleEndian.AppendUint32(b, v) }
	for i := range 60 {
		switch {
		case variant == 2 && i > 30 && i < 50:
			b = append(b, 1, 0)
			u32(200)
		case i%6 == 5:
			b = append(b, 1, 0)
			u32(uint32(rng.IntN(1000)))
		case i%4 == 3:
			b = append(b, 2, 0)
			u32(0)
		default:
			b = append(b, 3)
			u32(10)
			b = append(b, 0, 0)
			u32(uint32(rng.IntN(500)))
			b = append(b, 1)
			b = binary.LittleEndian.AppendUint64(b, uint64(10*time.Second))
			b = append(b, 1)
			if variant == 1 && i == 40 {
				b = append(b, 250)
				u32(1 << 31)
				u32(1)
			} else {
				b = append(b, 0, 1)
			}
			b = append(b, 1, byte(90-i/10), 0)
			u32(0)
		}
	}
	return b
}

// FuzzObserveReception drives one device's receptions from arbitrary
// bytes, RSSI included (NaN, infinities, any bits): no panic, no kind
// opened twice or cleared unopened, no NaN stored, links bounded.
func FuzzObserveReception(f *testing.F) {
	f.Add([]byte{})
	f.Add(receptionSeed(1, false))
	f.Add(receptionSeed(2, true))
	nan := binary.LittleEndian.AppendUint64(nil, math.Float64bits(math.NaN()))
	f.Add(append([]byte{3, 0, 1, 1, 0, 0, 0, 200}, nan...))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &bytesIn{data}
		s := anomaly.DefaultSettings()
		var tr tracker
		var l anomaly.Location
		cur := t0
		for r.more() {
			var hs []anomaly.Hearer
			for range r.byte() % 6 {
				h := anomaly.Hearer{ConnectorID: fmt.Sprintf("c%d", r.byte()%20)}
				if m := r.byte(); m < 200 {
					h.RSSI = -150 + float64(r.byte())*0.6
				} else {
					h.RSSI = math.Float64frombits(r.u64())
				}
				hs = append(hs, h)
			}
			cur = cur.Add(time.Duration(r.byte()) * time.Minute)
			var ch []anomaly.Change
			l, ch = anomaly.ObserveReception(l, tr.open, hs, r.when(cur), s)
			tr.fold(t, ch)
			if err := finiteState(l); err != nil {
				t.Fatalf("state: %v", err)
			}
			if len(l.Links) > s.MaxLinks {
				t.Fatalf("%d links, bound %d", len(l.Links), s.MaxLinks)
			}
		}
	})
}

// receptionSeed encodes 60 receptions by three connectors with noise, and
// when moved, the last 20 with the RSSI shifted.
func receptionSeed(seed uint64, moved bool) []byte {
	rng := rand.New(rand.NewPCG(seed, 5))
	var b []byte
	for i := range 60 {
		b = append(b, 3)
		for c, mean := range []float64{-70, -85, -95} {
			if moved && i >= 40 {
				mean += 25
			}
			v := (mean + 6*rng.Float64() - 3 + 150) / 0.6
			b = append(b, byte(c), 0, byte(v))
		}
		b = append(b, 15, 0, 0, 0, 0, 0)
	}
	return b
}
