package pushmsg

import (
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
)

func pushed(t testing.TB, data []byte) event.Event {
	e := event.New()
	e.SetID("1")
	e.SetType("google.cloud.pubsub.topic.v1.messagePublished")
	e.SetSource("//pubsub.googleapis.com/projects/p/topics/events")
	if err := e.SetData("application/json", data); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestDecode(t *testing.T) {
	t.Parallel()
	m, topic, err := Decode(pushed(t, []byte(`{"message":{"data":"aGk=","attributes":{"projectId":"p"},"messageId":"7"}}`)))
	if err != nil || string(m.Data) != "hi" || m.Attributes["projectId"] != "p" || m.MessageID != "7" || topic != "events" {
		t.Fatalf("%+v %q %v", m, topic, err)
	}
	for _, bad := range []string{`{"message":{"data":"not base64!"}}`, `[`, `{"message":7}`} {
		if _, _, err := Decode(pushed(t, []byte(bad))); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"message":{"data":"aGk=","attributes":{"a":"b"},"messageId":"1"}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"message":{"data":null}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, _ = Decode(pushed(t, data)) // must not panic
	})
}
