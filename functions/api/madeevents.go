package api

import (
	"context"
	"encoding/json"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/store"
)

// EventPublisher publishes on the events topic; *pubsub.Publisher is one.
type EventPublisher interface {
	Publish(ctx context.Context, msg *pubsub.Message) *pubsub.PublishResult
}

// madeEvent is an event the API makes (a configuration's REQUESTED, a
// labelsChanged, an emulated device's): the store writes it in the
// transaction of the change it records, and its JSON is kept to publish
// after the commit.
type madeEvent struct {
	project, device string
	retention       time.Duration
	json            []byte
}

// doc is ev as the store keeps it, expiring after the project's
// retention from at.
func (m *madeEvent) doc(ev event.Event, at time.Time) (string, store.Event, error) {
	js, err := json.Marshal(ev)
	if err != nil {
		return "", store.Event{}, err
	}
	m.json = js
	return ev.EventID, store.Event{ProjectID: m.project, DeviceID: m.device, EventType: ev.EventType,
		Timestamp: ev.Timestamp, JSON: js, ExpireAt: at.Add(m.retention)}, nil
}

// publishTimeout bounds the publish of an event the API made.
const publishTimeout = 10 * time.Second

// publish sends a stored event to the events topic, for webhooks. A
// failed publish is logged, not returned: the event is stored, and the
// stream, which reads stored events, has it.
func (s *Service) publish(ctx context.Context, m *madeEvent) {
	if s.deps.Events == nil || m.json == nil {
		return
	}
	// The event is stored: its publish is not cut short by a caller who
	// hangs up now.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	data, err := event.EncodeMessage([][]byte{m.json})
	if err == nil {
		_, err = s.deps.Events.Publish(ctx, &pubsub.Message{Data: data, Attributes: map[string]string{"projectId": m.project, "deviceId": m.device}}).Get(ctx)
	}
	if err != nil {
		s.log.Error("event not published; webhooks miss it", "projectId", m.project, "deviceId", m.device, "error", err.Error())
	}
}
