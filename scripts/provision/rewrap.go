package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/store"
)

// Re-wrapping stored secrets under their CryptoKey's primary version.
//
// KMS decrypts with whichever version made a ciphertext, so rotation alone
// leaves every stored secret on the version it was wrapped with; the old
// version cannot be disabled until nothing needs it. rewrap walks each
// kind of stored secret in document-id pages: it unwraps a secret, skips
// it if KMS used the primary (so a second run changes nothing), and
// otherwise wraps it again and writes it back only if the document is
// unchanged since it was read. A write that loses to a concurrent change
// is counted and left for the next run, never retried with stale data.
// After each page it prints a cursor; -after resumes there.
//
// A run exits non-zero while any record failed or changed meanwhile. Only
// a run from the start that exits 0 shows that nothing stored needs an old
// version any more (what is written meanwhile is wrapped under the
// primary); a resumed run vouches only for what it covered.

const (
	defaultRewrapPage = 200
	maxRewrapPage     = 1000
)

// stored is one wrapped secret as a kind reads it.
type stored struct {
	id      string
	wrapped []byte
	aad     []byte // what the secret is wrapped with now
	newAAD  []byte // what to wrap it with; aad when nil
	// outdated says a field beside the secret (the wrapping key's name)
	// is out of date: the record is written even if KMS used the primary.
	outdated bool
	version  time.Time // the document's update time, which the write must find unchanged
}

// rewrapper is the KMS wrapping a kind's secrets use; *custody.Wrapper is one.
type rewrapper interface {
	UnwrapPrimary(ctx context.Context, ciphertext, aad []byte) (custody.Secret, bool, error)
	Wrap(ctx context.Context, plaintext custody.Secret, aad []byte) ([]byte, error)
}

// secretKind is one sort of stored wrapped secret: the CryptoKey that
// wraps it, a reader of its records in id order after a given id, and a
// conditional writer. Each is an entry of rewrapKinds; the cloud's own
// keys become one more entry over their store methods.
type secretKind struct {
	name    string
	keys    rewrapper
	page    func(ctx context.Context, after string, n int) ([]stored, error)
	replace func(ctx context.Context, s stored, wrapped []byte) error
}

// rewrapOpts are the rewrap command's settings.
type rewrapOpts struct {
	page   int
	after  cursor
	dryRun bool
	// CryptoKey names; the device key comes from env.
	apiSecretsKey, webhookSecretsKey string
}

// cursor is where a run got to: a kind and the last document id of its
// last finished page.
type cursor struct{ kind, id string }

func (c cursor) String() string { return c.kind + ":" + c.id }

// parseCursor reads what a run printed as "cursor KIND:ID". Kind names
// have no colon; document ids may.
func parseCursor(s string) (cursor, error) {
	kind, id, ok := strings.Cut(s, ":")
	if !ok || kind == "" {
		return cursor{}, fmt.Errorf("cursor %q: want KIND:ID as a previous run printed it", s)
	}
	return cursor{kind: kind, id: id}, nil
}

// tally is what a run did with one kind's records.
type tally struct {
	Examined, Rewrapped, AlreadyPrimary, Changed, Failed int
}

func (t tally) String() string {
	return fmt.Sprintf("examined %d, rewrapped %d, already-primary %d, changed-meanwhile %d, failed %d",
		t.Examined, t.Rewrapped, t.AlreadyPrimary, t.Changed, t.Failed)
}

// rewrapCmd reads rewrap's flags and key names, and runs it.
func rewrapCmd(ctx context.Context, e *env, args []string, getenv func(string) string, stdout io.Writer) error {
	fl := flag.NewFlagSet("rewrap", flag.ContinueOnError)
	page := fl.Int("page", defaultRewrapPage, "records per page")
	after := fl.String("after", "", "resume after this cursor, as a previous run printed it")
	dryRun := fl.Bool("dry-run", false, "unwrap and count, but wrap and write nothing")
	if err := fl.Parse(args); err != nil {
		return err
	}
	opts := rewrapOpts{page: *page, dryRun: *dryRun,
		apiSecretsKey: getenv("SEALEDSENSE_API_SECRETS_KEY"), webhookSecretsKey: getenv("SEALEDSENSE_WEBHOOK_SECRETS_KEY")}
	if *after != "" {
		c, err := parseCursor(*after)
		if err != nil {
			return err
		}
		opts.after = c
	}
	_, err := rewrap(ctx, e, opts, stdout)
	return err
}

// rewrap re-wraps every kind of stored secret and reports per kind.
func rewrap(ctx context.Context, e *env, opts rewrapOpts, stdout io.Writer) (map[string]tally, error) {
	if opts.apiSecretsKey == "" || opts.webhookSecretsKey == "" {
		// Every kind, or an operator would disable a version still in use.
		return nil, errors.New("set SEALEDSENSE_API_SECRETS_KEY and SEALEDSENSE_WEBHOOK_SECRETS_KEY")
	}
	return runRewrap(ctx, rewrapKinds(e, opts), opts, stdout)
}

// runRewrap walks kinds in order from opts.after.
func runRewrap(ctx context.Context, kinds []secretKind, opts rewrapOpts, stdout io.Writer) (map[string]tally, error) {
	if opts.page < 1 || opts.page > maxRewrapPage {
		return nil, fmt.Errorf("-page must be 1..%d", maxRewrapPage)
	}
	start := 0
	if opts.after.kind != "" {
		start = -1
		for i, k := range kinds {
			if k.name == opts.after.kind {
				start = i
			}
		}
		if start < 0 {
			return nil, fmt.Errorf("cursor names unknown kind %q", opts.after.kind)
		}
	}
	report := map[string]tally{}
	var incomplete int
	for i := start; i < len(kinds); i++ {
		after := ""
		if i == start {
			after = opts.after.id
		}
		t, last, err := rewrapKind(ctx, kinds[i], after, opts, stdout)
		report[kinds[i].name] = t
		if _, perr := fmt.Fprintf(stdout, "%s: %v\n", kinds[i].name, t); perr != nil && err == nil {
			err = perr
		}
		if err != nil {
			return report, fmt.Errorf("rewrap %s stopped; resume with -after %s: %w", kinds[i].name, last, err)
		}
		incomplete += t.Changed + t.Failed
	}
	if incomplete > 0 {
		return report, fmt.Errorf("rewrap: %d records changed meanwhile or failed: run rewrap again before disabling old key versions", incomplete)
	}
	return report, nil
}

// rewrapKind pages through one kind from after. It returns the cursor of
// its last finished page, where a resumed run starts.
func rewrapKind(ctx context.Context, k secretKind, after string, opts rewrapOpts, stdout io.Writer) (tally, cursor, error) {
	var t tally
	last := cursor{kind: k.name, id: after}
	for {
		if err := ctx.Err(); err != nil {
			return t, last, err
		}
		recs, err := k.page(ctx, after, opts.page)
		if err != nil {
			return t, last, err
		}
		for _, s := range recs {
			out, err := rewrapOne(ctx, k, s, opts.dryRun)
			if ctx.Err() != nil {
				// Interrupted: this page is not finished, so the cursor
				// stays before it and a resumed run repeats it.
				return t, last, ctx.Err()
			}
			t.add(out)
			if err != nil {
				fmt.Fprintf(stdout, "failed %s/%s: %v\n", k.name, s.id, err)
			}
		}
		if len(recs) == 0 {
			return t, last, nil
		}
		after = recs[len(recs)-1].id
		last = cursor{kind: k.name, id: after}
		if _, err := fmt.Fprintf(stdout, "cursor %v\n", last); err != nil {
			return t, last, err
		}
		if len(recs) < opts.page {
			return t, last, nil
		}
	}
}

// outcome is what became of one record.
type outcome int

const (
	rewrapped outcome = iota
	alreadyPrimary
	changed // the document changed between read and write: left for the next run
	failed
)

func (t *tally) add(o outcome) {
	t.Examined++
	switch o {
	case rewrapped:
		t.Rewrapped++
	case alreadyPrimary:
		t.AlreadyPrimary++
	case changed:
		t.Changed++
	default:
		t.Failed++
	}
}

// rewrapOne re-wraps one secret unless KMS says it is already under the
// primary version with the right additional data.
func rewrapOne(ctx context.Context, k secretKind, s stored, dryRun bool) (outcome, error) {
	secret, primary, err := k.keys.UnwrapPrimary(ctx, s.wrapped, s.aad)
	if err != nil {
		return failed, err
	}
	defer secret.Clear()
	newAAD := s.newAAD
	if newAAD == nil {
		newAAD = s.aad
	}
	if primary && !s.outdated && bytes.Equal(newAAD, s.aad) {
		return alreadyPrimary, nil
	}
	if dryRun {
		return rewrapped, nil
	}
	wrapped, err := k.keys.Wrap(ctx, secret, newAAD)
	if err != nil {
		return failed, err
	}
	err = k.replace(ctx, s, wrapped)
	switch {
	case store.IsChanged(err), store.IsNotFound(err):
		return changed, nil
	case err != nil:
		return failed, err
	}
	return rewrapped, nil
}
