package simulator

import (
	"fmt"

	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/sensor"
)

// StopSensor switches a sensor off: it takes no readings, sends nothing
// and hears nothing until RestartSensor.
func (s *Simulator) StopSensor(deviceID string) error {
	ss, err := s.lookup(deviceID)
	if err != nil {
		return err
	}
	ss.stopped.Store(true)
	return nil
}

// ResumeSensor switches a sensor stopped by StopSensor back on as it was,
// with its session and backlog: a sensor carried out of every
// connector's range and back.
func (s *Simulator) ResumeSensor(deviceID string) error {
	ss, err := s.lookup(deviceID)
	if err != nil {
		return err
	}
	ss.stopped.Store(false)
	select {
	case ss.kick <- struct{}{}:
	default:
	}
	return nil
}

// RestartSensor reboots a sensor, stopped or not, as a power cycle does:
// it is rebuilt from its credentials, the device configuration it ran and
// the software version it runs (saved in them, as a real sensor keeps them
// in flash), its reading numbers go on where they stopped, and it starts
// with a new handshake. What it held in memory is gone, a download under
// way too (it resumes from the start once the cloud offers the release
// again): it returns how many readings were not yet acknowledged and are
// lost.
func (s *Simulator) RestartSensor(deviceID string) (lost int, err error) {
	ss, err := s.lookup(deviceID)
	if err != nil {
		return 0, err
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	old := ss.dev.Load()
	settings, version := old.Configuration()
	creds := ss.Credentials
	if version != 0 {
		creds.Configuration = &credentials.Configuration{Version: version, Settings: settings}
	}
	creds.SoftwareVersion = old.SoftwareVersion()
	st := old.Stats()
	dev, err := sensor.New(creds, old.NextSeq(), s.cfg.Sensor)
	if err != nil {
		return 0, fmt.Errorf("simulator: restart %s: %w", deviceID, err)
	}
	ss.dev.Store(dev)
	ss.stopped.Store(false)
	select {
	case ss.kick <- struct{}{}:
	default:
	}
	return st.Backlog, nil
}
