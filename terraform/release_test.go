package terraform_test

import (
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

// releaseKeyRef is how a reference to the release-signing key evaluates.
const releaseKeyRef = refOtherKey + "ASYMMETRIC_SIGN:google_kms_crypto_key.release_signing"

// TestReleaseSigningKey: the key that signs what devices install is an
// HSM P-256 signing key that cannot be destroyed, whatever
// key_protection_level says.
func TestReleaseSigningKey(t *testing.T) {
	m := loadDir(t, ".").withVars(map[string]cty.Value{"key_protection_level": cty.StringVal("SOFTWARE")})
	var found []instance
	for _, inst := range m.all("google_kms_crypto_key") {
		if v, _ := inst.value("name"); v.IsKnown() && v.Type() == cty.String && v.AsString() == "release-signing" {
			found = append(found, inst)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d keys named release-signing, want 1", len(found))
	}
	k := found[0]
	for path, want := range map[string]string{
		"purpose": "ASYMMETRIC_SIGN", "version_template.algorithm": "EC_SIGN_P256_SHA256", "version_template.protection_level": "HSM",
	} {
		if v, _ := k.value(path); !v.IsKnown() || v.IsNull() || v.Type() != cty.String || v.AsString() != want {
			t.Errorf("%s: %s = %#v, want %q", k, path, v, want)
		}
	}
	if v, _ := k.value("lifecycle.prevent_destroy"); !v.IsKnown() || v.Type() != cty.Bool || v.False() {
		t.Errorf("%s: lifecycle.prevent_destroy = %#v, want true", k, v)
	}
}

// TestReleaseGrants: only the operators hold grants on the release-signing
// key (sign, read public keys, list versions) and may add release images;
// no function or other identity can sign a release.
func TestReleaseGrants(t *testing.T) {
	ops := []string{"group:release@example.eu", "user:ops@example.eu"}
	m := loadDir(t, ".").withVars(map[string]cty.Value{"operators": cty.SetVal([]cty.Value{cty.StringVal(ops[0]), cty.StringVal(ops[1])})})
	got := map[string][]string{} // role -> members, on the key
	for _, inst := range m.all("") {
		typ := inst.block.Labels[0]
		if !strings.HasSuffix(typ, "_iam_member") && !strings.HasSuffix(typ, "_iam_binding") && !strings.HasSuffix(typ, "_iam_policy") {
			continue
		}
		if key, ok := inst.value("crypto_key_id"); !ok || !key.IsKnown() || key.Type() != cty.String || key.AsString() != releaseKeyRef {
			continue
		}
		role, _ := inst.value("role")
		member, _ := inst.value("member")
		if !strings.HasSuffix(typ, "_iam_member") || !role.IsKnown() || role.Type() != cty.String || !member.IsKnown() || member.Type() != cty.String {
			t.Errorf("%s: a grant on the release-signing key of role %#v to %#v; want a known role to an operator", inst, role, member)
			continue
		}
		got[role.AsString()] = append(got[role.AsString()], member.AsString())
	}
	want := []string{"roles/cloudkms.publicKeyViewer", "roles/cloudkms.signer", "roles/cloudkms.viewer"}
	roles := make([]string, 0, len(got))
	for r, members := range got {
		roles = append(roles, r)
		sort.Strings(members)
		if !slices.Equal(members, ops) {
			t.Errorf("%s on release-signing is held by %v, want the operators %v", r, members, ops)
		}
	}
	sort.Strings(roles)
	if !slices.Equal(roles, want) {
		t.Errorf("roles on release-signing %v, want %v", roles, want)
	}

	uploaders := 0
	for _, inst := range m.all("google_storage_bucket_iam_member") {
		a, _ := attr(inst.block, "bucket")
		if !strings.Contains(m.source(a), `"releases"`) {
			continue
		}
		role, _ := inst.value("role")
		member, _ := inst.value("member")
		if role.AsString() != "roles/storage.objectCreator" || !slices.Contains(ops, member.AsString()) {
			t.Errorf("%s grants %#v to %#v on the releases bucket; want objectCreator to an operator", inst, role, member)
		}
		uploaders++
	}
	if uploaders != len(ops) {
		t.Errorf("%d grants on the releases bucket, want objectCreator to each of %d operators", uploaders, len(ops))
	}
}

// TestReleasesBucket: release images are versioned, so one deleted by
// mistake comes back, and readable only through IAM.
func TestReleasesBucket(t *testing.T) {
	m := loadDir(t, ".")
	for _, inst := range m.all("google_storage_bucket") {
		if inst.key != "releases" {
			continue
		}
		for _, path := range []string{"versioning.enabled", "uniform_bucket_level_access"} {
			if v, _ := inst.value(path); !v.IsKnown() || v.Type() != cty.Bool || v.False() {
				t.Errorf("%s: %s = %#v, want true", inst, path, v)
			}
		}
		return
	}
	t.Fatal("no google_storage_bucket instance keyed releases")
}
