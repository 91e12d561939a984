package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
)

// pushMessage is the Pub/Sub message inside the CloudEvent that
// functions-framework-go makes of a push delivery.
type pushMessage struct {
	Message struct {
		Data       []byte            `json:"data"`
		Attributes map[string]string `json:"attributes"`
		MessageID  string            `json:"messageId"`
	} `json:"message"`
	Subscription string `json:"subscription"`
}

// rejection is a message that can never succeed: it is logged with its
// reason (which log-based metrics count) and acknowledged, so it is not
// redelivered. Every other error is returned and Pub/Sub retries it, then
// dead-letters it.
type rejection struct {
	reason string
	err    error
}

func (r *rejection) Error() string { return r.reason + ": " + r.err.Error() }
func (r *rejection) Unwrap() error { return r.err }

func reject(reason string, err error) error { return &rejection{reason: reason, err: err} }

// Handle is the CloudEvent entry point. It routes by the topic the message
// came from: connector status, or uplinks.
func (s *Service) Handle(ctx context.Context, e event.Event) error {
	var m pushMessage
	if err := json.Unmarshal(e.Data(), &m); err != nil {
		s.log.Warn("uplink rejected", "rejected", "malformed-event", "error", err.Error(), "eventId", e.ID())
		return nil
	}
	topic := e.Source()[strings.LastIndex(e.Source(), "/")+1:]
	var err error
	if topic == s.cfg.StatusTopic {
		err = s.handleStatus(ctx, m.Message.Data)
	} else {
		err = s.handleUplink(ctx, m.Message.Data)
	}
	var rej *rejection
	if errors.As(err, &rej) {
		s.log.Warn("message rejected", "rejected", rej.reason, "error", rej.err.Error(), "messageId", m.Message.MessageID, "topic", topic)
		return nil
	}
	if err != nil {
		s.log.Error("message failed; Pub/Sub will redeliver", "error", err.Error(), "messageId", m.Message.MessageID, "topic", topic)
		return fmt.Errorf("ingest: %w", err)
	}
	return nil
}
