package terraform_test

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

// fnAccount matches a function's service account in a grant as written,
// once each.key is replaced by the instance's key.
var fnAccount = regexp.MustCompile(`google_service_account\.fn\["([^"]+)"\]`)

// functionGrants lists, for each function's service account, the grants
// it holds as "type role on target", where a target that is the
// function's own account reads SELF.
func functionGrants(m *module) map[string][]string {
	out := map[string][]string{}
	for _, inst := range m.all("") {
		typ := inst.block.Labels[0]
		if !strings.HasSuffix(typ, "_iam_member") {
			continue
		}
		text := func(name string) string {
			a, ok := inst.block.Body.Attributes[name]
			if !ok {
				return ""
			}
			return strings.ReplaceAll(m.source(a), "each.key", fmt.Sprintf("%q", inst.key))
		}
		mm := fnAccount.FindStringSubmatch(text("member"))
		if mm == nil {
			continue
		}
		account := mm[1]
		role := text("role")
		if v, _ := inst.value("role"); v.IsKnown() && !v.IsNull() && v.Type() == cty.String {
			role = v.AsString()
		}
		var targets []string
		for name := range inst.block.Body.Attributes {
			if name != "member" && name != "role" && !metaArgs[name] && name != "provider" {
				targets = append(targets, name+"="+strings.ReplaceAll(text(name), fmt.Sprintf("fn[%q]", account), "fn[SELF]"))
			}
		}
		sort.Strings(targets)
		out[account] = append(out[account], fmt.Sprintf("%s %s on %s", typ, role, strings.Join(targets, " ")))
	}
	return out
}

// TestStudioHoldsTheAPIsGrants: Studio runs the API's code in-process
// (api.FromEnv, the same environment) for the people signed in to it, so
// its account needs every grant the API's has, held as itself: it signs
// export URLs as studio, never as api.
func TestStudioHoldsTheAPIsGrants(t *testing.T) {
	t.Parallel()
	grants := functionGrants(loadDir(t, "."))
	if len(grants["api"]) == 0 {
		t.Fatal("the api function's account holds no grants: the test no longer finds them")
	}
	studio := map[string]bool{}
	for _, g := range grants["studio"] {
		studio[g] = true
	}
	for _, g := range grants["api"] {
		if !studio[g] {
			t.Errorf("the api function's account holds %s; the studio function's does not", g)
		}
	}
	want := "google_service_account_iam_member roles/iam.serviceAccountTokenCreator on service_account_id=google_service_account.fn[SELF].name"
	if !studio[want] {
		t.Errorf("the studio function's account may not sign as itself: no %s", want)
	}
}

// TestStudioClientSecret: Studio's client secret stays in the EU, and
// only the studio function's account may read it.
func TestStudioClientSecret(t *testing.T) {
	t.Parallel()
	m := loadDir(t, ".")
	found := 0
	for _, inst := range m.all("google_secret_manager_secret") {
		found++
		if len(blocks(inst.block.Body, "user_managed")) == 0 {
			t.Errorf("%s: automatic replication may place the secret anywhere; want user_managed replicas in the EU", inst)
		}
	}
	if found == 0 {
		t.Fatal("no google_secret_manager_secret: where is Studio's client secret?")
	}
	readers := 0
	for _, inst := range m.all("") {
		typ := inst.block.Labels[0]
		if !strings.HasPrefix(typ, "google_secret_manager_secret_iam_") {
			continue
		}
		a, ok := inst.block.Body.Attributes["member"]
		if !ok || m.source(a) != `google_service_account.fn["studio"].member` {
			t.Errorf("%s: grants a secret to someone other than the studio function's account", inst)
			continue
		}
		if v, _ := inst.value("role"); !v.IsKnown() || v.Type() != cty.String || v.AsString() != "roles/secretmanager.secretAccessor" {
			t.Errorf("%s: role %#v; want roles/secretmanager.secretAccessor", inst, v)
		}
		readers++
	}
	if readers != 1 {
		t.Errorf("%d grants on Studio's client secret; want one, to the studio function's account", readers)
	}
	for _, inst := range m.all("google_project_iam_member") {
		if v, _ := inst.value("role"); v.IsKnown() && v.Type() == cty.String && strings.HasPrefix(v.AsString(), "roles/secretmanager.") {
			t.Errorf("%s grants %s project-wide: grant it on the one secret", inst, v.AsString())
		}
	}
}
