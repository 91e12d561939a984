package dataconnector

import (
	"testing"
)

func TestParseEvent(t *testing.T) {
	t.Parallel()
	attrs := map[string]string{"projectId": "p1", "deviceId": "d1"}
	good := `{"eventId":"e1","targetName":"projects/p1/devices/d1","eventType":"touch","data":{"touch":{}},"timestamp":"2026-11-25T10:00:00Z"}`
	ev, err := ParseEvent([]byte(good), attrs)
	if err != nil || ev.ID != "e1" || ev.Project != "p1" || ev.Device != "d1" || ev.Type != "touch" || string(ev.JSON) != good {
		t.Fatalf("%+v %v", ev, err)
	}
	for _, tc := range []struct{ name, data string }{
		{"not json", `{"eventId":`},
		{"other project", `{"eventId":"e1","targetName":"projects/p2/devices/d1","eventType":"touch"}`},
		{"other device", `{"eventId":"e1","targetName":"projects/p1/devices/d2","eventType":"touch"}`},
		{"no target", `{"eventId":"e1","eventType":"touch"}`},
		{"nested target", `{"eventId":"e1","targetName":"projects/p1/devices/d1/x","eventType":"touch"}`},
		{"no id", `{"targetName":"projects/p1/devices/d1","eventType":"touch"}`},
		{"slash in id", `{"eventId":"a/b","targetName":"projects/p1/devices/d1","eventType":"touch"}`},
		{"no type", `{"eventId":"e1","targetName":"projects/p1/devices/d1"}`},
	} {
		if _, err := ParseEvent([]byte(tc.data), attrs); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

func FuzzParseEvent(f *testing.F) {
	f.Add([]byte(`{"eventId":"e1","targetName":"projects/p1/devices/d1","eventType":"touch"}`), "p1", "d1")
	f.Add([]byte(`{"eventId":"","targetName":"projects//devices/"}`), "", "")
	f.Add([]byte(`[]`), "p", "d")
	f.Fuzz(func(t *testing.T, data []byte, project, device string) {
		ev, err := ParseEvent(data, map[string]string{"projectId": project, "deviceId": device})
		if err != nil {
			return
		}
		if ev.Project != project || ev.Device != device || ev.ID == "" || ev.Type == "" {
			t.Fatalf("accepted an event for another target: %+v", ev)
		}
	})
}
