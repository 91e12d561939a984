package local_test

import (
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/emulators/local"
	"github.com/sealedsense/sealedsense/emulators/local/localtest"
	"github.com/sealedsense/sealedsense/shared/sensor"
	"github.com/sealedsense/sealedsense/shared/store"
)

// BenchmarkSensorUpdate64KiB measures how long a sensor at the default
// reporting interval (a reading every 15 minutes) takes to fetch and
// install a 64 KiB release (128 chunks of 512 bytes), from the reply that
// offered the manifest to the INSTALLED report, against the floor the
// sensor's own pacing sets (one pull every sensor.DefaultPullInterval per chunk).
// The wait for that first reply, up to one reporting interval, comes on
// top. The INSTALLED report goes out at once after the boot.
//
//	go test ./emulators/local -run '^$' -bench SensorUpdate64KiB -benchtime 1x
func BenchmarkSensorUpdate64KiB(b *testing.B) {
	d := localtest.Start(b, local.Config{Sensors: 1, Connectors: 1, SensorTypes: []string{"temperature"}, Interval: 15 * time.Minute, SweepEvery: 2 * time.Second})
	dev := d.Devices()[0]
	const size = 64 << 10
	chunks := size / 512
	floor := time.Duration(chunks) * sensor.DefaultPullInterval
	for i := 0; i < b.N; i++ {
		rel := provisionRelease(b, d, "temperature", 2+i, testImage(size))
		startRollout(b, d, rel.ID, "100")
		localtest.WaitUntil(b, time.Minute, "the release assigned", func() (bool, string) {
			sw := softwareOf(b, d, dev)
			return sw.Release == rel.ID, sw.Status
		})
		// The sensor's first reading comes at a random moment of its
		// interval (up to 15 minutes after the start); the clock starts
		// when the cloud sees it fetching.
		var began, booted time.Time
		localtest.WaitUntil(b, 15*time.Minute+4*floor, "the release installed", func() (bool, string) {
			sw := softwareOf(b, d, dev)
			if began.IsZero() && sw.Status == store.SoftwareDownloading {
				began = time.Now()
			}
			if v, _ := d.Sim.SoftwareVersion(dev); booted.IsZero() && v == uint32(2+i) {
				booted = time.Now()
			}
			return sw.Status == store.SoftwareInstalled, sw.Status
		})
		took, told := time.Since(began), time.Since(booted)
		b.ReportMetric(took.Seconds(), "s/update")
		b.ReportMetric(took.Seconds()/floor.Seconds(), "x-pacing-floor")
		b.ReportMetric(told.Seconds(), "s-boot-to-cloud")
		b.Logf("64 KiB (%d chunks) installed in %v (%.2f× the sensor's own pacing, %v); the cloud knew %v after the boot", chunks, took.Round(time.Second),
			took.Seconds()/floor.Seconds(), floor, told.Round(100*time.Millisecond))
	}
}
