package simulator

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/sealedsense/sealedsense/shared/sensor"
)

// Fault injection: each of these changes one sensor while the world runs,
// for tests of what the cloud makes of a sensor that misbehaves.

// lookup is find, with the error every injection returns for an unknown
// sensor.
func (s *Simulator) lookup(deviceID string) (*simSensor, error) {
	if ss := s.find(deviceID); ss != nil {
		return ss, nil
	}
	return nil, fmt.Errorf("simulator: no sensor %q", deviceID)
}

// MoveSensor carries a sensor to a new position: from its next packet on,
// the connectors that hear it, and their RSSI, are those of the new
// position. Moving it back restores the old ones.
func (s *Simulator) MoveSensor(deviceID string, to Point) error {
	ss, err := s.lookup(deviceID)
	if err != nil {
		return err
	}
	ss.where.Store(s.place(to))
	return nil
}

// DrainBattery makes a sensor's battery fall by pointsPerMinute points
// each minute of real time, whatever TimeScale, from where it is now, in
// place of the normal drain (BatteryDrainPerDay): a failing battery or a
// sensor stuck transmitting. 0 stops the fall where it is. It empties at
// 0, and the sensor goes on working.
func (s *Simulator) DrainBattery(deviceID string, pointsPerMinute float64) error {
	ss, err := s.lookup(deviceID)
	if err != nil {
		return err
	}
	if pointsPerMinute < 0 || math.IsNaN(pointsPerMinute) || math.IsInf(pointsPerMinute, 0) {
		return fmt.Errorf("simulator: battery drain of %v points a minute: want 0 or more", pointsPerMinute)
	}
	ss.battery.drain(time.Now(), pointsPerMinute/60)
	return nil
}

// ReplaceBattery puts a full battery in a sensor: 100 points, draining at
// the normal rate.
func (s *Simulator) ReplaceBattery(deviceID string) error {
	ss, err := s.lookup(deviceID)
	if err != nil {
		return err
	}
	ss.battery.set(time.Now(), 100, s.normalDrain())
	return nil
}

// JumpSequence moves the numbers of a sensor's next readings by delta:
// ahead leaves a gap; back repeats numbers the sensor already used,
// without a new boot epoch, as a faulty counter or a clone restored from
// an old copy would. Readings already taken keep their numbers, and a
// restart goes on from the moved numbering.
func (s *Simulator) JumpSequence(deviceID string, delta int64) error {
	ss, err := s.lookup(deviceID)
	if err != nil {
		return err
	}
	// Under mu, so that a restart does not fall between.
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.dev.Load().SkipSequence(delta)
	return nil
}

// Clone puts a copy of a sensor on the air where the sensor stands now:
// a device made from the same credentials, as one with a cloned key would
// be, that starts a fresh handshake at once and then every `every`. Its
// initiations are valid, each with a newer timestamp than the last, and
// go to the connectors in range like any packet (Stats.Cloned counts
// them); the clone takes no readings and hears nothing. The original
// keeps running. stop takes the clone off the air and returns once it is;
// a clone stops too when Run returns.
func (s *Simulator) Clone(deviceID string, every time.Duration) (stop func(), err error) {
	ss, err := s.lookup(deviceID)
	if err != nil {
		return nil, err
	}
	if every <= 0 {
		return nil, errors.New("simulator: a clone's handshakes need a positive interval")
	}
	// The key copied is the one the sensor holds now: after a cloud key
	// rotation, the newer cloud key too.
	creds := ss.Credentials
	creds.CloudPublic = ss.dev.Load().CloudPublic()
	dev, err := sensor.New(creds, 1, s.cfg.Sensor)
	if err != nil {
		return nil, fmt.Errorf("simulator: clone %s: %w", deviceID, err)
	}
	rng := rand.New(rand.NewPCG(s.cfg.Seed, 1<<32+s.clones.Add(1)))
	pl := ss.where.Load()
	quit, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		s.runClone(dev, pl, rng, every, quit)
	}()
	s.log.Info("sensor cloned", "deviceId", deviceID, "every", every)
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		<-ended
	}, nil
}

func (s *Simulator) runClone(dev *sensor.Sensor, pl *placement, rng *rand.Rand, every time.Duration, quit <-chan struct{}) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if pkt, err := dev.Initiate(time.Now()); err != nil {
			s.log.Warn("clone could not start a handshake", "deviceId", dev.DeviceID(), "error", err.Error())
		} else {
			s.cloned.Add(1)
			s.broadcast(pkt, pl, rng)
		}
		select {
		case <-quit:
			return
		case <-s.done:
			return
		case <-tick.C:
		}
	}
}
