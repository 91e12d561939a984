package store

import (
	"reflect"
	"slices"
	"testing"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/event"
)

func TestLabelChange(t *testing.T) {
	had := map[string]string{"site": "oslo", "room": "1"}
	tests := []struct {
		name    string
		labels  map[string]string
		set     map[string]string
		remove  []string
		want    event.LabelsChanged
		updates int
	}{
		{"add", had, map[string]string{"floor": "2"}, nil, event.LabelsChanged{Added: map[string]string{"floor": "2"}}, 1},
		{"modify", had, map[string]string{"site": "bergen"}, nil, event.LabelsChanged{Modified: map[string]string{"site": "bergen"}}, 1},
		{"same value changes nothing", had, map[string]string{"site": "oslo"}, nil, event.LabelsChanged{}, 0},
		{"remove", had, nil, []string{"room"}, event.LabelsChanged{Removed: []string{"room"}}, 1},
		{"remove one it lacks changes nothing", had, nil, []string{"nope"}, event.LabelsChanged{}, 0},
		{"remove twice is once", had, nil, []string{"room", "room"}, event.LabelsChanged{Removed: []string{"room"}}, 1},
		{"all three", had, map[string]string{"site": "bergen", "floor": "2"}, []string{"room", "nope"},
			event.LabelsChanged{Added: map[string]string{"floor": "2"}, Modified: map[string]string{"site": "bergen"}, Removed: []string{"room"}}, 3},
		{"a device without labels", nil, map[string]string{"a": "1"}, []string{"b"}, event.LabelsChanged{Added: map[string]string{"a": "1"}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, upd := labelChange(tt.labels, tt.set, tt.remove)
			if !reflect.DeepEqual(got, tt.want) || len(upd) != tt.updates {
				t.Errorf("labelChange = %+v with %d updates, want %+v with %d", got, len(upd), tt.want, tt.updates)
			}
			if got.Empty() != (tt.updates == 0) {
				t.Errorf("Empty() = %v with %d updates", got.Empty(), len(upd))
			}
			for _, u := range upd {
				if len(u.FieldPath) != 2 || u.FieldPath[0] != "labels" {
					t.Errorf("update of %v: a label change writes only labels.<key>", u.FieldPath)
				}
				if u.Value == firestore.Delete && !slices.Contains(tt.remove, u.FieldPath[1]) {
					t.Errorf("deletes %s, which was not removed", u.FieldPath[1])
				}
			}
		})
	}
}
