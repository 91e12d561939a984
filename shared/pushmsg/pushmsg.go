// Package pushmsg reads the Pub/Sub message that functions-framework-go
// wraps in a CloudEvent when a push subscription delivers it.
package pushmsg

import (
	"encoding/json"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Message is the pushed Pub/Sub message.
type Message struct {
	Data       []byte            `json:"data"`
	Attributes map[string]string `json:"attributes"`
	MessageID  string            `json:"messageId"`
}

// Decode reads e's message and the topic it came from (the last part of
// the CloudEvent's source, which the push URL's path names).
func Decode(e event.Event) (Message, string, error) {
	var m struct {
		Message Message `json:"message"`
	}
	if err := json.Unmarshal(e.Data(), &m); err != nil {
		return Message{}, "", err
	}
	return m.Message, e.Source()[strings.LastIndex(e.Source(), "/")+1:], nil
}
