package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/credentials"
)

// TestOrganizationMembers: organization admins manage who administers
// the organization, as for projects; the last admin stays; the
// organization's log records every call, refusals included.
func TestOrganizationMembers(t *testing.T) {
	t.Parallel()
	// A role change reaches a caller already seen within the access TTL.
	const ttl = 500 * time.Millisecond
	w := newWorld(t, "SEALEDSENSE_API_RATE=10000", "SEALEDSENSE_API_ACCESS_TTL="+ttl.String())
	p, org := w.tenant.Project, w.tenant.Organization
	base := "/v2/organizations/" + org + "/members"
	second := w.account(p, "roles/project.admin")
	secondID := strings.Split(second.creds.Email, "@")[0]

	// A project admin cannot make itself organization admin.
	if code, b := second.call("POST", base, map[string]any{"roles": []string{"roles/organization.admin"}, "email": second.creds.Email}); code != 403 {
		t.Fatalf("a project admin added an organization member: %d %s", code, b)
	}
	// An account of another organization is unknown here.
	other, err := w.store.Bootstrap(context.Background(), "Other", "", "Other main", w.base+"/oauth2/token")
	if err != nil {
		t.Fatal(err)
	}
	if code, b := w.admin.call("POST", base, map[string]any{"roles": []string{"roles/organization.admin"}, "email": other.Credentials.Email}); code != 404 {
		t.Fatalf("another organization's account was added: %d %s", code, b)
	}
	if code, b := w.admin.call("POST", base, map[string]any{"roles": []string{"roles/project.admin"}, "email": second.creds.Email}); code != 400 {
		t.Fatalf("a project role on an organization: %d %s", code, b)
	}

	m := must[map[string]any](t, 200)(w.admin.call("POST", base, map[string]any{"roles": []string{"roles/organization.admin"}, "email": second.creds.Email}))
	if m["name"] != "organizations/"+org+"/members/"+secondID || m["email"] != second.creds.Email {
		t.Fatalf("created member %v", m)
	}
	// The new admin now can, in any project of the organization, with a
	// key minted after the grant: a grant outside the account's own
	// project never extends an older key (keyGrants).
	if code, _ := second.call("GET", "/v2/organizations/"+org, nil); code != 403 {
		t.Fatalf("a key minted before the organization grant acts under it: %d", code)
	}
	creds := must[credentials.ServiceAccount](t, 200)(w.admin.call("POST", "/v2/projects/"+p+"/serviceaccounts/"+secondID+"/keys:createCredentialsFile", nil))
	second = w.client(creds)
	must[map[string]any](t, 200)(second.call("GET", "/v2/organizations/"+org, nil))
	q := w.newProject(org, "members other")
	must[map[string]any](t, 200)(second.call("GET", "/v2/projects/"+q+"/devices", nil))
	list := must[map[string]any](t, 200)(second.call("GET", base, nil))
	if n := len(list["members"].([]any)); n != 2 {
		t.Fatalf("%d members listed, want 2: %v", n, list)
	}

	// Removing one admin works; removing the last does not.
	must[map[string]any](t, 200)(second.call("DELETE", base+"/"+w.tenant.Account, nil))
	if code, b := second.call("DELETE", base+"/"+secondID, nil); code != 409 {
		t.Fatalf("removing the last organization admin: %d %s", code, b)
	}
	if code, b := second.call("GET", base+"/"+w.tenant.Account, nil); code != 404 {
		t.Fatalf("a removed member: %d %s", code, b)
	}
	// The first admin, removed, is refused, and the log says so.
	time.Sleep(2 * ttl)
	if code, b := w.admin.call("GET", base, nil); code != 403 {
		t.Fatalf("a removed admin listed members: %d %s", code, b)
	}
	log := must[map[string]any](t, 200)(second.call("GET", "/v2/organizations/"+org+"/auditLog", nil))
	var refused, deleted int
	for _, e := range log["entries"].([]any) {
		e := e.(map[string]any)
		switch {
		case e["code"] == 403.0 && e["actor"] == w.tenant.Credentials.Email:
			refused++
		case e["action"] == "DELETE /v2/organizations/{organization}/members/{member}" && e["code"] == 200.0:
			deleted++
		}
	}
	if refused == 0 || deleted != 1 {
		t.Fatalf("the organization's log has %d refusals of the removed admin and %d removals, want some and 1: %v", refused, deleted, log)
	}
}
