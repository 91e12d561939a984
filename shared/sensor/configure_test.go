package sensor_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/devconfig"
	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/sensor"
)

// exchange records n readings, sends what the sensor sends at now, lets
// the cloud answer and the sensor hear the answer; it returns the
// configuration report the packet carried.
func exchange(t *testing.T, s *sensor.Sensor, c *cloud, n int, now time.Time) *payload.ConfigReport {
	t.Helper()
	for i := range n {
		s.Record(temp(float64(20 + i)))
	}
	pkt, err := s.Next(now)
	if err != nil || pkt == nil {
		t.Fatalf("after %d readings at %v: no packet (%v)", n, now, err)
	}
	reply, _ := c.handle(pkt, now)
	if _, err := s.Receive(reply, now); err != nil {
		t.Fatal(err)
	}
	return c.reports[len(c.reports)-1]
}

func report(r *payload.ConfigReport) string {
	if r == nil {
		return "none"
	}
	return fmt.Sprintf("{version %d, reason %v}", r.Version, devconfig.Reason(r.Reason))
}

// TestConfigurationChangesTheSensor: a configuration in a reply changes
// the batch the sensor sends, the next uplink reports its version, a
// refused one is reported with its reason while the sensor keeps what it
// runs, an older one changes nothing, and a restarted sensor resumes it.
func TestConfigurationChangesTheSensor(t *testing.T) {
	t.Parallel()
	s, c, creds := newPairWith(t, sensor.Config{}, credentials.Sensor{DeviceType: "temperature"})
	connect(t, s, c, t0)
	c.config = &payload.Config{Version: 3, SampleInterval: 60, ReportInterval: 300, Batch: 3}
	if got := exchange(t, s, c, 1, t0); got != nil {
		t.Fatalf("a sensor that never got a configuration reported %s", report(got))
	}
	if cfg, v := s.Configuration(); v != 3 || cfg != (devconfig.Config{SampleInterval: 60, ReportInterval: 300, Batch: 3}) || s.Batch() != 3 {
		t.Fatalf("after version 3: runs %+v version %d, batch %d; want 60/300/3 version 3, batch 3", cfg, v, s.Batch())
	}
	s.Record(temp(1))
	s.Record(temp(2))
	if pkt, _ := s.Next(t0.Add(time.Second)); pkt != nil {
		t.Fatal("sent 2 readings with a configured batch of 3")
	}
	if got := exchange(t, s, c, 1, t0.Add(time.Second)); got == nil || *got != (payload.ConfigReport{Version: 3}) {
		t.Fatalf("the uplink after version 3 reported %s; want {version 3, reason APPLIED}", report(got))
	}

	c.config = &payload.Config{Version: 4, Batch: 40}
	_ = exchange(t, s, c, 3, t0.Add(2*time.Second))
	want := payload.ConfigReport{Version: 4, Reason: uint8(devconfig.OutOfRange)}
	if got := exchange(t, s, c, 3, t0.Add(3*time.Second)); got == nil || *got != want {
		t.Fatalf("after refusing version 4: reported %s; want %s", report(got), report(&want))
	}
	c.config = &payload.Config{Version: 2, Batch: 1}
	_ = exchange(t, s, c, 3, t0.Add(4*time.Second))
	if got := exchange(t, s, c, 3, t0.Add(5*time.Second)); got == nil || *got != want || s.Batch() != 3 {
		t.Fatalf("after an older version: reported %s, batch %d; want %s, batch 3", report(got), s.Batch(), report(&want))
	}

	// A restart from the saved configuration resumes it.
	settings, version := s.Configuration()
	creds.Configuration = &credentials.Configuration{Version: version, Settings: settings}
	restarted, err := sensor.New(creds, 200, sensor.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c.config = nil
	connect(t, restarted, c, t0.Add(6*time.Second))
	if got := exchange(t, restarted, c, 3, t0.Add(6*time.Second)); got == nil || *got != (payload.ConfigReport{Version: 3}) || restarted.Batch() != 3 {
		t.Fatalf("restarted sensor reported %s with batch %d; want {version 3, reason APPLIED}, batch 3", report(got), restarted.Batch())
	}
}

// TestVersionlessConfigKeepsWorking: a reply from a cloud before versions
// (a report interval, a cloud key, no version) is applied as before and
// starts no configuration report.
func TestVersionlessConfigKeepsWorking(t *testing.T) {
	t.Parallel()
	s, c, _ := newPairWith(t, sensor.Config{}, credentials.Sensor{DeviceType: "temperature"})
	connect(t, s, c, t0)
	_ = exchange(t, s, c, 1, t0)
	if got := exchange(t, s, c, 1, t0.Add(time.Second)); got != nil || s.Config().ReportInterval != 120 {
		t.Fatalf("reported %s, report interval %d; want none, 120", report(got), s.Config().ReportInterval)
	}
	if _, v := s.Configuration(); v != 0 {
		t.Fatalf("a versionless reply set version %d", v)
	}
}

func TestNewRefusesAnOutOfRangeSavedConfiguration(t *testing.T) {
	t.Parallel()
	_, _, creds := newPairWith(t, sensor.Config{}, credentials.Sensor{DeviceType: "touch"})
	creds.Configuration = &credentials.Configuration{Version: 2, Settings: devconfig.Config{Batch: 5}}
	if _, err := sensor.New(creds, 1, sensor.Config{}); err == nil {
		t.Fatal("a touch sensor started with a saved batch of 5 (its maximum is 1)")
	}
}
