package envconf

import (
	"strings"
	"testing"
	"time"
)

func TestReader(t *testing.T) {
	t.Parallel()
	env := map[string]string{"SET": "x", "D": "2s", "BAD_D": "soon", "NEG_D": "-1s", "F": "2.5", "BAD_F": "0", "V": " k/cryptoKeyVersions/3 , k/cryptoKeyVersions/2"}
	r := New(func(k string) string { return env[k] })
	if r.Need("SET") != "x" || r.Get("UNSET", "def") != "def" || r.Get("SET", "def") != "x" {
		t.Fatal("Need/Get")
	}
	d := time.Minute
	r.Duration("D", &d)
	r.Duration("UNSET_D", &d)
	f := 1.0
	r.Float("F", &f)
	if d != 2*time.Second || f != 2.5 {
		t.Fatalf("d %v f %v", d, f)
	}
	if v := r.KeyVersions("V", "k"); len(v) != 2 || v[0] != "k/cryptoKeyVersions/3" {
		t.Fatalf("versions %q", v)
	}
	if v := r.KeyVersions("UNSET", "k"); len(v) != 1 || v[0] != "k/cryptoKeyVersions/1" {
		t.Fatalf("default versions %q", v)
	}
	if err := r.Err("fn"); err != nil {
		t.Fatalf("no problem yet: %v", err)
	}
	r.Need("MISSING")
	r.Duration("BAD_D", &d)
	r.Duration("NEG_D", &d)
	r.Float("BAD_F", &f)
	err := r.Err("fn")
	for _, want := range []string{"fn: ", "MISSING is not set", "BAD_D must be", "NEG_D must be", "BAD_F must be"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("error %v lacks %q", err, want)
		}
	}
	if d != 2*time.Second || f != 2.5 {
		t.Fatal("a malformed value changed the setting")
	}
}
