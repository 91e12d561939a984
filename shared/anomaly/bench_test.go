package anomaly_test

import (
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/anomaly"
)

// BenchmarkObservePacket is one packet of a steady device: the cost each
// packet transaction adds.
func BenchmarkObservePacket(b *testing.B) {
	s := anomaly.DefaultSettings()
	var st anomaly.Traffic
	p := anomaly.Packet{Seqs: make([]uint64, 1), Interval: 10 * time.Second, Battery: []anomaly.BatteryReading{{Percentage: 80}}}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p.At = t0.Add(time.Duration(i) * 10 * time.Second)
		p.Seqs[0] = uint64(i)
		p.Battery[0].At = p.At
		st, _ = anomaly.ObservePacket(st, nil, p, s)
	}
}

// BenchmarkObserveReception is one reception by three connectors after
// learning: the cost each reply transaction adds.
func BenchmarkObserveReception(b *testing.B) {
	s := anomaly.DefaultSettings()
	var l anomaly.Location
	hs := []anomaly.Hearer{{ConnectorID: "A", RSSI: -70}, {ConnectorID: "B", RSSI: -85}, {ConnectorID: "C", RSSI: -95}}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		hs[0].RSSI = -70 + float64(i%5-2)
		l, _ = anomaly.ObserveReception(l, nil, hs, t0.Add(time.Duration(i)*time.Minute), s)
	}
}
