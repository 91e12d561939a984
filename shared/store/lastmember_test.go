package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/sealedsense/sealedsense/shared/store"
)

// TestDeleteMemberNotLast: of two admins removed at once, one stays; a
// missing grant is not found.
func TestDeleteMemberNotLast(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	ctx := context.Background()
	scope := store.OrganizationScope("o-last")
	for _, a := range []string{"a1", "a2"} {
		if err := db.Grant(ctx, store.Member{Scope: scope, Account: a, Email: a + "@x", Roles: []string{"roles/organization.admin"}}); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, 2)
	for _, a := range []string{"a1", "a2"} {
		go func() { errs <- db.DeleteMemberNotLast(ctx, scope, a) }()
	}
	var refused int
	for range 2 {
		if err := <-errs; errors.Is(err, store.ErrLastMember) {
			refused++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if refused != 1 {
		t.Fatalf("%d of two concurrent removals refused, want exactly 1: the scope keeps one admin", refused)
	}
	if err := db.DeleteMemberNotLast(ctx, scope, "nobody"); !store.IsNotFound(err) {
		t.Fatalf("removing a missing grant: %v", err)
	}
}
