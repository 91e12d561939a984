package api_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"github.com/golang-jwt/jwt/v5"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/custody"
)

// accountID is the id of a credentials file's account.
func accountID(c credentials.ServiceAccount) string { return strings.Split(c.Email, "@")[0] }

// TestKeyBoundToAccount: a Firestore writer who edits a key document's
// account, to act as another account with a key whose secret it holds,
// gets nothing: the wrapped secret is bound to the key's account, so it
// no longer unwraps, and the refusal is logged. A key wrapped before keys
// were bound (only the key id as associated data) still works.
func TestKeyBoundToAccount(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	p := w.tenant.Project
	low := w.account(p, "") // the attacker holds this key's secret
	high := w.account(p, "roles/project.admin")
	if _, err := w.fs.Collection("serviceAccountKeys").Doc(low.creds.KeyID).Update(ctx,
		[]firestore.Update{{Path: "account", Value: accountID(high.creds)}}); err != nil {
		t.Fatal(err)
	}
	// The assertion names the admin, as the edited key document does.
	code, out := low.exchange(low.assertion(func(_ map[string]any, cl jwt.MapClaims) { cl["iss"] = high.creds.Email }))
	if code != 401 {
		t.Fatalf("a key moved to another account exchanged an assertion: %d %v", code, out)
	}
	logs, _ := os.ReadFile(w.logPath)
	if !strings.Contains(string(logs), `"rejected":"key-tampered"`) {
		t.Fatalf("the refusal is not logged as key-tampered:\n%s", logs)
	}

	// A key from before the binding: wrapped with the key id alone.
	const legacyID = "legacykey0000000001"
	secret := custody.Secret("a secret minted before keys were bound")
	wrapped, err := custody.NewWrapper(platformtest.KMS(t), w.keys.APISecrets).Wrap(ctx, secret, []byte("sealedsense/serviceaccount-key/"+legacyID))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.fs.Collection("serviceAccountKeys").Doc(legacyID).Create(ctx, map[string]any{
		"account": accountID(high.creds), "projectId": p, "wrappedSecret": wrapped, "createTime": time.Now()}); err != nil {
		t.Fatal(err)
	}
	legacy := w.client(credentials.ServiceAccount{KeyID: legacyID, Secret: string(secret), Email: high.creds.Email, TokenEndpoint: high.creds.TokenEndpoint})
	must[map[string]any](t, 200)(legacy.call("GET", "/v2/projects/"+p, nil))
}

// TestKeyDoesNotOutliveLaterGrant: a key acts under the grants its
// account had when it was minted, and under grants in the account's own
// project, whose admins list its keys. An admin of P1 mints a key for an
// account with no roles; P2's admin then grants that account a role in
// P2, but cannot see the key: the key gets 403 in P2. A key minted after
// the grant works there.
func TestKeyDoesNotOutliveLaterGrant(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "SEALEDSENSE_API_ACCESS_TTL=1s")
	p1, p2 := w.tenant.Project, w.newProject(w.tenant.Organization, "P2")
	admin1, admin2 := w.account(p1, "roles/project.admin"), w.account(p2, "roles/project.admin")

	acc := must[map[string]any](t, 200)(admin1.call("POST", "/v2/projects/"+p1+"/serviceaccounts", map[string]any{"displayName": "pre-minted"}))
	early := w.client(must[credentials.ServiceAccount](t, 200)(admin1.call("POST", "/v2/"+acc["name"].(string)+"/keys:createCredentialsFile", nil)))
	time.Sleep(10 * time.Millisecond) // the grant is strictly later
	must[map[string]any](t, 200)(admin2.call("POST", "/v2/projects/"+p2+"/members",
		map[string]any{"roles": []string{"roles/project.developer"}, "email": acc["email"]}))
	// P2's admin cannot list the account's keys.
	if code, b := admin2.call("GET", "/v2/"+acc["name"].(string)+"/keys", nil); code != 403 {
		t.Fatalf("P2's admin listed a P1 account's keys: %d %s", code, b)
	}

	if code, b := early.call("GET", "/v2/projects/"+p2+"/devices", nil); code != 403 {
		t.Fatalf("a key minted before the grant in P2 acts there: %d %s", code, b)
	}
	if code, b := early.call("GET", "/v2/projects/"+p2+"/permissions", nil); code != 200 || strings.Contains(string(b), "device.read") {
		t.Fatalf("permissions of the pre-minted key in P2: %d %s", code, b)
	}
	// The account's own project still counts grants made after the key.
	must[map[string]any](t, 200)(admin1.call("POST", "/v2/projects/"+p1+"/members",
		map[string]any{"roles": []string{"roles/project.user"}, "email": acc["email"]}))
	waitStatus(t, w, "GET", "/v2/projects/"+p1+"/devices", "Bearer "+early.token(), 200)

	// A key minted after the grant (by someone who may manage the account
	// in both projects) acts in P2.
	late := w.client(must[credentials.ServiceAccount](t, 200)(w.admin.call("POST", "/v2/"+acc["name"].(string)+"/keys:createCredentialsFile", nil)))
	if code, b := late.call("GET", "/v2/projects/"+p2+"/devices", nil); code != 200 {
		t.Fatalf("a key minted after the grant in P2: %d %s", code, b)
	}
}
