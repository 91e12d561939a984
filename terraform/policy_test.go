package terraform_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
	"golang.org/x/mod/modfile"

	"github.com/sealedsense/sealedsense/functions/api"
	"github.com/sealedsense/sealedsense/functions/backup"
	"github.com/sealedsense/sealedsense/functions/datarights"
	"github.com/sealedsense/sealedsense/functions/deliver"
	"github.com/sealedsense/sealedsense/functions/ingest"
	"github.com/sealedsense/sealedsense/functions/operator"
	"github.com/sealedsense/sealedsense/functions/studio"
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
		"key_backup_failed", "key_backup_stale", "key_backup_unchecked", "api_auth_failures", "sweep_not_running", "push_backlog_age",
		"connector_offline_long", "device_anomaly_rate", "device_anomaly_security"}
}

// runtime is the Cloud Run functions runtime of the go.mod's go line.
const runtime = "go126"

type policy struct {
	name  string
	check func(t *testing.T, m *module) []string
	// bad are modules that each break the policy, and nothing else it needs.
	bad []string
}

func policies() []policy {
	return []policy{
		{name: "every location is in the EU", check: euOnly, bad: []string{`
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
}`, `
variable "region" {
  default = "europe-west1"
  validation {
    condition     = startswith(var.region, "europe-")
    error_message = "The region must be in Europe."
  }
}
resource "google_cloudfunctions2_function" "f" {
  location = var.region
}`, `
resource "google_compute_instance" "vm" {
  zone = "us-central1-a"
}`}},
		{name: "the organization's resource-location policy exists when an organization id is given", check: orgLocationPolicy, bad: []string{`
variable "organization_id" {
  default = ""
}
resource "google_org_policy_policy" "resource_locations" {
  count  = var.organization_id == "" ? 1 : 0
  name   = "organizations/${var.organization_id}/policies/gcp.resourceLocations"
  parent = "organizations/${var.organization_id}"
  spec {
    rules {
      values {
        allowed_values = ["in:eu-locations"]
      }
    }
  }
}`, `
variable "organization_id" {
  default = ""
}
resource "google_org_policy_policy" "resource_locations" {
  count  = var.organization_id == "" ? 0 : 1
  name   = "organizations/${var.organization_id}/policies/gcp.resourceLocations"
  parent = "organizations/${var.organization_id}"
  spec {
    rules {
      allow_all = "TRUE"
    }
  }
}`}},
		{name: "every topic keeps messages in the EU under CMEK", check: topicsEUAndCMEK, bad: []string{`
resource "google_kms_crypto_key" "k" {}
resource "google_pubsub_topic" "t" {
  kms_key_name = google_kms_crypto_key.k.id
}`}},
		{name: "every push subscription has a dead-letter policy and OIDC", check: pushSubscriptions, bad: []string{`
resource "google_pubsub_subscription" "s" {
  push_config {
    push_endpoint = "https://example.eu/x"
  }
  dead_letter_policy {
    dead_letter_topic     = "projects/p/topics/dead-letter"
    max_delivery_attempts = 5
  }
}`}},
		{name: "the Pub/Sub service agent may dead-letter every subscription", check: deadLetterGrants, bad: []string{`
data "google_project" "this" {}
resource "google_pubsub_topic" "dead_letter" {}
resource "google_pubsub_subscription" "s" {
  push_config {
    push_endpoint = "https://example.eu/x"
  }
  dead_letter_policy {
    dead_letter_topic = google_pubsub_topic.dead_letter.id
  }
}
resource "google_pubsub_topic_iam_member" "publishes" {
  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}`, `
resource "google_project_service_identity" "pubsub" {
  service = "pubsub.googleapis.com"
}
resource "google_pubsub_topic" "dead_letter" {}
resource "google_pubsub_topic" "other" {}
resource "google_pubsub_subscription" "s" {
  dead_letter_policy {
    dead_letter_topic = google_pubsub_topic.dead_letter.id
  }
}
resource "google_pubsub_topic_iam_member" "publishes" {
  topic  = google_pubsub_topic.other.id
  role   = "roles/pubsub.publisher"
  member = google_project_service_identity.pubsub.member
}
resource "google_pubsub_subscription_iam_member" "acks" {
  subscription = google_pubsub_subscription.s.id
  role         = "roles/pubsub.subscriber"
  member       = google_project_service_identity.pubsub.member
}`}},
		{name: "everything at rest is under CMEK", check: cmekEverywhere, bad: []string{`
resource "google_kms_crypto_key" "k" {}
resource "google_firestore_database" "d" {
  location_id = "eur3"
  cmek_config {
    kms_key_name = google_kms_crypto_key.k.id
  }
}
resource "google_storage_bucket" "b" {
  location = "EU"
}`, `
resource "google_kms_crypto_key" "k" {}
resource "google_pubsub_topic" "t" {
  kms_key_name = false ? google_kms_crypto_key.k.id : null
}`, `
resource "google_artifact_registry_repository" "r" {
  location      = "europe-west1"
  repository_id = "functions"
  format        = "DOCKER"
}`, `
resource "google_kms_crypto_key" "signing" {
  purpose = "ASYMMETRIC_SIGN"
}
resource "google_logging_project_bucket_config" "logs" {
  location  = "europe-west1"
  bucket_id = "eu"
  cmek_settings {
    kms_key_name = google_kms_crypto_key.signing.id
  }
}`}},
		{name: "functions and their images are under CMEK", check: functionsCMEK, bad: []string{`
resource "google_kms_crypto_key" "k" {}
resource "google_cloudfunctions2_function" "fn" {
  kms_key_name = google_kms_crypto_key.k.id
  build_config {
    docker_repository = "projects/p/locations/europe-west1/repositories/gcf-artifacts"
  }
}`}},
		{name: "Firestore keeps point-in-time recovery and delete protection", check: firestoreRecovery, bad: []string{`
resource "google_firestore_database" "d" {
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_DISABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
}`, `
resource "google_firestore_database" "d" {
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
}`}},
		{name: pRising, check: risingUnindexed, bad: []string{`
resource "google_firestore_field" "ttl" {
  collection = "events"
  field      = "expireAt"
  ttl_config {}
}`, `
resource "google_firestore_field" "handshakes" {
  collection = "devices"
  field      = "lastHandshakeNs"
  index_config {}
}`}},
		{name: "every symmetric key rotates within 90 days", check: keyRotation, bad: []string{`
resource "google_kms_crypto_key" "k" {
  purpose = "ENCRYPT_DECRYPT"
}`, `
resource "google_kms_crypto_key" "k" {
  rotation_period = "31536000s"
}`}},
		{name: "every child module is local, so these policies read it", check: localModules, bad: []string{`
module "storage" {
  source = "terraform-google-modules/cloud-storage/google"
}`}},
		{name: "each function runs as its own service account", check: ownServiceAccounts, bad: []string{`
resource "google_service_account" "shared" {}
resource "google_cloudfunctions2_function" "fn" {
  for_each = toset(["a", "b"])
  service_config {
    service_account_email = google_service_account.shared.email
  }
}`}},
		{name: "no project-wide owner, editor or admin role", check: noBroadRoles, bad: []string{`
resource "google_project_iam_member" "m" {
  role = "roles/pubsub.admin"
}`}},
		{name: "every failure class has an alert policy", check: alerts, bad: []string{`
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
}`}},
		{name: "functions get every variable their code reads", check: functionsAndEnv, bad: []string{`
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
}`}},
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
			if len(p.bad) == 0 {
				t.Fatal("the policy has no bad snippet: nothing shows it can fail")
			}
			for n, bad := range p.bad {
				m := load(t, map[string][]byte{"bad.tf": []byte(bad)})
				if v := p.check(t, m); len(v) == 0 {
					t.Errorf("the policy passed bad snippet %d, a module that breaks it:\n%s", n, bad)
				} else {
					t.Logf("snippet %d caught: %s", n, strings.Join(v, "; "))
				}
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
	// A variable is a location if a non-EU value of it moves anything
	// else out of the EU, directly or through locals, for_each and child
	// modules: then its validation must refuse that value at plan time.
	names := make([]string, 0, len(m.variables))
	for name := range m.variables {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		bad := nonEUValues(m, name)
		if len(bad) == 0 || len(without(locationsOutsideEU(m.withVars(map[string]cty.Value{name: bad[0]})), out)) == 0 {
			continue
		}
		for _, b := range bad {
			out = append(out, refusesNonEU(m, name, b)...)
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

// nonEUValues are values of the variable's type that name a region
// outside the EU: a US one, and the two in Europe but not in the EU that a
// validation such as startswith(var.region, "europe-") lets through. None
// for variables that cannot hold a location.
func nonEUValues(m *module, name string) []cty.Value {
	d := m.ctx.Variables["var"].GetAttr(name)
	var out []cty.Value
	for _, r := range []string{"us-central1", "europe-west2", "europe-west6"} {
		switch {
		case d.Type() == cty.String:
			out = append(out, cty.StringVal(r))
		case d.Type().IsListType() || d.Type().IsTupleType() || d.Type().IsSetType():
			out = append(out, cty.ListVal([]cty.Value{cty.StringVal("europe-west1"), cty.StringVal(r)}))
		}
	}
	return out
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
			return []string{fmt.Sprintf("var.%s %s: its validation refuses its own default", name, at(b))}
		}
		if v, diags := cond.Expr.Value(badCtx); !diags.HasErrors() && v.IsKnown() && v.False() {
			if s, _ := msg.Expr.Value(badCtx); s.IsKnown() && s.Type() == cty.String && s.AsString() != "" {
				rejected = true
			}
		}
	}
	if !rejected {
		return []string{fmt.Sprintf("var.%s %s is a location, but no validation with an error message refuses %s", name, at(b), bad.GoString())}
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
		if problem := cmekKey(m, inst, "kms_key_name"); problem != "" {
			out = append(out, problem)
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

// cmekPaths are, by resource type, the attribute that names the key
// its data rests under.
func cmekPaths() map[string]string {
	return map[string]string{
		"google_firestore_database":            "cmek_config.kms_key_name",
		"google_pubsub_topic":                  "kms_key_name",
		"google_storage_bucket":                "encryption.default_kms_key_name",
		"google_artifact_registry_repository":  "kms_key_name",
		"google_logging_project_bucket_config": "cmek_settings.kms_key_name",
		"google_logging_organization_settings": "kms_key_name",
	}
}

func cmekEverywhere(t *testing.T, m *module) []string {
	var out []string
	for typ, path := range cmekPaths() {
		for _, inst := range m.all(typ) {
			if problem := cmekKey(m, inst, path); problem != "" {
				out = append(out, problem)
			}
		}
	}
	sort.Strings(out)
	return out
}

// cmekKey says what is wrong with the key the attribute at path names,
// or "" when it is a symmetric google_kms_crypto_key of this module. The
// value is evaluated, so a conditional or a local that yields null or
// another key is caught, not only a missing reference.
func cmekKey(m *module, inst instance, path string) string {
	a, ok := attr(inst.block, path)
	if !ok {
		return fmt.Sprintf("%s: no %s: its data would rest under a Google-managed key", inst, path)
	}
	v, diags := a.Expr.Value(inst.ctx)
	var got string
	switch {
	case diags.HasErrors():
		got = "does not evaluate: " + diags.Error()
	case !v.IsKnown():
		got = "is not known before apply"
	case v.IsNull():
		got = "is null"
	case v.Type() != cty.String:
		got = "is a " + v.Type().FriendlyName()
	case strings.HasPrefix(v.AsString(), refSymmetricKey):
		return ""
	default:
		got = fmt.Sprintf("names %q", v.AsString())
	}
	return fmt.Sprintf("%s: %s = %s %s %s; it must name a symmetric google_kms_crypto_key of this module", inst, path, m.source(a), pos(a), got)
}

// functionsCMEK: a function's source, image and runtime data rest under
// our key, and its image in our CMEK repository, not in gcf-artifacts.
func functionsCMEK(t *testing.T, m *module) []string {
	var out []string
	for _, inst := range m.all("google_cloudfunctions2_function") {
		if problem := cmekKey(m, inst, "kms_key_name"); problem != "" {
			out = append(out, problem)
		}
		v, ok := inst.value("build_config.docker_repository")
		if !ok || !v.IsKnown() || v.IsNull() || v.Type() != cty.String || !strings.HasPrefix(v.AsString(), refRepository) {
			out = append(out, fmt.Sprintf("%s: build_config.docker_repository is not a google_artifact_registry_repository of this module", inst))
		}
	}
	return out
}

// orgLocationPolicy: given an organization id (var.organization_id, or
// var.org_id), the module sets the gcp.resourceLocations policy, allowing
// EU locations only (euOnly checks the values): the guard against anything
// added by hand outside the EU.
func orgLocationPolicy(t *testing.T, m *module) []string {
	withOrg := m.withVars(map[string]cty.Value{"organization_id": cty.StringVal("123"), "org_id": cty.StringVal("123")})
	var out []string
	found := 0
	for _, inst := range withOrg.all("") {
		var rules []*hclsyntax.Block
		switch inst.block.Labels[0] {
		case "google_org_policy_policy":
			if !names(withOrg, inst, "name", "/policies/gcp.resourceLocations") {
				continue
			}
			rules = blocks(inst.block.Body, "rules")
		case "google_project_organization_policy", "google_folder_organization_policy", "google_organization_policy":
			if !names(withOrg, inst, "constraint", "gcp.resourceLocations") {
				continue
			}
			rules = blocks(inst.block.Body, "list_policy")
		default:
			continue
		}
		found++
		allowed := 0
		for _, r := range rules {
			walkAttrs(r.Body, func(a *hclsyntax.Attribute) {
				v, diags := a.Expr.Value(inst.ctx)
				switch {
				case a.Name == "allowed_values" || (a.Name == "values" && strings.Contains(withOrg.source(a), "eu-locations")):
					if vals, err := strs(v); err == nil {
						allowed += len(vals)
					}
				case a.Name == "allow_all" || a.Name == "all" || a.Name == "enforce":
					if diags.HasErrors() || opens(a.Name, v) {
						out = append(out, fmt.Sprintf("%s: %s = %s %s opens the policy", inst, a.Name, withOrg.source(a), pos(a)))
					}
				}
			})
		}
		if allowed == 0 {
			out = append(out, fmt.Sprintf("%s: its rules allow no list of EU locations", inst))
		}
	}
	if found == 0 {
		out = append(out, `with organization_id = "123", the module sets no gcp.resourceLocations organization policy (google_org_policy_policy): nothing would stop a resource added by hand outside the EU`)
	}
	return out
}

// opens reports whether a rule's switch lets any location through:
// allow_all = "TRUE", all = true, enforce = "FALSE", or one not known.
func opens(name string, v cty.Value) bool {
	if !v.IsKnown() || v.IsNull() {
		return true
	}
	on := (v.Type() == cty.Bool && v.True()) || (v.Type() == cty.String && strings.EqualFold(v.AsString(), "TRUE"))
	if name == "enforce" {
		return !on
	}
	return on
}

// names reports whether the attribute's value ends with suffix or, when
// it is not known before apply, is written with it.
func names(m *module, inst instance, path, suffix string) bool {
	a, ok := attr(inst.block, path)
	if !ok {
		return false
	}
	v, diags := a.Expr.Value(inst.ctx)
	if !diags.HasErrors() && v.IsKnown() && !v.IsNull() && v.Type() == cty.String {
		return strings.HasSuffix(v.AsString(), suffix)
	}
	return strings.Contains(m.source(a), suffix)
}

// pubsubAgent is the Pub/Sub service agent, as the module builds its
// address or as google_project_service_identity gives it.
var pubsubAgent = regexp.MustCompile(`^serviceAccount:(service-[^@]+@gcp-sa-pubsub\.iam\.gserviceaccount\.com|` + regexp.QuoteMeta(refAgent+"pubsub.googleapis.com") + `)$`)

// deadLetterGrants: Pub/Sub moves a message to the dead-letter topic as
// its service agent, which must publish there and acknowledge on the
// source subscription; without either grant failed messages are retried
// forever instead and the dead-letter alert never fires.
func deadLetterGrants(t *testing.T, m *module) []string {
	granted := map[string]bool{} // "role target" the agent holds
	for _, inst := range m.all("") {
		target := ""
		switch inst.block.Labels[0] {
		case "google_pubsub_topic_iam_member", "google_pubsub_topic_iam_binding":
			target = "topic"
		case "google_pubsub_subscription_iam_member", "google_pubsub_subscription_iam_binding":
			target = "subscription"
		default:
			continue
		}
		role, _ := inst.value("role")
		on, _ := inst.value(target)
		if !role.IsKnown() || role.IsNull() || role.Type() != cty.String || !on.IsKnown() || on.IsNull() || on.Type() != cty.String {
			continue
		}
		for _, path := range []string{"member", "members"} {
			v, _ := inst.value(path)
			members, _ := strs(v)
			for _, mem := range members {
				if pubsubAgent.MatchString(mem) {
					granted[role.AsString()+" "+on.AsString()] = true
				}
			}
		}
	}
	var out []string
	for _, sub := range m.all("google_pubsub_subscription") {
		if len(blocks(sub.block.Body, "dead_letter_policy")) == 0 {
			continue
		}
		dlt, _ := sub.value("dead_letter_policy.dead_letter_topic")
		if !dlt.IsKnown() || dlt.IsNull() || dlt.Type() != cty.String || !strings.HasPrefix(dlt.AsString(), refTopic) {
			out = append(out, fmt.Sprintf("%s: dead_letter_policy.dead_letter_topic is not a google_pubsub_topic of this module", sub))
			continue
		}
		if !granted["roles/pubsub.publisher "+dlt.AsString()] {
			out = append(out, fmt.Sprintf("%s: the Pub/Sub service agent may not publish to its dead-letter topic %s: no grant of roles/pubsub.publisher on it", sub, strings.TrimPrefix(dlt.AsString(), refTopic)))
		}
		if !granted["roles/pubsub.subscriber "+refSubscription+sub.addr()] {
			out = append(out, fmt.Sprintf("%s: the Pub/Sub service agent may not acknowledge on it: no grant of roles/pubsub.subscriber on it, so nothing is dead-lettered", sub))
		}
	}
	return out
}

// firestoreRecovery: a bad write or a deleted collection can be undone
// for seven days, and the database cannot be deleted while it is on.
func firestoreRecovery(t *testing.T, m *module) []string {
	var out []string
	for _, inst := range m.all("google_firestore_database") {
		for _, want := range [][2]string{
			{"point_in_time_recovery_enablement", "POINT_IN_TIME_RECOVERY_ENABLED"},
			{"delete_protection_state", "DELETE_PROTECTION_ENABLED"},
		} {
			v, ok := inst.value(want[0])
			if !ok {
				out = append(out, fmt.Sprintf("%s: no %s; want %q", inst, want[0], want[1]))
			} else if !v.IsKnown() || v.IsNull() || v.Type() != cty.String || v.AsString() != want[1] {
				a, _ := attr(inst.block, want[0])
				out = append(out, fmt.Sprintf("%s: %s = %s %s; want %q", inst, want[0], m.source(a), pos(a), want[1]))
			}
		}
	}
	return out
}

// maxRotation is the longest a symmetric key may serve before rotating.
const maxRotation = 90 * 24 * time.Hour

// keyRotation: every symmetric key rotates at least every 90 days, so a
// leaked key version exposes only what it wrapped in its period.
// Asymmetric keys cannot rotate automatically and are exempt.
func keyRotation(t *testing.T, m *module) []string {
	var out []string
	rotation := regexp.MustCompile(`^([0-9]+)s$`)
	for _, inst := range m.all("google_kms_crypto_key") {
		if p, ok := inst.value("purpose"); ok && !(p.IsKnown() && !p.IsNull() && p.Type() == cty.String && p.AsString() == "ENCRYPT_DECRYPT") {
			continue
		}
		a, ok := attr(inst.block, "rotation_period")
		if !ok {
			out = append(out, fmt.Sprintf("%s: a symmetric key without rotation_period never rotates; want at most %.0fs", inst, maxRotation.Seconds()))
			continue
		}
		v, _ := inst.value("rotation_period")
		var mm []string
		if v.IsKnown() && !v.IsNull() && v.Type() == cty.String {
			mm = rotation.FindStringSubmatch(v.AsString())
		}
		secs := int64(-1)
		if mm != nil {
			secs, _ = strconv.ParseInt(mm[1], 10, 64)
		}
		if secs < 86400 || time.Duration(secs)*time.Second > maxRotation {
			out = append(out, fmt.Sprintf("%s: rotation_period = %s %s; want 86400s to %.0fs", inst, m.source(a), pos(a), maxRotation.Seconds()))
		}
	}
	return out
}

// localModules: a module from a registry or a repository is not read by
// these tests, so nothing would check where it keeps data.
func localModules(t *testing.T, m *module) []string {
	var out []string
	for _, mm := range m.modules() {
		for _, r := range mm.remote {
			out = append(out, fmt.Sprintf("%s%s: these policies cannot read it; vendor it as a local module (./...)", mm.addr, r))
		}
	}
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
	byName, configured := functionsByName(m), functionsByName(m.withVars(optionalsSet(m)))
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
		// A secret may be mounted only once an optional variable is set
		// (Studio's, once its client id is): look with every one set.
		mounted := map[string]bool{}
		if c, ok := configured[f.Name]; ok {
			mounted = secretEnv(c)
		}
		reads := readsEnv(t, f)
		for k := range set {
			if secretOnly()[k] {
				out = append(out, fmt.Sprintf("%s: Terraform sets %s as a plain variable; it must come from Secret Manager (secret_environment_variables)", inst, k))
			}
		}
		for k := range mounted {
			switch {
			case !secretOnly()[k]:
				out = append(out, fmt.Sprintf("%s: mounts %s from Secret Manager, which secretOnly does not list", inst, k))
			case !contains(reads, k):
				out = append(out, fmt.Sprintf("%s: mounts the secret %s, which %s does not read", inst, k, f.Package))
			}
		}
		for _, k := range reads {
			switch {
			case localOnly()[k] && (set[k] || mounted[k]):
				out = append(out, fmt.Sprintf("%s: Terraform sets %s, which only a local run may set", inst, k))
			case secretOnly()[k] && !mounted[k]:
				out = append(out, fmt.Sprintf("%s: %s reads %s, which Terraform does not mount from Secret Manager", inst, f.Package, k))
			case !localOnly()[k] && !secretOnly()[k] && !set[k]:
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

// localOnly are variables only a local run sets (a key file to sign
// export URLs with, the storage emulator's origin): in GCP they stay
// unset, so the recording answers them empty and Terraform must not set
// them.
func localOnly() map[string]bool {
	return map[string]bool{"SEALEDSENSE_URL_SIGNER": true, "STORAGE_EMULATOR_HOST": true}
}

// secretOnly are variables that hold a secret: Terraform mounts them from
// Secret Manager (service_config.secret_environment_variables), never as a
// plain environment variable, which anyone who may read the function sees.
// Studio mounts its client secret only once a client id is set (a secret
// with no version fails the deployment), and reads it empty until then.
func secretOnly() map[string]bool {
	return map[string]bool{"SEALEDSENSE_STUDIO_CLIENT_SECRET": true}
}

// functionsByName are the module's functions by their name.
func functionsByName(m *module) map[string]instance {
	out := map[string]instance{}
	for _, inst := range m.all("google_cloudfunctions2_function") {
		if v, ok := inst.value("name"); ok && v.IsKnown() && v.Type() == cty.String {
			out[v.AsString()] = inst
		}
	}
	return out
}

// optionalsSet gives every variable that is off by default (an empty
// string) a value: the module as configured with every option on.
func optionalsSet(m *module) map[string]cty.Value {
	out := map[string]cty.Value{}
	for name := range m.variables {
		if v := m.ctx.Variables["var"].GetAttr(name); v.IsKnown() && v.Type() == cty.String && v.AsString() == "" {
			out[name] = cty.StringVal("set-" + name)
		}
	}
	return out
}

// secretEnv are the variables the function mounts from Secret Manager:
// the keys of its secret_environment_variables blocks, written or
// dynamic. A dynamic block counts unless its for_each is known to be
// empty for this instance.
func secretEnv(inst instance) map[string]bool {
	out := map[string]bool{}
	key := func(b *hclsyntax.Body) {
		if a, ok := b.Attributes["key"]; ok {
			if v, diags := a.Expr.Value(inst.ctx); !diags.HasErrors() && v.IsKnown() && v.Type() == cty.String {
				out[v.AsString()] = true
			}
		}
	}
	var walk func(b *hclsyntax.Body)
	walk = func(b *hclsyntax.Body) {
		for _, nb := range b.Blocks {
			switch {
			case nb.Type == "secret_environment_variables":
				key(nb.Body)
			case nb.Type == "dynamic" && len(nb.Labels) == 1 && nb.Labels[0] == "secret_environment_variables":
				if fe, ok := nb.Body.Attributes["for_each"]; ok {
					v, diags := fe.Expr.Value(inst.ctx)
					if !diags.HasErrors() && v.IsKnown() && !v.IsNull() && v.CanIterateElements() && v.LengthInt() == 0 {
						continue
					}
				}
				for _, c := range nb.Body.Blocks {
					if c.Type == "content" {
						key(c.Body)
					}
				}
			default:
				walk(nb.Body)
			}
		}
	}
	walk(inst.block.Body)
	return out
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
		if localOnly()[k] {
			return ""
		}
		if strings.HasSuffix(k, "_WINDOW") || strings.HasSuffix(k, "_EVERY") || strings.HasSuffix(k, "_AFTER") || strings.HasSuffix(k, "_RETENTION") || strings.HasSuffix(k, "_TTL") ||
			strings.HasSuffix(k, "_TIMEOUT") || strings.HasSuffix(k, "_AGE") || strings.HasSuffix(k, "_BASE") || strings.HasSuffix(k, "_MAX") || strings.HasSuffix(k, "_FLOOR") ||
			strings.HasSuffix(k, "_BUDGET") || strings.HasSuffix(k, "_IDLE") || strings.HasSuffix(k, "_ABSOLUTE") {
			return "1s"
		}
		if strings.HasSuffix(k, "_RATE") || strings.HasSuffix(k, "_FACTOR") {
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
	case "github.com/sealedsense/sealedsense/functions/datarights":
		if _, err := datarights.FromEnv(context.Background(), getenv); err != nil {
			t.Fatalf("%s: configuring with every variable set: %v", f.Name, err)
		}
	case "github.com/sealedsense/sealedsense/functions/operator":
		if _, err := operator.FromEnv(context.Background(), getenv); err != nil {
			t.Fatalf("%s: configuring with every variable set: %v", f.Name, err)
		}
	case "github.com/sealedsense/sealedsense/functions/studio":
		if _, err := studio.FromEnv(context.Background(), getenv); err != nil {
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
