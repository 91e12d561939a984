package dataconnector

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Event is what delivery needs of a stored event.
type Event struct {
	ID, Type, Project, Device string
	JSON                      []byte // as stored; nil when it must be read
}

// ParseEvent reads an event as ingest publishes it. The attributes must
// name the same project and device as the event's targetName: a message
// that disagrees with itself is refused rather than sent to either.
func ParseEvent(data []byte, attrs map[string]string) (Event, error) {
	var w struct {
		EventID    string `json:"eventId"`
		TargetName string `json:"targetName"`
		EventType  string `json:"eventType"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return Event{}, fmt.Errorf("event is not JSON: %w", err)
	}
	parts := strings.Split(w.TargetName, "/")
	if len(parts) != 4 || parts[0] != "projects" || parts[2] != "devices" || parts[1] == "" || parts[3] == "" {
		return Event{}, errors.New("event has no device targetName")
	}
	if w.EventID == "" || w.EventType == "" || strings.Contains(w.EventID, "/") {
		return Event{}, errors.New("event has no usable eventId or eventType")
	}
	if attrs["projectId"] != parts[1] || attrs["deviceId"] != parts[3] {
		return Event{}, errors.New("attributes and targetName disagree")
	}
	return Event{ID: w.EventID, Type: w.EventType, Project: parts[1], Device: parts[3], JSON: data}, nil
}
