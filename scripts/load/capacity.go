package main

import (
	"fmt"
	"time"

	"github.com/sealedsense/sealedsense/emulators/local"
)

// capacityShares are the loads -find-capacity offers in turn, as shares of
// the raw create rate.
var capacityShares = []float64{0.3, 0.45, 0.6, 0.75, 0.9, 1.05, 1.2, 1.35, 1.5}

// Each step settles, then is measured.
const (
	capacitySettle  = 20 * time.Second
	capacityMeasure = 30 * time.Second
	// capacityP99 is the send-to-ACK p99 past which a step is broken.
	capacityP99 = 2 * time.Second
)

// step is one measured load.
type step struct {
	share, offered, stored float64
	p50, p99               string
	p99ok                  bool
	backlogFrom, backlogTo int
}

// broken says why a step is past capacity, or "".
func (s step) broken() string {
	switch {
	case !s.p99ok:
		return fmt.Sprintf("send->ACK p99 %s, over %v", s.p99, capacityP99)
	case s.stored < 0.9*s.offered:
		return fmt.Sprintf("stored %.0f/s of %.0f/s offered", s.stored, s.offered)
	case float64(s.backlogTo-s.backlogFrom) > 0.1*s.offered*capacityMeasure.Seconds():
		return fmt.Sprintf("the sensors' backlog grew from %d to %d readings", s.backlogFrom, s.backlogTo)
	}
	return ""
}

// findCapacity steps the offered load up through capacityShares of raw,
// changing every sensor's interval in place, until a step breaks, and
// prints each step and the knee: the last load that held.
func findCapacity(d *local.Deployment, sensors int, raw float64, prog *progress) {
	fmt.Printf("\n%-6s %10s %10s %8s %12s %12s %s\n", "share", "offered/s", "stored/s", "of raw", "ACK p50", "ACK p99", "backlog")
	var knee *step
	for _, share := range capacityShares {
		iv, offered := offered{share: share}.perSensor(sensors, raw)
		d.Sim.SetInterval(iv)
		prog.offering(fmt.Sprintf("%.2f", share), offered)
		time.Sleep(capacitySettle)
		s := measureStep(d, prog, share, offered)
		fmt.Printf("%-6.2f %10.0f %10.0f %8.2f %12s %12s %d -> %d\n", s.share, s.offered, s.stored, s.stored/raw, s.p50, s.p99, s.backlogFrom, s.backlogTo)
		if why := s.broken(); why != "" {
			fmt.Printf("broken at %.2f of raw creates: %s\n", share, why)
			break
		}
		knee = &s
	}
	if knee == nil {
		fmt.Println("no load held: capacity is below the first step")
		return
	}
	fmt.Printf("knee: %.2f of raw creates, %.0f readings/s stored (raw creates %.0f/s)\n", knee.share, knee.stored, raw)
}

// measureStep measures one window of the load now offered.
func measureStep(d *local.Deployment, prog *progress, share, offeredRate float64) step {
	prog.takeAcks() // forget the settling's
	sent0, _ := sensorTotals(d)
	c0, _ := latestCounters(d.LogPath("functions"), d.Instances())
	s := step{share: share, offered: offeredRate, backlogFrom: d.Sim.Backlog()}
	start := time.Now()
	time.Sleep(capacityMeasure)
	c1, _ := latestCounters(d.LogPath("functions"), d.Instances())
	acks := prog.takeAcks()
	sent1, _ := sensorTotals(d)
	unacked := max(0, int(sent1-sent0)-len(acks))
	s.backlogTo = d.Sim.Backlog()
	s.stored = float64(c1.StoredReadings-c0.StoredReadings) / time.Since(start).Seconds()
	s.p50, s.p99 = pctOrNever(acks, unacked, 50), pctOrNever(acks, unacked, 99)
	if p, err := time.ParseDuration(s.p99); err == nil {
		s.p99ok = p <= capacityP99
	}
	return s
}
