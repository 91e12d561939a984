package radio_test

import (
	"testing"

	"github.com/sealedsense/sealedsense/shared/radio"
)

// BenchmarkRespond is the cloud side of a handshake: read message 1, then
// write message 2 and derive the session.
func BenchmarkRespond(b *testing.B) {
	w := newWorld(b, "bench")
	_, init, err := radio.Initiate(w.initiator(t0, nil))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		rh, err := radio.ReadInitiation(w.cloud, init, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := rh.Respond(w.psk, 1, t0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen64 opens one transport packet with a 64-byte payload, replay
// check included. Each iteration opens a fresh counter, as live traffic does.
func BenchmarkOpen64(b *testing.B) {
	w := newWorld(b, "bench")
	sensor, cloud, _, _ := w.pair(b)
	cloud.Limits.MaxPackets = 1 << 62
	sensor.Limits.MaxPackets = 1 << 62
	payload := make([]byte, 64)
	const batch = 1024
	pkts := make([][]byte, batch)
	dst := make([]byte, 0, 128)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i%batch == 0 {
			b.StopTimer()
			for j := range pkts {
				pkts[j], _, _ = sensor.Seal(pkts[j][:0], payload, t0)
			}
			b.StartTimer()
		}
		if _, _, err := cloud.Open(dst[:0], pkts[i%batch], t0); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkReplayCheck(b *testing.B) {
	var w radio.ReplayWindow
	for c := range uint64(3000) {
		_ = w.Update(c)
	}
	b.ReportAllocs()
	var c uint64 = 3000
	for b.Loop() {
		_ = w.Check(c - 1000)
		if err := w.Update(c); err != nil {
			b.Fatal(err)
		}
		c++
	}
}
