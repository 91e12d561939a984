package api_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestPeopleAsMembers: a person is added by email with a project role,
// acts under it as Studio serves them, appears in the audit log under
// their email as a USER, and loses access when removed; an address that
// is not one, or a service-account address that is not in the
// organization, is refused.
func TestPeopleAsMembers(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "SEALEDSENSE_API_ACCESS_TTL=1s")
	p := w.tenant.Project
	w.devices(p, "", 2)

	for _, tc := range []struct {
		email string
		want  int
	}{
		{"not an address", 400},
		{"Facility <facility@acme.example>", 400},
		{"ghost@" + p + ".serviceaccount.sealedsense.eu", 404},
	} {
		if code, b := w.admin.call("POST", "/v2/projects/"+p+"/members", map[string]any{"roles": []string{"roles/project.user"}, "email": tc.email}); code != tc.want {
			t.Errorf("member %q: %d, want %d: %s", tc.email, code, tc.want, b)
		}
	}
	m := must[map[string]any](t, 200)(w.admin.call("POST", "/v2/projects/"+p+"/members", map[string]any{"roles": []string{"roles/project.user"}, "email": "Facility@Acme.example"}))
	if m["accountType"] != "USER" || m["email"] != "facility@acme.example" || strings.Contains(m["name"].(string), "@") {
		t.Fatalf("member %v: want a USER named by an opaque id, with the address in lower case", m)
	}
	if code, _ := w.admin.call("POST", "/v2/projects/"+p+"/members", map[string]any{"roles": []string{"roles/project.admin"}, "email": "facility@acme.example"}); code != 409 {
		t.Errorf("the same person added twice: %d, want 409", code)
	}
	as := personAuth("facility@acme.example")
	devs := must[map[string]any](t, 200)(w.request("GET", "/v2/projects/"+p+"/devices", as, nil))
	if n := len(devs["devices"].([]any)); n != 2 {
		t.Errorf("the person sees %d devices, want 2", n)
	}
	if code, _ := w.request("POST", "/v2/projects/"+p+"/serviceaccounts", as, map[string]any{"displayName": "x"}); code != 403 {
		t.Errorf("a project user creating a service account: %d, want 403", code)
	}

	log := must[map[string]any](t, 200)(w.admin.call("GET", "/v2/projects/"+p+"/auditLog?pageSize=100", nil))
	found := false
	for _, e := range log["entries"].([]any) {
		e := e.(map[string]any)
		if e["actor"] == "facility@acme.example" && e["action"] == "GET /v2/projects/{project}/devices" {
			found = true
			if e["actorType"] != "USER" || e["keyId"] != nil {
				t.Errorf("audit entry %v: want actorType USER and no key", e)
			}
		}
	}
	if !found {
		b, _ := json.Marshal(log)
		t.Errorf("no audit entry of the person's read: %s", b)
	}

	must[map[string]any](t, 200)(w.admin.call("DELETE", "/v2/"+m["name"].(string), nil))
	time.Sleep(1100 * time.Millisecond) // AccessTTL
	if code, _ := w.request("GET", "/v2/projects/"+p+"/devices", as, nil); code != 403 {
		t.Errorf("a removed person listing devices: %d, want 403", code)
	}
}
