package api

import (
	"strings"
	"testing"
)

func TestNormalEmail(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"facility@acme.example", "facility@acme.example", true},
		{"Facility@ACME.example", "facility@acme.example", true},
		{"  facility@acme.example ", "facility@acme.example", true},
		{"Facility <facility@acme.example>", "", false},
		{"<facility@acme.example>", "", false},
		{"facility", "", false},
		{"", "", false},
		{"a@b@c.example", "", false},
		{strings.Repeat("a", 250) + "@b.example", "", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := normalEmail(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("normalEmail(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestUserAccount(t *testing.T) {
	a, b := userAccount("facility@acme.example"), userAccount("Facility@Acme.Example")
	if a != b {
		t.Errorf("the same address in two spellings gives %s and %s", a, b)
	}
	if c := userAccount("other@acme.example"); c == a {
		t.Errorf("two people share the account %s", a)
	}
	if strings.Contains(a, "facility") || !validDocID(a) {
		t.Errorf("account %q spells the address, or is no document id", a)
	}
}
