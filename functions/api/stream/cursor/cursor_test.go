package cursor

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPositionOrderAndToken(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 25, 9, 0, 0, 123456000, time.UTC)
	cases := []struct {
		name string
		a, b Position
		want int
	}{
		{"earlier time", Position{at, "zz"}, Position{at.Add(time.Microsecond), "aa"}, -1},
		{"same time, id order", Position{at, "aa"}, Position{at, "ab"}, -1},
		{"empty id first", Position{at, ""}, Position{at, "0"}, -1},
		{"equal", Position{at, "x"}, Position{at, "x"}, 0},
		{"later", Position{at.Add(time.Second), ""}, Position{at, "zzzz"}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := c.a.Compare(c.b); got != c.want {
				t.Fatalf("Compare = %d, want %d", got, c.want)
			}
			if got := c.b.Compare(c.a); got != -c.want {
				t.Fatalf("reverse Compare = %d, want %d", got, -c.want)
			}
			for _, p := range []Position{c.a, c.b} {
				r, err := Parse(p.Token())
				if err != nil || !r.IsToken() || r.Position.Compare(p) != 0 || !r.Position.At.Equal(p.At) {
					t.Fatalf("round trip of %v: %+v, %v", p, r, err)
				}
			}
		})
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	good := Position{At: time.Unix(1700000000, 5000), ID: "abc"}.Token()
	cases := []struct {
		in      string
		eventID string
		ok      bool
	}{
		{"0123456789abcdefghij", "0123456789abcdefghij", true},
		{good, "", true},
		{"", "", false},
		{"v1.", "", false},
		{"v1.AAAA", "", false},        // shorter than the time
		{"v1.AAAAAAAAAAA", "", false}, // time zero
		{"v1.!!!!", "", false},        // not base64url
		{good + "=", "", false},       // padding is refused
		{"has space", "", false},      //
		{"a/b", "", false},            // a path, not an id
		{strings.Repeat("a", 65), "", false},
		{strings.Repeat("a", MaxLen+1), "", false},
	}
	for _, c := range cases {
		r, err := Parse(c.in)
		if c.ok != (err == nil) {
			t.Errorf("Parse(%q) error %v, want ok=%v", c.in, err, c.ok)
			continue
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) error %v does not wrap ErrInvalid", c.in, err)
		}
		if c.ok && r.EventID != c.eventID {
			t.Errorf("Parse(%q) event id %q, want %q", c.in, r.EventID, c.eventID)
		}
	}
}

// FuzzParse: no input panics, an accepted token round-trips, and an
// accepted event id is a valid id.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"0123456789abcdefghij", "v1.", "v1.AAAAAAAAAAE", "v1.AAAAAAAAAAFhYmM",
		Position{At: time.Unix(1700000000, 0), ID: "0123456789abcdefghij"}.Token(),
		Position{At: time.Unix(1700000000, 0)}.Token(), "v1.____________", "\x00", "v1.v1.",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			return
		}
		if r.IsToken() {
			if r.Position.At.UnixNano() <= 0 {
				t.Fatalf("accepted a token with time %v", r.Position.At)
			}
			again, err := Parse(r.Position.Token())
			if err != nil || again.Position.Compare(r.Position) != 0 {
				t.Fatalf("token of %q does not round-trip: %v", s, err)
			}
			return
		}
		if !ValidID(r.EventID) || r.EventID != s {
			t.Fatalf("accepted event id %q from %q", r.EventID, s)
		}
	})
}
