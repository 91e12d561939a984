// Package pushmsg reads the Pub/Sub message that functions-framework-go
// wraps in a CloudEvent when a push subscription delivers it.
package pushmsg

import (
	"encoding/json"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/sealedsense/sealedsense/shared/usage"
)

// Message is the pushed Pub/Sub message.
type Message struct {
	Data       []byte            `json:"data"`
	Attributes map[string]string `json:"attributes"`
	MessageID  string            `json:"messageId"`
}

// Decode reads e's message and the topic it came from (the last part of
// the CloudEvent's source, which the push URL's path names). It counts the
// delivery (shared/usage) at the size Pub/Sub bills.
func Decode(e event.Event) (Message, string, error) {
	var m struct {
		Message Message `json:"message"`
	}
	if err := json.Unmarshal(e.Data(), &m); err != nil {
		return Message{}, "", err
	}
	topic := e.Source()[strings.LastIndex(e.Source(), "/")+1:]
	usage.Pushed(topic, m.Message.size())
	return m.Message, topic, nil
}

// size is the message's data and attributes.
func (m Message) size() int {
	n := len(m.Data)
	for k, v := range m.Attributes {
		n += len(k) + len(v)
	}
	return n
}
