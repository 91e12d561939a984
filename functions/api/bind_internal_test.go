package api

import (
	"maps"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/store"
)

func TestKeyGrants(t *testing.T) {
	minted := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	before, after := minted.Add(-time.Second), minted.Add(time.Second)
	grant := func(scope string, at time.Time) store.Member {
		return store.Member{Scope: scope, Roles: []string{roleUser}, CreateTime: at}
	}
	tests := []struct {
		name   string
		grants []store.Member
		want   []string // the scopes the key acts under
	}{
		{"no grants", nil, nil},
		{"own project, before the key", []store.Member{grant("projects/p1", before)}, []string{"projects/p1"}},
		{"own project, after the key", []store.Member{grant("projects/p1", after)}, []string{"projects/p1"}},
		{"other project, before the key", []store.Member{grant("projects/p2", before)}, []string{"projects/p2"}},
		{"other project, as the key", []store.Member{grant("projects/p2", minted)}, []string{"projects/p2"}},
		{"other project, after the key", []store.Member{grant("projects/p2", after)}, nil},
		{"organization, before the key", []store.Member{grant("organizations/o", before)}, []string{"organizations/o"}},
		{"organization, after the key", []store.Member{grant("organizations/o", after)}, nil},
		{"mixed", []store.Member{grant("projects/p1", after), grant("projects/p2", before), grant("projects/p3", after)},
			[]string{"projects/p1", "projects/p2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := keyGrants(store.Key{CreateTime: minted}, "p1", tc.grants)
			want := map[string][]string{}
			for _, sc := range tc.want {
				want[sc] = []string{roleUser}
			}
			if !maps.EqualFunc(got, want, func(a, b []string) bool { return len(a) == len(b) && a[0] == b[0] }) {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}
}
