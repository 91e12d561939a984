package sensor

import (
	"fmt"

	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/devconfig"
	"github.com/sealedsense/sealedsense/shared/payload"
)

// running is the device configuration a sensor runs and what it tells the
// cloud about it.
type running struct {
	settings devconfig.Config
	version  uint32
	// report is what every uplink carries once the sensor has received a
	// configuration (nil before): the version it runs, or the one it
	// refused with the reason.
	report *payload.ConfigReport
}

// decide is what a sensor of deviceType running cur does with the
// configuration a reply carries. A version no newer than the one it runs
// changes nothing; a newer one is applied if it passes devconfig.Check
// (its zero settings keep what runs) and refused with the reason if not.
func decide(deviceType string, cur running, c payload.Config) running {
	if c.Version == 0 || c.Version <= cur.version {
		return cur
	}
	want := devconfig.Config{SampleInterval: c.SampleInterval, ReportInterval: c.ReportInterval, Batch: c.Batch, TxPower: c.TxPower}
	if reason, err := devconfig.Check(deviceType, want); err != nil {
		cur.report = &payload.ConfigReport{Version: c.Version, Reason: uint8(reason)}
		return cur
	}
	next := cur.settings
	if want.SampleInterval != 0 {
		next.SampleInterval = want.SampleInterval
	}
	if want.ReportInterval != 0 {
		next.ReportInterval = want.ReportInterval
	}
	if want.Batch != 0 {
		next.Batch = want.Batch
	}
	if want.TxPower != nil {
		// A copy: the reply's decoded value is not the sensor's to keep.
		p := *want.TxPower
		next.TxPower = &p
	}
	return running{settings: next, version: c.Version, report: &payload.ConfigReport{Version: c.Version}}
}

// Configuration is the device configuration the sensor runs and its
// version (0: none yet). Saved as credentials.Sensor.Configuration, it is
// what a restarted sensor resumes.
func (s *Sensor) Configuration() (devconfig.Config, uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.run.settings
	if c.TxPower != nil {
		p := *c.TxPower
		c.TxPower = &p
	}
	return c, s.run.version
}

// ConfigReport is what the sensor's uplinks report about its
// configuration, and false while it has never received one.
func (s *Sensor) ConfigReport() (payload.ConfigReport, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.run.report == nil {
		return payload.ConfigReport{}, false
	}
	return *s.run.report, true
}

// Batch is the readings the sensor now collects before it transmits: the
// configured batch size, else Config.Batch.
func (s *Sensor) Batch() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.batch()
}

func (s *Sensor) batch() int {
	if b := s.run.settings.Batch; b != 0 {
		return int(b)
	}
	return s.cfg.Batch
}

// perPacket bounds the readings in one packet: Config.MaxPerPacket, raised
// to a configured batch larger than its default.
func (s *Sensor) perPacket() int {
	if s.maxSet {
		return s.cfg.MaxPerPacket
	}
	return min(max(s.cfg.MaxPerPacket, s.batch()), payload.MaxReadings)
}

// restore is the configuration saved in a sensor's credentials, checked
// against its type's ranges as a received one is.
func restore(creds credentials.Sensor) (running, error) {
	saved := creds.Configuration
	if saved == nil || saved.Version == 0 {
		return running{}, nil
	}
	if _, err := devconfig.Check(creds.DeviceType, saved.Settings); err != nil {
		return running{}, fmt.Errorf("sensor %s: saved configuration %d: %w", creds.DeviceID, saved.Version, err)
	}
	r := decide(creds.DeviceType, running{}, payload.Config{Version: saved.Version, SampleInterval: saved.Settings.SampleInterval,
		ReportInterval: saved.Settings.ReportInterval, Batch: saved.Settings.Batch, TxPower: saved.Settings.TxPower})
	return r, nil
}
