package event_test

import (
	"strings"
	"testing"

	"github.com/sealedsense/sealedsense/shared/event"
)

func TestMessages(t *testing.T) {
	t.Parallel()
	a, b := []byte(`{"eventId":"a"}`), []byte(`{"eventId":"b"}`)
	msg, err := event.EncodeMessage([][]byte{a, b})
	if err != nil {
		t.Fatal(err)
	}
	got, err := event.SplitMessage(msg)
	if err != nil || len(got) != 2 || string(got[0]) != string(a) || string(got[1]) != string(b) {
		t.Fatalf("%q %v", got, err)
	}
	if got, err := event.SplitMessage(a); err != nil || len(got) != 1 {
		t.Fatalf("a lone event: %q %v", got, err)
	}
	for _, bad := range []string{``, `[]`, `{`, `"x"`, `[1,`, "[" + strings.Repeat(`{},`, event.MaxPerMessage) + "{}]"} {
		if _, err := event.SplitMessage([]byte(bad)); err == nil {
			t.Errorf("%.40q accepted", bad)
		}
	}
	if _, err := event.EncodeMessage(nil); err == nil {
		t.Error("an empty message encoded")
	}
}

func FuzzSplitMessage(f *testing.F) {
	f.Add([]byte(`[{"eventId":"a"},{"eventId":"b"}]`))
	f.Add([]byte(`{"eventId":"a"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		evs, err := event.SplitMessage(data)
		if err == nil && (len(evs) == 0 || len(evs) > event.MaxPerMessage) {
			t.Fatalf("%d events accepted", len(evs))
		}
	})
}
