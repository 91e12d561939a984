package api

import (
	"slices"
	"strings"
	"testing"
)

func TestParseIfMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want int64 // -1: no precondition
		ok   bool
	}{
		{"", -1, true},
		{"*", -1, true},
		{`"v0"`, 0, true},
		{`"v17"`, 17, true},
		{`W/"v3"`, 3, true},
		{`v3`, 0, false},
		{`"3"`, 0, false},
		{`"v-1"`, 0, false},
		{`"v3", "v4"`, 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseIfMatch(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("parseIfMatch(%q) error %v, want ok=%v", tc.in, err, tc.ok)
			}
			if tc.ok && (got == nil) != (tc.want == -1) || got != nil && *got != tc.want {
				t.Fatalf("parseIfMatch(%q) = %v, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseLabelSelector(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want [][2]string
	}{
		{"room=lab", [][2]string{{"room", "lab"}}},
		{"room=lab, floor=2", [][2]string{{"room", "lab"}, {"floor", "2"}}},
		{"room=", [][2]string{{"room", ""}}},
		{"room", nil},
		{"=lab", nil},
		{"room=lab,", nil},
		{"bad key=x", nil},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseLabelSelector(tc.in)
			if (err == nil) != (tc.want != nil) || !slices.Equal(got, tc.want) {
				t.Fatalf("parseLabelSelector(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func FuzzParseIfMatch(f *testing.F) {
	for _, s := range []string{"", "*", `"v0"`, `W/"v12"`, `"v-1"`, `"v99999999999999999999"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseIfMatch(s)
		if err == nil && v != nil && (*v < 0 || !strings.Contains(s, etag(*v)[1:])) {
			t.Fatalf("parseIfMatch(%q) = %d, which it does not name", s, *v)
		}
	})
}

func FuzzParseLabelSelector(f *testing.F) {
	for _, s := range []string{"room=lab", "a=b,c=d", "room", ",", "k=" + strings.Repeat("v", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pairs, err := parseLabelSelector(s)
		if err == nil && len(pairs) == 0 {
			t.Fatalf("parseLabelSelector(%q) accepted no pair", s)
		}
	})
}
