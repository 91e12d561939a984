package simulator

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/sealedsense/sealedsense/shared/air"
)

type hearing struct {
	c    Connector
	rssi float64 // on average
}

// placement is where a sensor stands and the connectors that hear it
// there, strongest on average first. It is never changed, only replaced
// (MoveSensor), so the send loop and the medium read it without a lock.
type placement struct {
	at    Point
	heard []hearing
}

func (s *Simulator) place(at Point) *placement {
	pl := &placement{at: at}
	for _, c := range s.cfg.Connectors {
		if r := RSSI(at.dist(c.At)); r >= sensitivity {
			pl.heard = append(pl.heard, hearing{c: c, rssi: r})
		}
	}
	slices.SortStableFunc(pl.heard, func(a, b hearing) int { return cmp.Compare(b.rssi, a.rssi) })
	return pl
}

func (pl *placement) hears(id string) bool {
	return slices.ContainsFunc(pl.heard, func(h hearing) bool { return h.c.ID == id })
}

// broadcast puts a packet sent at pl on the air: a copy to each connector
// in range, its RSSI the average plus the packet's noise (RSSINoise) plus
// the copy's own (RSSIFading), drawn from rng, which the caller owns.
func (s *Simulator) broadcast(pkt []byte, pl *placement, rng *rand.Rand) {
	shade := gauss(rng, s.cfg.RSSINoise)
	for _, h := range pl.heard {
		r := h.rssi + shade + gauss(rng, s.cfg.RSSIFading)
		frame, err := air.Frame{Kind: air.KindReceived, RSSI: math.Round(r), SNR: r - noiseFloor, Packet: pkt}.Append(nil)
		if err != nil {
			continue
		}
		if _, err := s.conn.WriteToUDP(frame, h.c.Addr); err == nil {
			s.delivered.Add(1)
		}
	}
}

// gauss is a draw of Gaussian noise of standard deviation sigma; none,
// and no draw, when sigma is not positive.
func gauss(rng *rand.Rand, sigma float64) float64 {
	if sigma <= 0 {
		return 0
	}
	return sigma * rng.NormFloat64()
}
