package api

import (
	"encoding/json"
	"net/url"
	"time"

	"github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/store"
)

type listEvents struct {
	Events        []json.RawMessage `json:"events"`
	NextPageToken string            `json:"nextPageToken"`
}

// eventWindow is a checked listEvents request.
type eventWindow struct {
	start, end time.Time
	types      []string
}

// parseEventWindow checks listEvents' query parameters: by default the
// last 24 hours before now, as DT's.
func parseEventWindow(q url.Values, now time.Time) (eventWindow, error) {
	w := eventWindow{start: now.Add(-24 * time.Hour), end: now}
	for name, t := range map[string]*time.Time{"startTime": &w.start, "endTime": &w.end} {
		if v := q.Get(name); v != "" {
			parsed, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return eventWindow{}, errBadRequest("%s must be an RFC 3339 time", name)
			}
			*t = parsed
		}
	}
	if !w.start.Before(w.end) {
		return eventWindow{}, errBadRequest("startTime must be before endTime")
	}
	w.types = listParam(q, "eventTypes")
	for _, t := range w.types {
		if !event.KnownType(t) {
			return eventWindow{}, errBadRequest("unknown event type %q", t)
		}
	}
	if len(w.types) > maxIn {
		return eventWindow{}, errBadRequest("at most %d eventTypes", maxIn)
	}
	return w, nil
}

// listEvents is a device's history, oldest first.
func (s *Service) listEvents(c *call) (any, error) {
	id := c.r.PathValue("device")
	if _, err := s.device(c.r.Context(), c.project, id); err != nil {
		return nil, err
	}
	q := c.r.URL.Query()
	w, err := parseEventWindow(q, s.deps.Now())
	if err != nil {
		return nil, err
	}
	query, order := s.db.DeviceHistory(c.project, id, w.start, w.end, w.types)
	// The token is bound to the window as asked, not as computed: a default
	// window moves with the clock between pages.
	asked := q.Get("startTime") + "\x00" + q.Get("endTime")
	docs, next, err := c.page(query, ordering{Path: order}, asked+"\x00"+joinTypes(w.types))
	if err != nil {
		return nil, err
	}
	out := listEvents{Events: []json.RawMessage{}, NextPageToken: next}
	for _, d := range docs {
		var e store.Event
		if err := d.DataTo(&e); err != nil {
			return nil, err
		}
		if _, err := event.Parse(e.JSON); err != nil {
			return nil, err
		}
		out.Events = append(out.Events, e.JSON)
	}
	return out, nil
}

func joinTypes(ts []string) string {
	b, _ := json.Marshal(ts)
	return string(b)
}
