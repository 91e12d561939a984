package terraform_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
	"golang.org/x/mod/modfile"

	"github.com/sealedsense/sealedsense/functions/api"
	"github.com/sealedsense/sealedsense/functions/backup"
	"github.com/sealedsense/sealedsense/functions/deliver"
	"github.com/sealedsense/sealedsense/functions/ingest"
	"github.com/sealedsense/sealedsense/shared/deploy"
)

// euLocations are the locations where SealedSense may keep or process
// data: the regions in EU member states, and the multi-regions made of
// them. London (europe-west2) and Zurich (europe-west6) are in Europe but
// not in the EU.
func euLocations() map[string]bool {
	out := map[string]bool{}
	for _, l := range []string{
		"europe-central2", "europe-north1", "europe-north2", "europe-southwest1", "europe-west1", "europe-west3",
		"europe-west4", "europe-west8", "europe-west9", "europe-west10", "europe-west12",
		"eu", "europe", "eur3", "eur4", "in:eu-locations",
	} {
		out[l] = true
	}
	return out
}

// locationAttrs are the attributes that place a resource or its data.
func locationAttrs() map[string]bool {
	return map[string]bool{"location": true, "region": true, "location_id": true, "allowed_persistence_regions": true, "allowed_values": true,
		"zone": true, "zones": true, "node_locations": true, "data_locations": true, "storage_location": true}
}

// failureClasses are DESIGN.md's ways data can stop flowing; each needs an
// alert policy labelled failure_class=<class>.
func failureClasses() []string {
	return []string{"decrypt_auth_failures", "dead_letter_backlog", "connector_offline", "webhook_disabled", "function_error_rate",
		"key_backup_failed", "key_backup_stale", "key_backup_unchecked"}
}

// runtime is the Cloud Run functions runtime of the go.mod's go line.
const runtime = "go126"

type policy struct {
	name  string
	check func(t *testing.T, m *module) []string
	// bad is a module that breaks the policy and nothing else it needs.
	bad string
}

func policies() []policy {
	return []policy{
		{"every location is in the EU", euOnly, `
variable "region" {
  default = "europe-west1"
}
resource "google_storage_bucket" "b" {
  location = var.region
}
resource "google_pubsub_topic" "t" {
  message_storage_policy {
    allowed_persistence_regions = ["europe-west1", "us-central1"]
  }
}`},
		{"every topic keeps messages in the EU under CMEK", topicsEUAndCMEK, `
resource "google_kms_crypto_key" "k" {}
resource "google_pubsub_topic" "t" {
  kms_key_name = google_kms_crypto_key.k.id
}`},
		{"every push subscription has a dead-letter policy and OIDC", pushSubscriptions, `
resource "google_pubsub_subscription" "s" {
  push_config {
    push_endpoint = "https://example.eu/x"
  }
  dead_letter_policy {
    dead_letter_topic     = "projects/p/topics/dead-letter"
    max_delivery_attempts = 5
  }
}`},
		{"Firestore, topics and buckets use CMEK", cmekEverywhere, `
resource "google_kms_crypto_key" "k" {}
resource "google_firestore_database" "d" {
  location_id = "eur3"
  cmek_config {
    kms_key_name = google_kms_crypto_key.k.id
  }
}
resource "google_storage_bucket" "b" {
  location = "EU"
}`},
		{"each function runs as its own service account", ownServiceAccounts, `
resource "google_service_account" "shared" {}
resource "google_cloudfunctions2_function" "fn" {
  for_each = toset(["a", "b"])
  service_config {
    service_account_email = google_service_account.shared.email
  }
}`},
		{"no project-wide owner, editor or admin role", noBroadRoles, `
resource "google_project_iam_member" "m" {
  role = "roles/pubsub.admin"
}`},
		{"every failure class has an alert policy", alerts, `
resource "google_monitoring_alert_policy" "a" {
  user_labels = {
    failure_class = "connector_offline"
  }
  documentation {
    content = "A connector stopped sending heartbeats: check its power and network first."
  }
  notification_channels = ["x"]
  conditions {
    display_name = "offline"
  }
}`},
		{"functions get every variable their code reads", functionsAndEnv, `
resource "google_cloudfunctions2_function" "fn" {
  for_each = toset(["ingest", "sweep"])
  name     = each.key
  build_config {
    runtime     = "go126"
    entry_point = each.key == "ingest" ? "Ingest" : "Sweep"
  }
  service_config {
    environment_variables = {
      GOOGLE_CLOUD_PROJECT = "p"
    }
  }
}`},
	}
}

func TestPolicies(t *testing.T) {
	m := loadDir(t, ".")
	for _, p := range policies() {
		t.Run(p.name, func(t *testing.T) {
			for _, v := range p.check(t, m) {
				t.Error(v)
			}
		})
	}
}

// TestPoliciesCatchBadSnippets proves each policy able to fail.
func TestPoliciesCatchBadSnippets(t *testing.T) {
	for _, p := range policies() {
		t.Run(p.name, func(t *testing.T) {
			m := load(t, map[string][]byte{"bad.tf": []byte(p.bad)})
			if v := p.check(t, m); len(v) == 0 {
				t.Fatalf("the policy passed a module that breaks it:\n%s", p.bad)
			} else {
				t.Logf("caught: %s", strings.Join(v, "; "))
			}
		})
	}
}

func TestFilesAreCanonical(t *testing.T) {
	t.Parallel()
	m := loadDir(t, ".")
	for name, src := range m.files {
		if !strings.HasSuffix(name, ".tf") {
			continue
		}
		if got := hclwrite.Format(src); string(got) != string(src) {
			t.Errorf("%s is not in canonical format (terraform fmt)", name)
		}
	}
}

func euOnly(t *testing.T, m *module) []string {
	out := locationsOutsideEU(m)
	// A variable is a location if a non-EU value of it moves anything out
	// of the EU, directly or through locals and for_each: then its
	// validation must refuse that value at plan time.
	names := make([]string, 0, len(m.variables))
	for name := range m.variables {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		bad, ok := nonEUValue(m, name)
		if ok && len(locationsOutsideEU(m.withVars(map[string]cty.Value{name: bad}))) > 0 {
			out = append(out, refusesNonEU(m, name, bad)...)
		}
	}
	return out
}

// locationsOutsideEU lists every location attribute of every resource
// instance that is not a known EU value.
func locationsOutsideEU(m *module) []string {
	var out []string
	for _, inst := range m.everything() {
		walkAttrs(inst.block.Body, func(a *hclsyntax.Attribute) {
			if !locationAttrs()[a.Name] {
				return
			}
			v, diags := a.Expr.Value(inst.ctx)
			if diags.HasErrors() {
				v = cty.DynamicVal
			}
			vals, err := strs(v)
			if err != nil {
				out = append(out, fmt.Sprintf("%s: %s = %s %s is %v; a location must be a known EU value", inst, a.Name, m.source(a), pos(a), err))
				return
			}
			for _, l := range vals {
				if !inEU(l) {
					out = append(out, fmt.Sprintf("%s: %s %q %s is not in the EU", inst, a.Name, l, pos(a)))
				}
			}
		})
	}
	return out
}

// inEU reports whether a location, or the region of a zone, is in the EU.
func inEU(l string) bool {
	l = strings.ToLower(l)
	if euLocations()[l] {
		return true
	}
	if i := strings.LastIndex(l, "-"); i > 0 && len(l)-i == 2 && l[i+1] >= 'a' && l[i+1] <= 'z' {
		region := l[:i]
		return euLocations()[region] && strings.Contains(region, "-")
	}
	return false
}

// pos is where an attribute is written: (file:line).
func pos(a *hclsyntax.Attribute) string {
	return fmt.Sprintf("(%s:%d)", a.NameRange.Filename, a.NameRange.Start.Line)
}

// nonEUValue is a value of the variable's type that names a US region, or
// false for variables that cannot hold a location.
func nonEUValue(m *module, name string) (cty.Value, bool) {
	d := m.ctx.Variables["var"].GetAttr(name)
	switch {
	case d.Type() == cty.String:
		return cty.StringVal("us-central1"), true
	case d.Type().IsListType() || d.Type().IsTupleType() || d.Type().IsSetType():
		return cty.ListVal([]cty.Value{cty.StringVal("europe-west1"), cty.StringVal("us-central1")}), true
	}
	return cty.NilVal, false
}

// refusesNonEU checks that the variable's validation fails at plan time
// for the non-EU value bad, with a message, and passes its default.
func refusesNonEU(m *module, name string, bad cty.Value) []string {
	b := m.variables[name]
	badCtx := m.evalContext(map[string]cty.Value{name: bad})
	rejected := false
	for _, vb := range b.Body.Blocks {
		if vb.Type != "validation" {
			continue
		}
		cond, ok := vb.Body.Attributes["condition"]
		msg, hasMsg := vb.Body.Attributes["error_message"]
		if !ok || !hasMsg {
			continue
		}
		if v, diags := cond.Expr.Value(m.ctx); diags.HasErrors() || !v.IsKnown() || v.False() {
			return []string{fmt.Sprintf("var.%s: its validation refuses its own default", name)}
		}
		if v, diags := cond.Expr.Value(badCtx); !diags.HasErrors() && v.IsKnown() && v.False() {
			if s, _ := msg.Expr.Value(badCtx); s.IsKnown() && s.Type() == cty.String && s.AsString() != "" {
				rejected = true
			}
		}
	}
	if !rejected {
		return []string{fmt.Sprintf("var.%s is a location, but no validation with an error message refuses %s", name, bad.GoString())}
	}
	return nil
}

func walkAttrs(b *hclsyntax.Body, fn func(*hclsyntax.Attribute)) {
	for _, a := range b.Attributes {
		fn(a)
	}
	for _, nb := range b.Blocks {
		walkAttrs(nb.Body, fn)
	}
}

func topicsEUAndCMEK(t *testing.T, m *module) []string {
	var out []string
	eu := euLocations()
	for _, inst := range m.all("google_pubsub_topic") {
		if !inst.refers("kms_key_name", "google_kms_crypto_key") {
			out = append(out, fmt.Sprintf("%s: no kms_key_name from our KMS keys", inst))
		}
		v, ok := inst.value("message_storage_policy.allowed_persistence_regions")
		if !ok {
			out = append(out, fmt.Sprintf("%s: no message_storage_policy", inst))
			continue
		}
		vals, err := strs(v)
		if err != nil || len(vals) == 0 {
			out = append(out, fmt.Sprintf("%s: allowed_persistence_regions %v", inst, err))
		}
		for _, r := range vals {
			if !eu[r] {
				out = append(out, fmt.Sprintf("%s: may store messages in %s", inst, r))
			}
		}
	}
	return out
}

func pushSubscriptions(t *testing.T, m *module) []string {
	var out []string
	for _, inst := range m.all("google_pubsub_subscription") {
		if len(blocks(inst.block.Body, "push_config")) == 0 {
			continue
		}
		for _, need := range []string{"push_config.push_endpoint", "push_config.oidc_token.service_account_email",
			"dead_letter_policy.dead_letter_topic", "dead_letter_policy.max_delivery_attempts", "retry_policy.minimum_backoff"} {
			if _, ok := attr(inst.block, need); !ok {
				out = append(out, fmt.Sprintf("%s: push subscription without %s", inst, need))
			}
		}
	}
	return out
}

func cmekEverywhere(t *testing.T, m *module) []string {
	var out []string
	for typ, path := range map[string]string{
		"google_firestore_database": "cmek_config.kms_key_name",
		"google_pubsub_topic":       "kms_key_name",
		"google_storage_bucket":     "encryption.default_kms_key_name",
	} {
		for _, inst := range m.all(typ) {
			if !inst.refers(path, "google_kms_crypto_key") {
				out = append(out, fmt.Sprintf("%s: %s is not one of our KMS keys", inst, path))
			}
		}
	}
	sort.Strings(out)
	return out
}

func ownServiceAccounts(t *testing.T, m *module) []string {
	var out []string
	seen := map[string]string{}
	for _, inst := range m.all("google_cloudfunctions2_function") {
		a, ok := attr(inst.block, "service_config.service_account_email")
		if !ok || !inst.refers("service_config.service_account_email", "google_service_account") {
			out = append(out, fmt.Sprintf("%s: does not run as a service account of its own", inst))
			continue
		}
		id := strings.ReplaceAll(m.source(a), "each.key", fmt.Sprintf("%q", inst.key))
		if other, dup := seen[id]; dup {
			out = append(out, fmt.Sprintf("%s and %s share the service account %s", inst, other, id))
		}
		seen[id] = inst.String()
	}
	return out
}

func noBroadRoles(t *testing.T, m *module) []string {
	var out []string
	scope := regexp.MustCompile(`^google_(project|folder|organization)_iam_(member|binding|policy)$`)
	for _, inst := range m.all("") {
		typ := inst.block.Labels[0]
		if !scope.MatchString(typ) {
			continue
		}
		if strings.HasSuffix(typ, "_policy") {
			out = append(out, fmt.Sprintf("%s: an authoritative policy would replace every other grant", inst))
			continue
		}
		v, _ := inst.value("role")
		roles, err := strs(v)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: role %v", inst, err))
		}
		for _, r := range roles {
			last := strings.ToLower(r[strings.LastIndex(r, ".")+1:])
			if r == "roles/owner" || r == "roles/editor" || strings.HasSuffix(last, "admin") {
				out = append(out, fmt.Sprintf("%s grants %s project-wide", inst, r))
			}
		}
	}
	return out
}

func alerts(t *testing.T, m *module) []string {
	var out []string
	metrics := map[string]bool{}
	for _, inst := range m.all("google_logging_metric") {
		if v, ok := inst.value("name"); ok && v.IsKnown() && v.Type() == cty.String {
			metrics[v.AsString()] = true
		}
	}
	userMetric := regexp.MustCompile(`logging\.googleapis\.com/user/([A-Za-z0-9_/.-]+)`)
	covered := map[string]bool{}
	for _, inst := range m.all("google_monitoring_alert_policy") {
		labels, _ := inst.value("user_labels")
		if !labels.IsKnown() || labels.IsNull() || !labels.Type().IsObjectType() || !labels.Type().HasAttribute("failure_class") {
			continue
		}
		class := labels.GetAttr("failure_class").AsString()
		doc, _ := inst.value("documentation.content")
		if !doc.IsKnown() || doc.Type() != cty.String || len(doc.AsString()) < 40 {
			out = append(out, fmt.Sprintf("%s: its documentation must say what the alert means and what to check first", inst))
		}
		if _, ok := attr(inst.block, "notification_channels"); !ok {
			out = append(out, fmt.Sprintf("%s: notifies nobody", inst))
		}
		conds := blocks(inst.block.Body, "conditions")
		if len(conds) == 0 {
			out = append(out, fmt.Sprintf("%s: no condition", inst))
			continue
		}
		for _, c := range conds {
			walkAttrs(c.Body, func(a *hclsyntax.Attribute) {
				if a.Name != "filter" {
					return
				}
				v, diags := a.Expr.Value(inst.ctx)
				if diags.HasErrors() || !v.IsKnown() || v.Type() != cty.String {
					out = append(out, fmt.Sprintf("%s: filter %s is not known before apply", inst, m.source(a)))
					return
				}
				for _, mm := range userMetric.FindAllStringSubmatch(v.AsString(), -1) {
					if !metrics[mm[1]] {
						out = append(out, fmt.Sprintf("%s: watches metric %s, which no google_logging_metric defines", inst, mm[1]))
					}
				}
			})
		}
		covered[class] = true
	}
	for _, c := range failureClasses() {
		if !covered[c] {
			out = append(out, fmt.Sprintf("failure class %s has no alert policy", c))
		}
	}
	return out
}

func functionsAndEnv(t *testing.T, m *module) []string {
	var out []string
	byName := map[string]instance{}
	for _, inst := range m.all("google_cloudfunctions2_function") {
		if v, ok := inst.value("name"); ok && v.IsKnown() && v.Type() == cty.String {
			byName[v.AsString()] = inst
		}
	}
	for _, f := range deploy.Functions() {
		inst, ok := byName[f.Name]
		if !ok {
			out = append(out, fmt.Sprintf("function %s is not deployed", f.Name))
			continue
		}
		if v, _ := inst.value("build_config.entry_point"); !v.IsKnown() || v.Type() != cty.String || v.AsString() != f.Entry {
			out = append(out, fmt.Sprintf("%s: entry point is not %s", inst, f.Entry))
		}
		if v, _ := inst.value("build_config.runtime"); !v.IsKnown() || v.Type() != cty.String || v.AsString() != runtime {
			out = append(out, fmt.Sprintf("%s: runtime is not %s", inst, runtime))
		}
		env, _ := inst.value("service_config.environment_variables")
		set := map[string]bool{}
		if env.IsKnown() && !env.IsNull() && (env.Type().IsObjectType() || env.Type().IsMapType()) {
			for k := range env.AsValueMap() {
				set[k] = true
			}
		}
		for _, k := range readsEnv(t, f) {
			if !set[k] {
				out = append(out, fmt.Sprintf("%s: %s reads %s, which Terraform does not set", inst, f.Package, k))
			}
		}
	}
	return out
}

// traversalAttr is the name a traversal step selects, or "".
func traversalAttr(s hcl.Traverser) string {
	if a, ok := s.(hcl.TraverseAttr); ok {
		return a.Name
	}
	return ""
}

// readsEnv lists the variables the function's code reads, by running its
// configuration step with an environment that records every lookup.
func readsEnv(t *testing.T, f deploy.Function) []string {
	t.Helper()
	// Clients made while configuring must not look for a cloud: point
	// them at addresses nothing listens on; they dial lazily.
	for _, k := range []string{"FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "KMS_EMULATOR_HOST", "STORAGE_EMULATOR_HOST"} {
		t.Setenv(k, "127.0.0.1:1")
	}
	seen := map[string]bool{}
	getenv := func(k string) string {
		seen[k] = true
		if strings.HasSuffix(k, "_WINDOW") || strings.HasSuffix(k, "_EVERY") || strings.HasSuffix(k, "_AFTER") || strings.HasSuffix(k, "_RETENTION") || strings.HasSuffix(k, "_TTL") ||
			strings.HasSuffix(k, "_TIMEOUT") || strings.HasSuffix(k, "_AGE") || strings.HasSuffix(k, "_BASE") || strings.HasSuffix(k, "_MAX") {
			return "1s"
		}
		if strings.HasSuffix(k, "_RATE") {
			return "1"
		}
		return "x"
	}
	switch f.Package {
	case "github.com/sealedsense/sealedsense/functions/ingest":
		if _, err := ingest.FromEnv(context.Background(), getenv); err != nil {
			t.Fatalf("%s: configuring with every variable set: %v", f.Name, err)
		}
	case "github.com/sealedsense/sealedsense/functions/api":
		if _, err := api.FromEnv(context.Background(), getenv); err != nil {
			t.Fatalf("%s: configuring with every variable set: %v", f.Name, err)
		}
	case "github.com/sealedsense/sealedsense/functions/deliver":
		if _, err := deliver.FromEnv(context.Background(), getenv); err != nil {
			t.Fatalf("%s: configuring with every variable set: %v", f.Name, err)
		}
	case "github.com/sealedsense/sealedsense/functions/backup":
		if _, err := backup.FromEnv(context.Background(), getenv); err != nil {
			t.Fatalf("%s: configuring with every variable set: %v", f.Name, err)
		}
	default:
		t.Fatalf("no way to list the variables %s reads: add its configuration step here", f.Package)
	}
	var out []string
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	if len(out) == 0 {
		t.Fatalf("%s read no variables: the recording is broken", f.Name)
	}
	return out
}

// TestGoLineFitsRuntime: Cloud Run builds with the runtime's Go, which
// refuses a newer go line.
func TestGoLineFitsRuntime(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.ParseLax("go.mod", b, nil)
	if err != nil {
		t.Fatal(err)
	}
	var major, minor int
	if _, err := fmt.Sscanf(f.Go.Version, "%d.%d", &major, &minor); err != nil {
		t.Fatalf("go line %q: %v", f.Go.Version, err)
	}
	if got := fmt.Sprintf("go%d%d", major, minor); got != runtime {
		t.Fatalf("go.mod says go %s, but functions deploy on %s: keep them in step", f.Go.Version, runtime)
	}
}
