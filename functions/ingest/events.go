package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"cloud.google.com/go/pubsub/v2"

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

func (s *Service) readingEvents(project, deviceID string, readings []payload.Reading, now time.Time) ([]storedEvent, error) {
	out := make([]storedEvent, 0, len(readings))
	for _, r := range readings {
		ev, err := event.FromReading(project, deviceID, r)
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
			Timestamp: ev.Timestamp, JSON: js, ExpireAt: now.Add(s.cfg.Retention),
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
