package api

import (
	"encoding/json"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/event"
)

type listEvents struct {
	Events        []json.RawMessage `json:"events"`
	NextPageToken string            `json:"nextPageToken"`
}

// listEvents is a device's history, oldest first; by default the last 24
// hours, as DT's.
func (s *Service) listEvents(c *call) (any, error) {
	id := c.r.PathValue("device")
	if _, err := s.device(c.r.Context(), c.project, id); err != nil {
		return nil, err
	}
	now := s.deps.Now()
	start, end := now.Add(-24*time.Hour), now
	for name, t := range map[string]*time.Time{"startTime": &start, "endTime": &end} {
		if v := c.r.URL.Query().Get(name); v != "" {
			parsed, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return nil, errBadRequest("%s must be an RFC 3339 time", name)
			}
			*t = parsed
		}
	}
	if !start.Before(end) {
		return nil, errBadRequest("startTime must be before endTime")
	}
	types := listValues(c, "eventTypes")
	for _, t := range types {
		if !event.KnownType(t) {
			return nil, errBadRequest("unknown event type %q", t)
		}
	}
	if len(types) > maxIn {
		return nil, errBadRequest("at most %d eventTypes", maxIn)
	}
	// Events carry the project they were stored for, so a device moved to
	// another project does not take its old owner's history along.
	q := s.deps.Firestore.Collection(eventsCollection).Where("projectId", "==", c.project).Where("deviceId", "==", id).
		Where("timestamp", ">=", start).Where("timestamp", "<", end)
	if len(types) > 0 {
		q = q.Where("eventType", "in", types)
	}
	q = q.OrderBy("timestamp", firestore.Asc).OrderBy(firestore.DocumentID, firestore.Asc)
	// The token is bound to the window as asked, not as computed: a default
	// window moves with the clock between pages.
	asked := c.r.URL.Query().Get("startTime") + "\x00" + c.r.URL.Query().Get("endTime")
	docs, next, err := c.page(q, ordering{Field: "timestamp"}, asked+"\x00"+joinTypes(types))
	if err != nil {
		return nil, err
	}
	out := listEvents{Events: []json.RawMessage{}, NextPageToken: next}
	for _, d := range docs {
		b, _ := d.Data()["json"].([]byte)
		if _, err := event.Parse(b); err != nil {
			return nil, err
		}
		out.Events = append(out.Events, b)
	}
	return out, nil
}

func joinTypes(ts []string) string {
	b, _ := json.Marshal(ts)
	return string(b)
}
