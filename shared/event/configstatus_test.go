package event

import (
	"encoding/json"
	"testing"
	"time"
)

func TestConfigurationStatusFor(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	ids := map[string]string{}
	for _, tc := range []struct {
		status  string
		version int64
		reason  string
		want    string
	}{
		{"IN_SYNC", 3, "", `{"configurationStatus":{"status":"IN_SYNC","version":3,"updateTime":"2026-12-01T12:00:00.000000000Z"}}`},
		{"REJECTED", 3, "OUT_OF_RANGE", `{"configurationStatus":{"status":"REJECTED","version":3,"reason":"OUT_OF_RANGE","updateTime":"2026-12-01T12:00:00.000000000Z"}}`},
		{"EXPIRED", 4, "", `{"configurationStatus":{"status":"EXPIRED","version":4,"updateTime":"2026-12-01T12:00:00.000000000Z"}}`},
	} {
		t.Run(tc.status, func(t *testing.T) {
			e := ConfigurationStatusFor("p", "d", tc.status, tc.version, tc.reason, at)
			if string(e.Data) != tc.want || e.EventType != "configurationStatus" || e.TargetName != "projects/p/devices/d" {
				t.Fatalf("event %s %s data %s, want %s", e.EventType, e.TargetName, e.Data, tc.want)
			}
			if again := ConfigurationStatusFor("p", "d", tc.status, tc.version, tc.reason, at.Add(time.Hour)); again.EventID != e.EventID {
				t.Fatalf("the same transition later has id %s, want %s", again.EventID, e.EventID)
			}
			if prev, ok := ids[e.EventID]; ok {
				t.Fatalf("id %s of %s is %s's too", e.EventID, tc.status, prev)
			}
			ids[e.EventID] = tc.status
			if _, err := json.Marshal(e); err != nil || !KnownType(e.EventType) {
				t.Fatalf("marshal %v, known type %v", err, KnownType(e.EventType))
			}
		})
	}
}
