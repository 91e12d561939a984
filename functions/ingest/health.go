package ingest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/anomaly"
	"github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/store"
)

// Fleet health rides in the transactions ingest runs anyway: a packet's
// updates what its readings show (silence deadline, sequence, battery)
// and, knowing every connector that heard it, checks where the device
// is; a handshake's counts handshakes, and its reply's checks where. Each has
// read the device, so it opens and clears anomalies on exact state, and
// its deviceAnomaly events commit with it. The sweep looks only at the
// devices whose review time passed: silence, and a handshake flood whose
// window went quiet.

// healthStep is what one transaction changes of a device's health: the
// change to store, and the events of the anomalies it opened or cleared.
type healthStep struct {
	change  *store.HealthChange
	events  []storedEvent
	changes []anomaly.Change
}

// health returns a device's stored health, with a map of open anomalies
// the caller may change.
func health(d store.Device) (anomaly.Health, store.DeviceHealth) {
	var stored store.DeviceHealth
	if d.Health != nil {
		stored = *d.Health
	}
	h := stored.Health
	h.Open = maps.Clone(h.Open)
	if h.Open == nil {
		h.Open = map[anomaly.Kind]anomaly.Open{}
	}
	return h, stored
}

// packetHealth observes a stored packet's new readings, and checks who
// heard it, and how well, against where the device has been.
func (s *Service) packetHealth(d store.Device, deviceID string, ul payload.Uplink, heard []store.Hearer, now time.Time) (healthStep, error) {
	h, was := health(d)
	p := anomaly.Packet{At: now, Epoch: ul.Epoch, DeviceType: d.Type, Interval: packetInterval(d.Configuration)}
	for _, r := range ul.Readings {
		// A resent battery level is still a level (the detector ignores
		// one older than its reference); a resent reading's number says
		// nothing about the counter now.
		if r.Kind == payload.Battery && r.Percentage != nil {
			p.Battery = append(p.Battery, anomaly.BatteryReading{Percentage: int(*r.Percentage), At: time.UnixMilli(r.Time)})
		}
		if !r.Backfilled {
			p.Seqs = append(p.Seqs, r.Seq)
		}
	}
	var traffic, location []anomaly.Change
	h.Traffic, traffic = anomaly.ObservePacket(h.Traffic, h.Open, p, s.anomaly)
	h.Location, location = anomaly.ObserveReception(h.Location, h.Open, hearersOf(heard), now, s.anomaly)
	step, err := s.healthChanges(d.ProjectID, deviceID, &h, was.ReviewAt, append(traffic, location...), now)
	step.change.Traffic, step.change.Location, step.change.Heard = &h.Traffic, &h.Location, !was.Heard
	return step, err
}

// handshakeHealth counts an accepted handshake.
func (s *Service) handshakeHealth(d store.Device, deviceID string, now time.Time) (healthStep, error) {
	h, was := health(d)
	var ch []anomaly.Change
	h.Handshakes, ch = anomaly.ObserveHandshake(h.Handshakes, h.Open, now, s.anomaly)
	step, err := s.healthChanges(d.ProjectID, deviceID, &h, was.ReviewAt, ch, now)
	step.change.Handshakes = &h.Handshakes
	return step, err
}

// receptionHealth checks who heard a handshake, and how well, against
// where the device has been.
func (s *Service) receptionHealth(d store.Device, deviceID string, heard []store.Hearer, now time.Time) (healthStep, error) {
	h, was := health(d)
	var ch []anomaly.Change
	h.Location, ch = anomaly.ObserveReception(h.Location, h.Open, hearersOf(heard), now, s.anomaly)
	step, err := s.healthChanges(d.ProjectID, deviceID, &h, was.ReviewAt, ch, now)
	step.change.Location = &h.Location
	return step, err
}

func hearersOf(heard []store.Hearer) []anomaly.Hearer {
	hs := make([]anomaly.Hearer, len(heard))
	for i, x := range heard {
		hs[i] = anomaly.Hearer{ConnectorID: x.ConnectorID, RSSI: x.RSSI}
	}
	return hs
}

// healthChanges folds ch into h and makes the store change and the
// events. The review time, was before, is rewritten only when it moved.
func (s *Service) healthChanges(project, deviceID string, h *anomaly.Health, was time.Time, ch []anomaly.Change, now time.Time) (healthStep, error) {
	step := healthStep{change: &store.HealthChange{}, changes: ch}
	if len(ch) > 0 {
		if h.Open = anomaly.Apply(h.Open, ch); h.Open == nil {
			h.Open = map[anomaly.Kind]anomaly.Open{} // written empty: nothing open
		}
		step.change.Open = h.Open
	}
	if review := anomaly.ReviewAt(*h, s.anomaly); !review.Equal(was) {
		step.change.ReviewAt = &review
	}
	if project == "" {
		return step, nil // an unclaimed device's events belong to no customer yet
	}
	for _, c := range ch {
		state := event.AnomalyOpen
		if !c.Opened {
			state = event.AnomalyCleared
		}
		se, err := s.stored(event.DeviceAnomalyFor(project, deviceID, string(c.Kind), state, c.Severity, c.Evidence, c.Since, c.At), project, deviceID, now)
		if err != nil {
			return step, fmt.Errorf("deviceAnomaly of %s: %w", deviceID, err)
		}
		step.events = append(step.events, se)
	}
	return step, nil
}

// storeEvents creates the step's events in tx.
func (step healthStep) storeEvents(tx *firestore.Transaction, db *store.DB) error {
	for _, e := range step.events {
		if err := db.CreateEvent(tx, e.id, e.doc); err != nil {
			return err
		}
	}
	return nil
}

// logAnomalies logs each change once its transaction committed; the
// fleet-wide alerts count the openings.
func (s *Service) logAnomalies(deviceID string, ch []anomaly.Change) {
	for _, c := range ch {
		if c.Opened {
			s.log.Warn("device anomaly", "metric", "device-anomaly", "anomalyKind", string(c.Kind),
				"severity", c.Severity, "deviceId", deviceID, "evidence", c.Evidence)
			continue
		}
		s.log.Info("device anomaly cleared", "anomalyKind", string(c.Kind), "deviceId", deviceID)
	}
}

// packetInterval is the time between a device's packets its confirmed
// configuration implies: a batch of samples, or the report interval if
// that is shorter. Zero when unknown: detection then uses the gap it
// learnt.
func packetInterval(cs *store.ConfigState) time.Duration {
	if cs == nil || cs.ReportedVersion == 0 || cs.Reported.SampleInterval == 0 {
		return 0
	}
	every := time.Duration(cs.Reported.SampleInterval) * time.Second * time.Duration(max(1, cs.Reported.Batch))
	if r := time.Duration(cs.Reported.ReportInterval) * time.Second; r > 0 && r < every {
		return r
	}
	return every
}

// reviewHealth is the sweep's part: it looks at the devices whose review
// time passed (silent ones, mostly) and returns how many anomalies it
// opened or cleared. It reads only those devices.
func (s *Service) reviewHealth(ctx context.Context) (int, error) {
	ids, err := s.db.DevicesToReview(ctx, s.deps.Now(), reviewBatch)
	if err != nil {
		return 0, err
	}
	// One device failing does not hold the others up.
	n, errs := 0, []error(nil)
	for _, id := range ids {
		c, err := s.reviewDevice(ctx, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n += c
	}
	return n, errors.Join(errs...)
}

// reviewBatch bounds the devices one sweep reviews; the rest wait a
// minute for the next.
const reviewBatch = 500

func (s *Service) reviewDevice(ctx context.Context, id string) (int, error) {
	var step healthStep
	var project string
	s.n.commits.Add(1)
	err := s.db.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		now := s.deps.Now()
		d, err := s.db.DeviceIn(tx, id)
		if err != nil {
			return err
		}
		h, was := health(d)
		project = d.ProjectID
		if step, err = s.healthChanges(d.ProjectID, id, &h, was.ReviewAt, anomaly.Review(h, now, s.anomaly), now); err != nil {
			return err
		}
		if err := step.storeEvents(tx, s.db); err != nil {
			return err
		}
		return s.db.UpdateDevice(tx, id, store.DeviceChange{Health: step.change})
	})
	if err != nil {
		return 0, fmt.Errorf("health review of %s: %w", id, err)
	}
	s.logAnomalies(id, step.changes)
	return len(step.changes), s.publishEvents(ctx, project, id, jsonOf(step.events))
}
