package store

import (
	"regexp"
	"testing"
	"time"
)

// Entry ids sort newest first, so a project's log lists by document id.
func TestAuditIDOrder(t *testing.T) {
	form := regexp.MustCompile(`^\d{19}-[0-9a-f]{12}$`)
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name         string
		older, newer time.Time
	}{
		{"a nanosecond", t0, t0.Add(1)},
		{"a year", t0, t0.AddDate(1, 0, 0)},
		{"the epoch", time.Unix(0, 0), t0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := auditID(tt.older)
			if err != nil {
				t.Fatal(err)
			}
			n, err := auditID(tt.newer)
			if err != nil {
				t.Fatal(err)
			}
			if !form.MatchString(o) || !form.MatchString(n) {
				t.Fatalf("ids %q %q", o, n)
			}
			if n >= o {
				t.Errorf("newer %q does not sort before older %q", n, o)
			}
		})
	}
}
