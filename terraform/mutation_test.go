package terraform_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// mutation is a change to a copy of the real module that breaks a policy:
// edits of a file (every occurrence of old becomes new; old must occur),
// new files, or the deletion of a resource block from whichever .tf file
// holds it. When the module moves the text an edit or drop is anchored
// on, the mutation fails loudly: re-anchor it on the module as it is.
type mutation struct {
	name     string
	file     string // the file to edit
	old, new string
	drop     string            // "type.name" of a resource block to delete
	add      map[string]string // new files by path
	caughtBy string            // the policy that must fail
}

// Policy names, as policies() spells them.
const (
	pEU        = "every location is in the EU"
	pOrgPolicy = "the organization's resource-location policy exists when an organization id is given"
	pCMEK      = "everything at rest is under CMEK"
	pDeadLtr   = "the Pub/Sub service agent may dead-letter every subscription"
	pFirestore = "Firestore keeps point-in-time recovery and delete protection"
	pRotation  = "every symmetric key rotates within 90 days"
	pLocal     = "every child module is local, so these policies read it"
	pFunctions = "functions and their images are under CMEK"
	pRising    = "no rising field of a high-write collection keeps a single-field index no query uses"
)

// mutations are the ways issue 16 found the module could be broken while
// every policy test passed, and a few more of the same kinds. Edits are
// anchored on short, stable text.
func mutations() []mutation {
	return []mutation{
		{name: "region validation loosened to any europe- region", caughtBy: pEU,
			file: "variables.tf", old: `], var.region)`, new: `], var.region) || startswith(var.region, "europe-")`},
		{name: "backup locations validation loosened to any europe- region", caughtBy: pEU,
			file: "variables.tf", old: `], l)])`, new: `], l) || startswith(l, "europe-")])`},
		{name: "organization policy on resource locations deleted", caughtBy: pOrgPolicy,
			drop: "google_org_policy_policy.resource_locations"},
		{name: "a US bucket in a .tf.json file", caughtBy: pEU, add: map[string]string{"exports.tf.json": `{
  "resource": {
    "google_storage_bucket": {
      "exports": {
        "name": "${var.project_id}-exports",
        "location": "US",
        "encryption": {"default_kms_key_name": "${google_kms_crypto_key.storage[var.region].id}"}
      }
    }
  }
}`}},
		{name: "a US bucket in a child module", caughtBy: pEU, add: map[string]string{
			"exports.tf": `module "exports" {
  source   = "./modules/exports"
  name     = "${var.project_id}-exports"
  location = "us-central1"
  key      = google_kms_crypto_key.storage[var.region].id
}
`,
			"modules/exports/main.tf": `variable "name" {}
variable "location" {}
variable "key" {}

resource "google_storage_bucket" "exports" {
  name     = var.name
  location = var.location

  encryption {
    default_kms_key_name = var.key
  }
}
`}},
		{name: "a disk in zone us-central1-a", caughtBy: pEU, add: map[string]string{"scratch.tf": `resource "google_compute_disk" "scratch" {
  name = "scratch"
  zone = "us-central1-a"
}
`}},
		{name: "logs kept in the global log bucket location", caughtBy: pEU, add: map[string]string{"logs.tf": `resource "google_logging_project_bucket_config" "logs" {
  project   = var.project_id
  location  = "global"
  bucket_id = "sealedsense"

  cmek_settings {
    kms_key_name = google_kms_crypto_key.symmetric["pubsub"].id
  }
}
`}},
		{name: "an Artifact Registry repository without CMEK", caughtBy: pCMEK,
			file: "functions.tf", old: `  kms_key_name  = google_kms_crypto_key.regional["functions"].id`, new: ``},
		{name: "another Artifact Registry repository without CMEK", caughtBy: pCMEK, add: map[string]string{"registry.tf": `resource "google_artifact_registry_repository" "images" {
  location      = var.region
  repository_id = "images"
  format        = "DOCKER"
}
`}},
		{name: "functions without CMEK", caughtBy: pFunctions,
			file: "functions.tf", old: `  kms_key_name = google_kms_crypto_key.regional["functions"].id`, new: ``},
		{name: "function images in Google's default repository", caughtBy: pFunctions,
			file: "functions.tf", old: `    docker_repository = google_artifact_registry_repository.functions.id`, new: ``},
		{name: "topics' kms_key_name = false ? key : null", caughtBy: pCMEK,
			file: "pubsub.tf", old: `google_kms_crypto_key.symmetric["pubsub"].id`, new: `false ? google_kms_crypto_key.symmetric["pubsub"].id : null`},
		{name: "Firestore's kms_key_name = false ? key : null", caughtBy: pCMEK,
			file: "firestore.tf", old: `google_kms_crypto_key.symmetric["firestore"].id`, new: `false ? google_kms_crypto_key.symmetric["firestore"].id : null`},
		{name: "buckets' key is the signing key", caughtBy: pCMEK,
			file: "storage.tf", old: `google_kms_crypto_key.storage[each.value.location].id`, new: `google_kms_crypto_key.signing.id`},
		{name: "dead-letter publisher grant removed", caughtBy: pDeadLtr,
			drop: "google_pubsub_topic_iam_member.dead_letter_agent"},
		{name: "dead-letter subscriber grants removed", caughtBy: pDeadLtr,
			drop: "google_pubsub_subscription_iam_member.dead_letter_agent"},
		{name: "point-in-time recovery off", caughtBy: pFirestore,
			file: "firestore.tf", old: `"POINT_IN_TIME_RECOVERY_ENABLED"`, new: `"POINT_IN_TIME_RECOVERY_DISABLED"`},
		{name: "delete protection off", caughtBy: pFirestore,
			file: "firestore.tf", old: `"DELETE_PROTECTION_ENABLED"`, new: `"DELETE_PROTECTION_DISABLED"`},
		{name: "the stream's storedAt indexed collection-wide again", caughtBy: pRising,
			file: "firestore.tf", old: `events_stored             = { collection = "events", field = "storedAt" }`, new: ``},
		{name: "devices' links indexed again", caughtBy: pRising,
			file: "firestore.tf", old: `devices_links             = { collection = "devices", field = "links" }`, new: ``},
		{name: "key rotation removed", caughtBy: pRotation,
			file: "kms.tf", old: `rotation_period = "7776000s"`, new: ``},
		{name: "key rotation once a year", caughtBy: pRotation,
			file: "kms.tf", old: `"7776000s"`, new: `"31536000s"`},
		{name: "a module from the registry", caughtBy: pLocal, add: map[string]string{"remote.tf": `module "buckets" {
  source  = "terraform-google-modules/cloud-storage/google"
  version = "~> 9.0"
}
`}},
	}
}

// TestMutationsAreCaught applies each mutation to a copy of the module and
// requires the policy it breaks to report a failure the real module does
// not have.
func TestMutationsAreCaught(t *testing.T) {
	real := loadDir(t, ".")
	baseline := failures(t, real)
	for _, mu := range mutations() {
		t.Run(mu.name, func(t *testing.T) {
			if _, ok := baseline[mu.caughtBy]; !ok {
				t.Fatalf("no policy is named %q", mu.caughtBy)
			}
			dir := t.TempDir()
			for name, src := range real.files {
				write(t, filepath.Join(dir, name), src)
			}
			mu.apply(t, dir)
			got := failures(t, loadDir(t, dir))
			var caught []string
			for _, p := range sortedKeys(got) {
				if added := without(got[p], baseline[p]); len(added) > 0 {
					caught = append(caught, p)
					t.Logf("%s: %s", p, strings.Join(added, "; "))
				}
			}
			if !contains(caught, mu.caughtBy) {
				t.Errorf("policy %q did not fail on the mutated module (policies that did: %q)", mu.caughtBy, caught)
			}
		})
	}
}

func (mu mutation) apply(t *testing.T, dir string) {
	t.Helper()
	if mu.file != "" {
		p := filepath.Join(dir, mu.file)
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("mutation %q: %v", mu.name, err)
		}
		if !bytes.Contains(src, []byte(mu.old)) {
			t.Fatalf("mutation %q: %s no longer contains %q: re-anchor the mutation on the module as it is now", mu.name, mu.file, mu.old)
		}
		write(t, p, bytes.ReplaceAll(src, []byte(mu.old), []byte(mu.new)))
	}
	if mu.drop != "" {
		dropResource(t, dir, mu.name, mu.drop)
	}
	for name, src := range mu.add {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("mutation %q: the module already has %s: rename the mutation's file", mu.name, name)
		}
		write(t, p, []byte(src))
	}
}

// dropResource deletes the resource block addr ("type.name") from the
// one .tf file that holds it.
func dropResource(t *testing.T, dir, mutation, addr string) {
	t.Helper()
	typ, name, _ := strings.Cut(addr, ".")
	paths, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, p := range paths {
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f, diags := hclsyntax.ParseConfig(src, p, hcl.InitialPos)
		if diags.HasErrors() {
			t.Fatalf("%s: %s", p, diags.Error())
		}
		for _, b := range f.Body.(*hclsyntax.Body).Blocks {
			if b.Type == "resource" && b.Labels[0] == typ && b.Labels[1] == name {
				r := b.Range()
				write(t, p, append(append([]byte{}, src[:r.Start.Byte]...), src[r.End.Byte:]...))
				found++
			}
		}
	}
	if found != 1 {
		t.Fatalf("mutation %q: the module's .tf files hold %d resources %s, not one: re-anchor the mutation on the module as it is now", mutation, found, addr)
	}
}

// failures runs every policy on m: the failures of each, by policy name,
// with file:line taken out so that a mutation that moves lines does not
// make old failures look new.
func failures(t *testing.T, m *module) map[string][]string {
	t.Helper()
	at := regexp.MustCompile(` \([^() ]+:[0-9]+\)`)
	out := map[string][]string{}
	for _, p := range policies() {
		out[p.name] = []string{}
		for _, v := range p.check(t, m) {
			out[p.name] = append(out[p.name], at.ReplaceAllString(v, ""))
		}
	}
	return out
}

func without(got, base []string) []string {
	var out []string
	for _, g := range got {
		if !contains(base, g) {
			out = append(out, g)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func write(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
