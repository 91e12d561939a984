// Package envconf reads a function's configuration from its environment,
// collecting every missing or malformed variable into one error, so that a
// misconfigured deployment says all that is wrong at once.
package envconf

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Reader reads variables through getenv and remembers the problems.
type Reader struct {
	getenv   func(string) string
	problems []string
}

// New returns a Reader over getenv (os.Getenv, or a test's map).
func New(getenv func(string) string) *Reader { return &Reader{getenv: getenv} }

// Get returns k, or def when it is unset.
func (r *Reader) Get(k, def string) string {
	if v := r.getenv(k); v != "" {
		return v
	}
	return def
}

// Need returns k, which must be set.
func (r *Reader) Need(k string) string {
	v := r.getenv(k)
	if v == "" {
		r.problems = append(r.problems, k+" is not set")
	}
	return v
}

// Duration sets *d from k, a positive Go duration, when k is set.
func (r *Reader) Duration(k string, d *time.Duration) {
	v := r.getenv(k)
	if v == "" {
		return
	}
	p, err := time.ParseDuration(v)
	if err != nil || p <= 0 {
		r.problems = append(r.problems, k+" must be a positive duration")
		return
	}
	*d = p
}

// Float sets *f from k, a positive number, when k is set.
func (r *Reader) Float(k string, f *float64) {
	v := r.getenv(k)
	if v == "" {
		return
	}
	p, err := strconv.ParseFloat(v, 64)
	if err != nil || p <= 0 {
		r.problems = append(r.problems, k+" must be a positive number")
		return
	}
	*f = p
}

// KeyVersions reads k, a comma-separated list of KMS key versions, the
// one in use first; unset, it is version 1 of key. A rotation lists the
// new version first and keeps the old ones while what they signed lives.
func (r *Reader) KeyVersions(k, key string) []string {
	var out []string
	for _, v := range strings.Split(r.getenv(k), ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		out = []string{key + "/cryptoKeyVersions/1"}
	}
	return out
}

// Err is every problem met so far, or nil.
func (r *Reader) Err(function string) error {
	if len(r.problems) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %s", function, strings.Join(r.problems, "; "))
}
