package event

import (
	"crypto/rand"
	"fmt"
	"time"
)

// LabelsChanged is DT's labelsChanged data: what one change did to a
// device's labels. It has no updateTime; the event's timestamp is the
// change's time.
type LabelsChanged struct {
	Added    map[string]string `json:"added"`
	Modified map[string]string `json:"modified"`
	Removed  []string          `json:"removed"`
}

// Empty says whether the change changed nothing, so that no event is made
// for it: setting a label to the value it has, or removing one it lacks.
func (c LabelsChanged) Empty() bool {
	return len(c.Added) == 0 && len(c.Modified) == 0 && len(c.Removed) == 0
}

// LabelsChangedFor is the labelsChanged event of a change to a device's
// labels, under a new random id: two changes are two events, even in
// the same nanosecond.
func LabelsChangedFor(project, deviceID string, at time.Time, c LabelsChanged) (Event, error) {
	id, err := RandomID()
	if err != nil {
		return Event{}, err
	}
	// DT's clients read every key: empty, never null.
	if c.Added == nil {
		c.Added = map[string]string{}
	}
	if c.Modified == nil {
		c.Modified = map[string]string{}
	}
	if c.Removed == nil {
		c.Removed = []string{}
	}
	return build(project, deviceID, id, "labelsChanged", at, c)
}

// RandomID is a new event id in DT's style, for events that no reading
// names: 20 characters of lowercase base32hex from 100 random bits.
func RandomID() (string, error) {
	var b [13]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("event: random id: %w", err)
	}
	return idEncoding().EncodeToString(b[:])[:20], nil
}
