package api_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/functions/api"
	"github.com/sealedsense/sealedsense/shared/token"
)

// Ranks of the callers of the authorization table.
const (
	rankNone = iota
	rankUser
	rankDeveloper
	rankAdmin
	rankOrgAdmin
	rankAny = -1 // any authenticated caller
)

type caller struct {
	name string
	rank int    // on the project under test; rankNone for strangers
	auth string // the Authorization header
	c    *client
}

// cell prepares one request for a caller: fresh targets where the request
// changes or deletes something, so every cell sees the same world.
type cell struct {
	min     int // the lowest rank that may, or rankAny
	prepare func(w *world, p string, who caller) (method, path string, body any)
}

func TestAuthorizationTable(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "SEALEDSENSE_API_RATE=10000")
	p := w.tenant.Project
	org := w.tenant.Organization
	devs := w.devices(p, "", 1)
	d1 := devs[0]
	userC := w.account(p, "roles/project.user")
	callers := []caller{
		{name: "organization admin", rank: rankOrgAdmin, c: w.admin},
		{name: "project admin", rank: rankAdmin, c: w.account(p, "roles/project.admin")},
		{name: "developer", rank: rankDeveloper, c: w.account(p, "roles/project.developer")},
		{name: "user", rank: rankUser, c: userC},
		{name: "no role", rank: rankNone, c: w.account(p, "")},
	}
	// An organization admin of another organization.
	other, err := w.store.Bootstrap(context.Background(), "Other", "", "Other main", w.base+"/oauth2/token")
	if err != nil {
		t.Fatal(err)
	}
	callers = append(callers, caller{name: "another organization's admin", rank: rankNone, c: w.client(other.Credentials)})
	for i := range callers {
		callers[i].auth = "Bearer " + callers[i].c.token()
	}
	// People, as Studio serves them: the same roles, the same answers.
	if err := w.store.GrantPerson(context.Background(), org, "Boss@Acme.example"); err != nil {
		t.Fatal(err)
	}
	must[map[string]any](t, 200)(w.admin.call("POST", "/v2/projects/"+p+"/members", map[string]any{"roles": []string{"roles/project.developer"}, "email": "dev@acme.example"}))
	if err := w.store.GrantPerson(context.Background(), other.Organization, "rival@other.example"); err != nil {
		t.Fatal(err)
	}
	callers = append(callers,
		caller{name: "person, organization admin", rank: rankOrgAdmin, auth: personAuth("boss@acme.example")},
		caller{name: "person, developer", rank: rankDeveloper, auth: personAuth("dev@acme.example")},
		caller{name: "person with no role", rank: rankNone, auth: personAuth("stranger@acme.example")},
		caller{name: "person, another organization's admin", rank: rankNone, auth: personAuth("rival@other.example")},
	)
	// Tokens that must fail authentication everywhere.
	kc := platformtest.KMS(t)
	signer := token.NewSigner(kc, w.keys.Signing+"/cryptoKeyVersions/1")
	claims := func(iat time.Time, aud string) token.Claims {
		return token.Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: w.base, Audience: jwt.ClaimStrings{aud}, Subject: w.admin.creds.Email,
			IssuedAt: jwt.NewNumericDate(iat), ExpiresAt: jwt.NewNumericDate(iat.Add(time.Hour))}, Account: w.tenant.Account, Key: w.admin.creds.KeyID}
	}
	expired, err := signer.Sign(context.Background(), claims(time.Now().Add(-2*time.Hour), w.base))
	if err != nil {
		t.Fatal(err)
	}
	wrongAud, _ := signer.Sign(context.Background(), claims(time.Now(), "https://elsewhere.example"))
	good := w.admin.token()
	parts := strings.Split(good, ".")
	tamperedClaims := strings.Replace(parts[1], parts[1][10:11], map[bool]string{true: "A", false: "B"}[parts[1][10:11] != "A"], 1)
	rogueKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rogue := jwt.NewWithClaims(jwt.SigningMethodES256, claims(time.Now(), w.base))
	rogue.Header["kid"] = token.KeyID(w.keys.Signing + "/cryptoKeyVersions/1")
	rogueTok, _ := rogue.SignedString(rogueKey)
	for _, bad := range []struct{ name, auth string }{
		{"expired token", "Bearer " + expired},
		{"tampered token", "Bearer " + parts[0] + "." + tamperedClaims + "." + parts[2]},
		{"token signed by an unknown key", "Bearer " + rogueTok},
		{"token for another audience", "Bearer " + wrongAud},
		{"no credentials", ""},
	} {
		callers = append(callers, caller{name: bad.name, rank: -2, auth: bad.auth})
	}

	fresh := func(w *world) string { // a fresh service account in p, its resource name
		acc := must[map[string]any](t, 200)(w.admin.call("POST", "/v2/projects/"+p+"/serviceaccounts", map[string]any{"displayName": "fresh"}))
		return acc["name"].(string)
	}
	freshMember := func(w *world) string {
		c := w.account(p, "roles/project.user")
		acc := strings.Split(c.creds.Email, "@")[0]
		return "/v2/projects/" + p + "/members/" + acc
	}
	userAccount := "/v2/projects/" + p + "/serviceaccounts/" + strings.Split(userC.creds.Email, "@")[0]
	connector := "/v2/" + must[map[string]any](t, 200)(w.admin.call("POST", "/v2/projects/"+p+"/dataconnectors",
		map[string]any{"displayName": "kept", "httpConfig": map[string]any{"url": "https://hooks.example.com/kept"}}))["name"].(string)
	export := "/v2/" + must[map[string]any](t, 200)(w.admin.call("POST", "/v2/projects/"+p+":export", map[string]any{}))["name"].(string)
	erasure := "/v2/" + must[map[string]any](t, 200)(w.admin.call("POST", "/v2/projects/"+p+"/devices/"+d1+":erase", nil))["name"].(string)
	orgAdminMember := "/v2/organizations/" + org + "/members/" + w.tenant.Account
	emulated := strings.TrimPrefix(must[map[string]any](t, 200)(w.admin.call("POST", "/emulator/v2/projects/"+p+"/devices", map[string]any{"type": "touch"}))["name"].(string), "projects/"+p+"/devices/")
	labelN := 0
	simple := func(method, path string, body any) func(*world, string, caller) (string, string, any) {
		return func(*world, string, caller) (string, string, any) { return method, path, body }
	}
	table := map[string]cell{
		"GET /v2/organizations":                            {rankAny, simple("GET", "/v2/organizations", nil)},
		"GET /v2/organizations/{organization}":             {rankOrgAdmin, simple("GET", "/v2/organizations/"+org, nil)},
		"GET /v2/roles":                                    {rankAny, simple("GET", "/v2/roles", nil)},
		"GET /v2/organizations/{organization}/permissions": {rankAny, simple("GET", "/v2/organizations/"+org+"/permissions", nil)},
		"GET /v2/organizations/{organization}/members":     {rankOrgAdmin, simple("GET", "/v2/organizations/"+org+"/members", nil)},
		"GET /v2/organizations/{organization}/auditLog":    {rankOrgAdmin, simple("GET", "/v2/organizations/"+org+"/auditLog", nil)},
		"POST /v2/organizations/{organization}/members": {rankOrgAdmin, func(w *world, _ string, _ caller) (string, string, any) {
			acc := must[map[string]any](t, 200)(w.admin.call("GET", "/v2/"+fresh(w), nil))
			return "POST", "/v2/organizations/" + org + "/members", map[string]any{"roles": []string{"roles/organization.admin"}, "email": acc["email"]}
		}},
		"GET /v2/organizations/{organization}/members/{member}":   {rankOrgAdmin, simple("GET", orgAdminMember, nil)},
		"PATCH /v2/organizations/{organization}/members/{member}": {rankOrgAdmin, simple("PATCH", orgAdminMember, map[string]any{"roles": []string{"roles/organization.admin"}})},
		"DELETE /v2/organizations/{organization}/members/{member}": {rankOrgAdmin, func(w *world, _ string, who caller) (string, string, any) {
			if who.rank != rankOrgAdmin {
				return "DELETE", orgAdminMember, nil
			}
			acc := must[map[string]any](t, 200)(w.admin.call("GET", "/v2/"+fresh(w), nil))
			m := must[map[string]any](t, 200)(w.admin.call("POST", "/v2/organizations/"+org+"/members", map[string]any{"roles": []string{"roles/organization.admin"}, "email": acc["email"]}))
			return "DELETE", "/v2/" + m["name"].(string), nil
		}},
		"GET /v2/roles/{role}":                   {rankAny, simple("GET", "/v2/roles/project.user", nil)},
		"GET /v2/projects":                       {rankAny, simple("GET", "/v2/projects", nil)},
		"POST /v2/projects":                      {rankOrgAdmin, simple("POST", "/v2/projects", map[string]any{"displayName": "new", "organization": "organizations/" + org})},
		"GET /v2/projects/{project}":             {rankUser, simple("GET", "/v2/projects/"+p, nil)},
		"PATCH /v2/projects/{project}":           {rankAdmin, simple("PATCH", "/v2/projects/"+p, map[string]any{"displayName": "renamed"})},
		"GET /v2/projects/{project}/permissions": {rankAny, simple("GET", "/v2/projects/"+p+"/permissions", nil)},
		"DELETE /v2/projects/{project}": {rankOrgAdmin, func(w *world, p string, who caller) (string, string, any) {
			if who.rank == rankOrgAdmin {
				return "DELETE", "/v2/projects/" + w.newProject(org, "to delete"), nil
			}
			return "DELETE", "/v2/projects/" + p, nil
		}},
		"POST /v2/projects/{project}:export":                 {rankAdmin, simple("POST", "/v2/projects/"+p+":export", map[string]any{"deviceIds": []string{d1}})},
		"GET /v2/projects/{project}/exports":                 {rankAdmin, simple("GET", "/v2/projects/"+p+"/exports", nil)},
		"GET /v2/projects/{project}/exports/{export}":        {rankAdmin, simple("GET", export, nil)},
		"POST /v2/projects/{project}/devices/{device}:erase": {rankAdmin, simple("POST", "/v2/projects/"+p+"/devices/"+d1+":erase", nil)},
		"GET /v2/projects/{project}/erasures/{erasure}":      {rankAdmin, simple("GET", erasure, nil)},
		"POST /v2/projects/{project}:erase": {rankOrgAdmin, func(w *world, p string, who caller) (string, string, any) {
			if who.rank == rankOrgAdmin {
				e := w.newProject(org, "to erase")
				return "POST", "/v2/projects/" + e + ":erase", map[string]any{"confirmProject": "projects/" + e}
			}
			return "POST", "/v2/projects/" + p + ":erase", map[string]any{"confirmProject": "projects/" + p}
		}},
		"GET /v2/projects/{project}/members": {rankUser, simple("GET", "/v2/projects/"+p+"/members", nil)},
		"POST /v2/projects/{project}/members": {rankAdmin, func(w *world, p string, _ caller) (string, string, any) {
			acc := must[map[string]any](t, 200)(w.admin.call("GET", "/v2/"+fresh(w), nil))
			return "POST", "/v2/projects/" + p + "/members", map[string]any{"roles": []string{"roles/project.user"}, "email": acc["email"]}
		}},
		"GET /v2/projects/{project}/members/{member}": {rankUser, func(w *world, p string, _ caller) (string, string, any) {
			return "GET", "/v2/projects/" + p + "/members/" + strings.Split(userC.creds.Email, "@")[0], nil
		}},
		"PATCH /v2/projects/{project}/members/{member}": {rankAdmin, func(w *world, _ string, _ caller) (string, string, any) {
			return "PATCH", freshMember(w), map[string]any{"roles": []string{"roles/project.developer"}}
		}},
		"DELETE /v2/projects/{project}/members/{member}": {rankAdmin, func(w *world, _ string, _ caller) (string, string, any) {
			return "DELETE", freshMember(w), nil
		}},
		"GET /v2/projects/{project}/serviceaccounts":           {rankUser, simple("GET", "/v2/projects/"+p+"/serviceaccounts", nil)},
		"POST /v2/projects/{project}/serviceaccounts":          {rankAdmin, simple("POST", "/v2/projects/"+p+"/serviceaccounts", map[string]any{"displayName": "x"})},
		"GET /v2/projects/{project}/serviceaccounts/{account}": {rankUser, simple("GET", userAccount, nil)},
		"PATCH /v2/projects/{project}/serviceaccounts/{account}": {rankAdmin, func(w *world, _ string, _ caller) (string, string, any) {
			return "PATCH", "/v2/" + fresh(w), map[string]any{"displayName": "y"}
		}},
		"DELETE /v2/projects/{project}/serviceaccounts/{account}": {rankAdmin, func(w *world, _ string, _ caller) (string, string, any) {
			return "DELETE", "/v2/" + fresh(w), nil
		}},
		"GET /v2/projects/{project}/serviceaccounts/{account}/keys": {rankUser, simple("GET", userAccount+"/keys", nil)},
		"POST /v2/projects/{project}/serviceaccounts/{account}/keys": {rankAdmin, func(w *world, _ string, _ caller) (string, string, any) {
			return "POST", "/v2/" + fresh(w) + "/keys", nil
		}},
		"POST /v2/projects/{project}/serviceaccounts/{account}/keys:createCredentialsFile": {rankAdmin, func(w *world, _ string, _ caller) (string, string, any) {
			return "POST", "/v2/" + fresh(w) + "/keys:createCredentialsFile", nil
		}},
		"GET /v2/projects/{project}/serviceaccounts/{account}/keys/{key}": {rankUser, simple("GET", userAccount+"/keys/"+userC.creds.KeyID, nil)},
		"DELETE /v2/projects/{project}/serviceaccounts/{account}/keys/{key}": {rankAdmin, func(w *world, _ string, _ caller) (string, string, any) {
			name := fresh(w)
			k := must[map[string]any](t, 200)(w.admin.call("POST", "/v2/"+name+"/keys", nil))
			return "DELETE", "/v2/" + k["key"].(map[string]any)["name"].(string), nil
		}},
		"GET /v2/projects/{project}/devices":          {rankUser, simple("GET", "/v2/projects/"+p+"/devices", nil)},
		"GET /v2/projects/{project}/devices/{device}": {rankUser, simple("GET", "/v2/projects/"+p+"/devices/"+d1, nil)},
		"POST /v2/projects/{project}/devices:batchUpdate": {rankDeveloper, simple("POST", "/v2/projects/"+p+"/devices:batchUpdate",
			map[string]any{"devices": []string{"projects/" + p + "/devices/" + d1}, "addLabels": map[string]string{"room": "lab"}})},
		"POST /v2/projects/{project}/devices:transfer": {rankAdmin, func(w *world, p string, _ caller) (string, string, any) {
			src := w.newProject(org, "source")
			d := w.devices(src, "", 1)[0]
			return "POST", "/v2/projects/" + p + "/devices:transfer", map[string]any{"devices": []string{"projects/" + src + "/devices/" + d}}
		}},
		"POST /v2/projects/{project}/devices:claim": {rankDeveloper, func(w *world, p string, _ caller) (string, string, any) {
			return "POST", "/v2/projects/" + p + "/devices:claim", map[string]any{"deviceIds": w.devices("", "", 1)}
		}},
		"POST /v2/projects/{project}/devices/{device}/labels": {rankDeveloper, func(w *world, p string, _ caller) (string, string, any) {
			labelN++
			return "POST", "/v2/projects/" + p + "/devices/" + d1 + "/labels", map[string]any{"key": fmt.Sprintf("k%d", labelN), "value": "v"}
		}},
		"PATCH /v2/projects/{project}/devices/{device}/labels/{label}": {rankDeveloper, func(w *world, p string, _ caller) (string, string, any) {
			must[map[string]any](t, 200)(w.admin.call("POST", "/v2/projects/"+p+"/devices:batchUpdate", map[string]any{"devices": []string{d1}, "addLabels": map[string]string{"kept": "1"}}))
			return "PATCH", "/v2/projects/" + p + "/devices/" + d1 + "/labels/kept", map[string]any{"value": "2"}
		}},
		"DELETE /v2/projects/{project}/devices/{device}/labels/{label}": {rankDeveloper, func(w *world, p string, _ caller) (string, string, any) {
			must[map[string]any](t, 200)(w.admin.call("POST", "/v2/projects/"+p+"/devices:batchUpdate", map[string]any{"devices": []string{d1}, "addLabels": map[string]string{"gone": "1"}}))
			return "DELETE", "/v2/projects/" + p + "/devices/" + d1 + "/labels/gone", nil
		}},
		"POST /emulator/v2/projects/{project}/devices":                  {rankDeveloper, simple("POST", "/emulator/v2/projects/"+p+"/devices", map[string]any{"type": "touch"})},
		"POST /emulator/v2/projects/{project}/devices/{device}:publish": {rankDeveloper, simple("POST", "/emulator/v2/projects/"+p+"/devices/"+emulated+":publish", map[string]any{"touch": map[string]any{}})},
		"DELETE /emulator/v2/projects/{project}/devices/{device}": {rankDeveloper, func(w *world, p string, who caller) (string, string, any) {
			if who.rank < rankDeveloper {
				return "DELETE", "/emulator/v2/projects/" + p + "/devices/" + emulated, nil
			}
			d := must[map[string]any](t, 200)(w.admin.call("POST", "/emulator/v2/projects/"+p+"/devices", map[string]any{"type": "touch"}))
			return "DELETE", "/emulator" + "/v2/" + d["name"].(string), nil
		}},
		"GET /v2/projects/{project}/health":                         {rankUser, simple("GET", "/v2/projects/"+p+"/health", nil)},
		"GET /v2/projects/{project}/devices/{device}/configuration": {rankUser, simple("GET", "/v2/projects/"+p+"/devices/"+d1+"/configuration", nil)},
		"PATCH /v2/projects/{project}/devices/{device}/configuration": {rankDeveloper, simple("PATCH", "/v2/projects/"+p+"/devices/"+d1+"/configuration",
			map[string]any{"desired": map[string]any{"sampleIntervalSeconds": 60}})},
		"POST /v2/projects/{project}/devices:configure": {rankDeveloper, simple("POST", "/v2/projects/"+p+"/devices:configure",
			map[string]any{"desired": map[string]any{"sampleIntervalSeconds": 120}, "deviceIds": []string{d1}})},
		"GET /v2/claimInfo": {rankAny, simple("GET", "/v2/claimInfo?identifier="+d1, nil)},
		"GET /v2/projects/{project}/devices/{device}/events": {rankUser, simple("GET", "/v2/projects/"+p+"/devices/"+d1+"/events", nil)},
		"GET /v2/projects/{project}/auditLog":                {rankAdmin, simple("GET", "/v2/projects/"+p+"/auditLog", nil)},
		"GET /v2/projects/{project}/dataconnectors":          {rankUser, simple("GET", "/v2/projects/"+p+"/dataconnectors", nil)},
		"POST /v2/projects/{project}/dataconnectors": {rankDeveloper, simple("POST", "/v2/projects/"+p+"/dataconnectors",
			map[string]any{"displayName": "hook", "httpConfig": map[string]any{"url": "https://hooks.example.com/in"}})},
		"GET /v2/projects/{project}/dataconnectors/{dataconnector}":   {rankUser, simple("GET", connector, nil)},
		"PATCH /v2/projects/{project}/dataconnectors/{dataconnector}": {rankDeveloper, simple("PATCH", connector, map[string]any{"displayName": "renamed"})},
		"DELETE /v2/projects/{project}/dataconnectors/{dataconnector}": {rankDeveloper, func(w *world, p string, _ caller) (string, string, any) {
			c := must[map[string]any](t, 200)(w.admin.call("POST", "/v2/projects/"+p+"/dataconnectors", map[string]any{"httpConfig": map[string]any{"url": "https://hooks.example.com/gone"}}))
			return "DELETE", "/v2/" + c["name"].(string), nil
		}},
		"GET /v2/projects/{project}/dataconnectors/{dataconnector}:metrics": {rankUser, simple("GET", connector+":metrics", nil)},
		"POST /v2/projects/{project}/dataconnectors/{dataconnector}:sync":   {rankDeveloper, simple("POST", connector+":sync", nil)},
	}

	svc := api.New(api.Config{BaseURL: w.base}, api.Deps{})
	for _, r := range svc.Routes() {
		if r == "POST /oauth2/token" || r == "GET /.well-known/jwks.json" || r == "GET /v2/openapi.json" {
			continue
		}
		if r == "GET /v2/projects/{project}/devices:stream" {
			continue // a stream stays open: TestStreamAuthorization
		}
		cl, ok := table[r]
		if !ok {
			t.Errorf("route %s has no row in the authorization table", r)
			continue
		}
		delete(table, r)
		t.Run(r, func(t *testing.T) {
			for _, who := range callers {
				method, path, body := cl.prepare(w, p, who)
				want := 200
				switch {
				case who.rank == -2:
					want = 401
				case cl.min == rankAny:
				case who.rank < cl.min:
					want = 403
				}
				code, b := w.request(method, path, who.auth, body)
				if code != want {
					t.Errorf("%s: %s %s = %d, want %d: %s", who.name, method, path, code, want, b)
				}
			}
		})
	}
	for r := range table {
		t.Errorf("the table has a row for %s, which is not a route", r)
	}
}
