package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// MaxPerMessage bounds the events of one Pub/Sub message on the events
// topic, far below Pub/Sub's 10 MB.
const MaxPerMessage = 100

// EncodeMessage is the data of one events-topic message: a JSON array of
// events of one device. One message per packet rather than per event keeps
// the topic's subscribers (each a push) to one request per packet.
func EncodeMessage(events [][]byte) ([]byte, error) {
	if len(events) == 0 || len(events) > MaxPerMessage {
		return nil, fmt.Errorf("event: %d events in a message, want 1 to %d", len(events), MaxPerMessage)
	}
	raw := make([]json.RawMessage, len(events))
	for i, e := range events {
		raw[i] = e
	}
	return json.Marshal(raw)
}

// SplitMessage returns the events of an events-topic message: a JSON
// array, or one event object as earlier publishers sent it. Each element
// is still to be parsed.
func SplitMessage(data []byte) ([]json.RawMessage, error) {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '{' {
		if !json.Valid(data) {
			return nil, errors.New("event: message is not JSON")
		}
		return []json.RawMessage{data}, nil
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("event: message is neither an event nor an array of events: %w", err)
	}
	if len(raw) == 0 || len(raw) > MaxPerMessage {
		return nil, fmt.Errorf("event: %d events in a message, want 1 to %d", len(raw), MaxPerMessage)
	}
	return raw, nil
}
