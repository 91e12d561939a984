package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/sealedsense/sealedsense/shared/devicetype"
	"github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/store"
)

// storedEvent is an event ready to write and publish.
type storedEvent struct {
	id         string
	doc        store.Event
	data       map[string]any // the inner data object, for the device's reported state
	backfilled bool
}

// readingEvents makes the events of a packet's readings, which
// screenReadings has checked, sent in the given boot epoch.
func (s *Service) readingEvents(project, deviceID string, epoch uint32, readings []payload.Reading, now time.Time) ([]storedEvent, error) {
	out := make([]storedEvent, 0, len(readings))
	for _, r := range readings {
		ev, err := event.FromEpochReading(project, deviceID, epoch, r)
		if err != nil {
			return nil, err
		}
		se, err := s.stored(ev, project, deviceID, now)
		if err != nil {
			return nil, err
		}
		se.backfilled = r.Backfilled
		out = append(out, se)
	}
	return out, nil
}

// Bounds of a plausible reading time. No SealedSense sensor measured
// anything before readingFloor, and a sensor's clock may run ahead of the
// cloud's by maxSensorSkew at most: a reading from further ahead would, once
// stored, stay the device's newest and hide its real readings until the
// clock caught up. Both bounds lie well inside Firestore's timestamp range
// (years 1 to 9999), which a reading outside them could leave.
var readingFloor = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

const maxSensorSkew = 10 * time.Minute

// badReading is a reading refused on its own: its packet's other readings
// are stored, and the packet is acknowledged, so that the sensor stops
// resending it.
type badReading struct {
	seq    uint64
	reason string // invalid-reading, time-before-floor, time-in-future
	err    error  // never quotes the reading's values
}

// checkReading says why a decoded reading cannot be stored, or returns
// nil: its fields and value ranges (finite numbers only), then its time
// and its samples' times against the plausible bounds around now, the
// cloud's clock.
func checkReading(r payload.Reading, now time.Time) *badReading {
	refuse := func(reason string, err error) *badReading { return &badReading{seq: r.Seq, reason: reason, err: err} }
	if err := r.Validate(); err != nil {
		return refuse("invalid-reading", err)
	}
	check := func(what string, ms int64) *badReading {
		at := time.UnixMilli(ms)
		switch {
		case at.Before(readingFloor):
			return refuse("time-before-floor", fmt.Errorf("%s before %s", what, readingFloor.Format(time.DateOnly)))
		case at.After(now.Add(maxSensorSkew)):
			return refuse("time-in-future", fmt.Errorf("%s more than %v after the cloud's clock", what, maxSensorSkew))
		}
		return nil
	}
	if bad := check("time", r.Time); bad != nil {
		return bad
	}
	for _, smp := range r.Samples {
		if bad := check("sample time", smp.Time); bad != nil {
			return bad
		}
	}
	return nil
}

// screenReadings splits a decoded uplink's readings into those to store
// and those refused alone: the ones that did not decode or validate
// (refused), and the ones checkReading refuses.
func screenReadings(ul payload.Uplink, refused []payload.Refusal, now time.Time) ([]payload.Reading, []badReading) {
	var bad []badReading
	for _, r := range refused {
		bad = append(bad, badReading{seq: r.Seq, reason: "invalid-reading", err: r.Err})
	}
	good := make([]payload.Reading, 0, len(ul.Readings))
	for _, r := range ul.Readings {
		if b := checkReading(r, now); b != nil {
			bad = append(bad, *b)
			continue
		}
		good = append(good, r)
	}
	return good, bad
}

// ofDeviceType splits readings into those of a kind the device's type
// measures and the others, each refused alone: a reading no sensor of
// the type takes (a temperature sensor's motion) says the sensor, or its
// keys, are not what the registry made, and is never stored as its data.
func ofDeviceType(readings []payload.Reading, deviceType string) ([]payload.Reading, []badReading) {
	var bad []badReading
	kept := readings[:0:0]
	for _, r := range readings {
		if r.Kind != payload.Battery && !devicetype.Emits(deviceType, r.Kind.EventType()) {
			bad = append(bad, badReading{seq: r.Seq, reason: "kind-not-of-device-type",
				err: fmt.Errorf("a %s device takes no %s readings", deviceType, r.Kind.EventType())})
			continue
		}
		kept = append(kept, r)
	}
	return kept, bad
}

func (s *Service) stored(ev event.Event, project, deviceID string, now time.Time) (storedEvent, error) {
	js, err := json.Marshal(ev)
	if err != nil {
		return storedEvent{}, err
	}
	var data map[string]map[string]any
	if err := json.Unmarshal(ev.Data, &data); err != nil {
		return storedEvent{}, err
	}
	return storedEvent{
		id:   ev.EventID,
		data: data[ev.EventType],
		doc: store.Event{
			ProjectID: project, DeviceID: deviceID, EventType: ev.EventType,
			Timestamp: ev.Timestamp, JSON: js, ExpireAt: now.Add(s.retentions.of(project)),
		},
	}, nil
}

func jsonOf(events []storedEvent) [][]byte {
	out := make([][]byte, len(events))
	for i, e := range events {
		out[i] = e.doc.JSON
	}
	return out
}

func (s *Service) publishEvents(ctx context.Context, project, deviceID string, events [][]byte) error {
	if project == "" {
		return nil // an unclaimed device's events belong to no customer yet
	}
	// A packet's events go out as one message: every subscriber of the
	// topic is a push, and one request per packet rather than per reading
	// keeps their work, and the Pub/Sub emulator's, per packet.
	var results []*pubsub.PublishResult
	for chunk := range slices.Chunk(events, event.MaxPerMessage) {
		data, err := event.EncodeMessage(chunk)
		if err != nil {
			return err
		}
		results = append(results, s.deps.Events.Publish(ctx, &pubsub.Message{Data: data, Attributes: map[string]string{"projectId": project, "deviceId": deviceID}}))
	}
	for _, r := range results {
		if _, err := r.Get(ctx); err != nil {
			return fmt.Errorf("publish event: %w", err)
		}
	}
	return nil
}
