package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/devicetype"
	"github.com/sealedsense/sealedsense/shared/event"
)

// An example's conventions (testdata/dt/README.md): an object with the
// one key "*" is a map whose every value has that shape; a string
// "enum:A|B" is one of those values.
const (
	mapKey     = "*"
	enumPrefix = "enum:"
)

// example reads a DT-shaped example of testdata/dt.
func example(t *testing.T, name string) any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "dt", name))
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

// conform lists where got differs from want's shape: a field of want
// missing from got, another JSON type, an enum value outside DT's, or an
// array too empty to check. Extra fields of got are ours to add.
func conform(path string, want, got any) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want an object, got %s", path, jsonType(got))}
		}
		if inner, isMap := w[mapKey]; isMap && len(w) == 1 {
			var out []string
			for k, v := range g {
				out = append(out, conform(path+"."+k, inner, v)...)
			}
			return out
		}
		var out []string
		for k, v := range w {
			gv, present := g[k]
			if !present {
				out = append(out, fmt.Sprintf("%s.%s: missing", path, k))
				continue
			}
			out = append(out, conform(path+"."+k, v, gv)...)
		}
		return out
	case []any:
		g, ok := got.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want an array, got %s", path, jsonType(got))}
		}
		if len(w) == 0 {
			return nil
		}
		if len(g) == 0 {
			return []string{fmt.Sprintf("%s: the answer's array is empty, so its elements' shape goes unchecked: make the test world fill it", path)}
		}
		var out []string
		for i, e := range g {
			out = append(out, conform(fmt.Sprintf("%s[%d]", path, i), w[0], e)...)
		}
		return out
	case string:
		g, ok := got.(string)
		if !ok {
			return []string{fmt.Sprintf("%s: want a string, got %s", path, jsonType(got))}
		}
		if enum, isEnum := strings.CutPrefix(w, enumPrefix); isEnum && !slices.Contains(strings.Split(enum, "|"), g) {
			return []string{fmt.Sprintf("%s: %q is none of DT's %s", path, g, enum)}
		}
	case float64, bool:
		if jsonType(got) != jsonType(want) {
			return []string{fmt.Sprintf("%s: want a %s, got %s", path, jsonType(want), jsonType(got))}
		}
	}
	return nil
}

// instance is a value of an example's shape: an enum's first value, a
// map with one entry.
func instance(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if inner, isMap := x[mapKey]; isMap && len(x) == 1 {
			return map[string]any{"key": instance(inner)}
		}
		out := map[string]any{}
		for k, e := range x {
			out[k] = instance(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = instance(e)
		}
		return out
	case string:
		if enum, isEnum := strings.CutPrefix(x, enumPrefix); isEnum {
			first, _, _ := strings.Cut(enum, "|")
			return first
		}
	}
	return v
}

func jsonType(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// openAPIDoc is the served OpenAPI document, decoded.
type openAPIDoc map[string]any

func (d openAPIDoc) resolve(s map[string]any) map[string]any {
	for {
		ref, ok := s["$ref"].(string)
		if !ok {
			return s
		}
		s = d["components"].(map[string]any)["schemas"].(map[string]any)[strings.TrimPrefix(ref, "#/components/schemas/")].(map[string]any)
	}
}

// responseSchema is a route's success schema.
func (d openAPIDoc) responseSchema(method, pattern string) (map[string]any, error) {
	op, ok := d["paths"].(map[string]any)[pattern].(map[string]any)[strings.ToLower(method)].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("no operation %s %s in the OpenAPI document", method, pattern)
	}
	ok200, _ := op["responses"].(map[string]any)["200"].(map[string]any)
	content, _ := ok200["content"].(map[string]any)
	for _, ct := range []string{"application/json", "application/x-ndjson"} {
		if c, ok := content[ct].(map[string]any); ok {
			return d.resolve(c["schema"].(map[string]any)), nil
		}
	}
	return nil, fmt.Errorf("%s %s: no JSON success schema", method, pattern)
}

// declares lists where the schema fails to declare want's fields with
// their JSON types. A free-form object (no properties) declares anything
// inside it: DT's event data and a device's reported state.
func (d openAPIDoc) declares(path string, s map[string]any, want any) []string {
	s = d.resolve(s)
	typ, _ := s["type"].(string)
	mismatch := func(jt string) []string {
		return []string{fmt.Sprintf("%s: the OpenAPI document says %q, DT's example has a %s", path, typ, jt)}
	}
	switch w := want.(type) {
	case map[string]any:
		if typ != "object" {
			return mismatch("object")
		}
		props, hasProps := s["properties"].(map[string]any)
		extra, hasExtra := s["additionalProperties"].(map[string]any)
		if inner, isMap := w[mapKey]; isMap && len(w) == 1 {
			if hasExtra {
				return d.declares(path+".*", extra, inner)
			}
			return nil
		}
		if !hasProps {
			return nil
		}
		var out []string
		for k, v := range w {
			ps, ok := props[k].(map[string]any)
			if !ok {
				out = append(out, fmt.Sprintf("%s.%s: not in the OpenAPI document", path, k))
				continue
			}
			out = append(out, d.declares(path+"."+k, ps, v)...)
		}
		return out
	case []any:
		if typ != "array" {
			return mismatch("array")
		}
		if len(w) > 0 {
			return d.declares(path+"[]", s["items"].(map[string]any), w[0])
		}
	case string:
		if typ != "string" {
			return mismatch("string")
		}
	case float64:
		if typ != "number" && !(typ == "integer" && w == float64(int64(w))) {
			return mismatch("number")
		}
	case bool:
		if typ != "boolean" {
			return mismatch("boolean")
		}
	}
	return nil
}

// dtRoute is one DT route's call and the example its answer must fit.
type dtRoute struct {
	route, example string
	method, path   string
	body           any
}

// isDTRoute says whether a route is DT's, which the conformance test
// must cover: every authenticated one but our marked extensions.
func isDTRoute(summary string, authenticated bool) bool {
	return authenticated && !strings.Contains(summary, "(SealedSense extension)")
}

func TestDTConformance(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "SEALEDSENSE_API_RATE=10000", "SEALEDSENSE_EMULATOR_RATE=1000")
	p, org := w.tenant.Project, w.tenant.Organization
	ok := func(method, path string, body any) map[string]any {
		t.Helper()
		return must[map[string]any](t, 200)(w.admin.call(method, path, body))
	}
	last := func(name any) string { s := name.(string); return s[strings.LastIndexByte(s, '/')+1:] }

	// The world every answer is read from: sensors, kits, a project to
	// transfer from, accounts, a data connector, emulated devices that
	// published every event type, a label change.
	sensors := w.devices(p, "", 2)
	kit := "kit-" + strings.ToLower(t.Name())
	kitDevices := w.devices("", kit, 2)
	claimed := w.devices(p, "", 1)[0]
	other := w.newProject(org, "conformance source")
	moved := w.devices(other, "", 1)[0]
	acc := ok("POST", "/v2/projects/"+p+"/serviceaccounts", map[string]any{"displayName": "conformance"})
	accPath := "/v2/" + acc["name"].(string)
	key := ok("POST", accPath+"/keys", nil)
	keyPath := "/v2/" + key["key"].(map[string]any)["name"].(string)
	dc := ok("POST", "/v2/projects/"+p+"/dataconnectors", map[string]any{"displayName": "conformance", "events": []string{"temperature"},
		"labels": []string{"name"}, "httpConfig": map[string]any{"url": "https://hooks.example.com/conformance", "headers": map[string]string{"x-tenant": "acme"}}})
	dcPath := "/v2/" + dc["name"].(string)
	ok("POST", "/v2/projects/"+p+"/devices:batchUpdate", map[string]any{"devices": []string{sensors[0]}, "addLabels": map[string]string{"name": "a", "room": "1"}})
	ok("POST", "/v2/projects/"+p+"/devices:batchUpdate", map[string]any{"devices": []string{sensors[0]}, "addLabels": map[string]string{"name": "b", "floor": "2"}, "removeLabels": []string{"room"}})
	orgAdmin := w.account(p, "")
	orgMember := "/v2/organizations/" + org + "/members/" + strings.Split(orgAdmin.creds.Email, "@")[0]
	published := publishEveryType(t, w, p)

	// A stream open before one more event: its first result frame.
	frames := openRawStream(t, w, p)
	ok("POST", "/emulator/v2/projects/"+p+"/devices/"+published["touch"]+":publish", map[string]any{"touch": map[string]any{}})

	emptyProject := w.newProject(org, "conformance empty")
	door := strings.TrimPrefix(ok("POST", "/emulator/v2/projects/"+p+"/devices", map[string]any{"type": "contact"})["name"].(string), "projects/"+p+"/devices/")
	calls := []dtRoute{
		{"GET /v2/organizations", "organizations.json", "GET", "/v2/organizations", nil},
		{"GET /v2/organizations/{organization}", "organization.json", "GET", "/v2/organizations/" + org, nil},
		{"GET /v2/organizations/{organization}/permissions", "permissions.json", "GET", "/v2/organizations/" + org + "/permissions", nil},
		{"POST /v2/organizations/{organization}/members", "orgmember.json", "POST", "/v2/organizations/" + org + "/members", map[string]any{"roles": []string{"roles/organization.admin"}, "email": orgAdmin.creds.Email}},
		{"GET /v2/organizations/{organization}/members", "orgmembers.json", "GET", "/v2/organizations/" + org + "/members", nil},
		{"GET /v2/organizations/{organization}/members/{member}", "orgmember.json", "GET", orgMember, nil},
		{"PATCH /v2/organizations/{organization}/members/{member}", "orgmember.json", "PATCH", orgMember, map[string]any{"roles": []string{"roles/organization.admin"}}},
		{"DELETE /v2/organizations/{organization}/members/{member}", "empty.json", "DELETE", orgMember, nil},
		{"GET /v2/roles", "roles.json", "GET", "/v2/roles", nil},
		{"GET /v2/roles/{role}", "role.json", "GET", "/v2/roles/project.user", nil},
		{"GET /v2/projects", "projects.json", "GET", "/v2/projects", nil},
		{"POST /v2/projects", "project.json", "POST", "/v2/projects", map[string]any{"displayName": "conformance new", "organization": "organizations/" + org}},
		{"GET /v2/projects/{project}", "project.json", "GET", "/v2/projects/" + p, nil},
		{"PATCH /v2/projects/{project}", "project.json", "PATCH", "/v2/projects/" + p, map[string]any{"displayName": "conformance renamed"}},
		{"DELETE /v2/projects/{project}", "empty.json", "DELETE", "/v2/projects/" + emptyProject, nil},
		{"GET /v2/projects/{project}/permissions", "permissions.json", "GET", "/v2/projects/" + p + "/permissions", nil},
		{"POST /v2/projects/{project}/members", "member.json", "POST", "/v2/projects/" + p + "/members", map[string]any{"roles": []string{"roles/project.user"}, "email": acc["email"]}},
		{"GET /v2/projects/{project}/members", "members.json", "GET", "/v2/projects/" + p + "/members", nil},
		{"GET /v2/projects/{project}/members/{member}", "member.json", "GET", "/v2/projects/" + p + "/members/" + last(acc["name"]), nil},
		{"PATCH /v2/projects/{project}/members/{member}", "member.json", "PATCH", "/v2/projects/" + p + "/members/" + last(acc["name"]), map[string]any{"roles": []string{"roles/project.developer"}}},
		{"DELETE /v2/projects/{project}/members/{member}", "empty.json", "DELETE", "/v2/projects/" + p + "/members/" + last(acc["name"]), nil},
		{"GET /v2/projects/{project}/serviceaccounts", "serviceaccounts.json", "GET", "/v2/projects/" + p + "/serviceaccounts", nil},
		{"GET /v2/projects/{project}/serviceaccounts/{account}", "serviceaccount.json", "GET", accPath, nil},
		{"PATCH /v2/projects/{project}/serviceaccounts/{account}", "serviceaccount.json", "PATCH", accPath, map[string]any{"displayName": "renamed"}},
		{"GET /v2/projects/{project}/serviceaccounts/{account}/keys", "keys.json", "GET", accPath + "/keys", nil},
		{"POST /v2/projects/{project}/serviceaccounts/{account}/keys", "createdkey.json", "POST", accPath + "/keys", nil},
		{"POST /v2/projects/{project}/serviceaccounts/{account}/keys:createCredentialsFile", "credentialsfile.json", "POST", accPath + "/keys:createCredentialsFile", nil},
		{"GET /v2/projects/{project}/serviceaccounts/{account}/keys/{key}", "key.json", "GET", keyPath, nil},
		{"DELETE /v2/projects/{project}/serviceaccounts/{account}/keys/{key}", "empty.json", "DELETE", keyPath, nil},
		{"POST /v2/projects/{project}/serviceaccounts", "serviceaccount.json", "POST", "/v2/projects/" + p + "/serviceaccounts", map[string]any{"displayName": "another"}},
		{"DELETE /v2/projects/{project}/serviceaccounts/{account}", "empty.json", "DELETE", accPath, nil},
		{"GET /v2/projects/{project}/devices", "devices.json", "GET", "/v2/projects/" + p + "/devices", nil},
		{"GET /v2/projects/{project}/devices/{device}", "device.json", "GET", "/v2/projects/" + p + "/devices/" + sensors[0], nil},
		{"POST /v2/projects/{project}/devices/{device}/labels", "label.json", "POST", "/v2/projects/" + p + "/devices/" + sensors[1] + "/labels", map[string]any{"key": "room", "value": "cold store"}},
		{"PATCH /v2/projects/{project}/devices/{device}/labels/{label}", "label.json", "PATCH", "/v2/projects/" + p + "/devices/" + sensors[1] + "/labels/room", map[string]any{"value": "freezer"}},
		{"DELETE /v2/projects/{project}/devices/{device}/labels/{label}", "empty.json", "DELETE", "/v2/projects/" + p + "/devices/" + sensors[1] + "/labels/room", nil},
		{"POST /v2/projects/{project}/devices:batchUpdate", "batchupdate.json", "POST", "/v2/projects/" + p + "/devices:batchUpdate", map[string]any{"devices": []string{sensors[1], "projects/" + p + "/devices/unknown"}, "addLabels": map[string]string{"site": "oslo"}}},
		{"POST /v2/projects/{project}/devices:transfer", "transfer.json", "POST", "/v2/projects/" + p + "/devices:transfer", map[string]any{"devices": []string{"projects/" + other + "/devices/" + moved, "projects/" + other + "/devices/unknown"}}},
		{"POST /v2/projects/{project}/devices:claim", "claim.json", "POST", "/v2/projects/" + p + "/devices:claim", map[string]any{"deviceIds": []string{kitDevices[0], claimed}, "kitIds": []string{"no-such-kit"}}},
		{"GET /v2/claimInfo", "claiminfo-device.json", "GET", "/v2/claimInfo?identifier=" + kitDevices[1], nil},
		{"GET /v2/claimInfo", "claiminfo-kit.json", "GET", "/v2/claimInfo?identifier=" + kit, nil},
		{"GET /v2/projects/{project}/devices/{device}/events", "events.json", "GET", "/v2/projects/" + p + "/devices/" + sensors[0] + "/events", nil},
		{"GET /v2/projects/{project}/dataconnectors", "dataconnectors.json", "GET", "/v2/projects/" + p + "/dataconnectors", nil},
		{"GET /v2/projects/{project}/dataconnectors/{dataconnector}", "dataconnector.json", "GET", dcPath, nil},
		{"PATCH /v2/projects/{project}/dataconnectors/{dataconnector}", "dataconnector.json", "PATCH", dcPath, map[string]any{"displayName": "renamed"}},
		{"GET /v2/projects/{project}/dataconnectors/{dataconnector}:metrics", "metrics.json", "GET", dcPath + ":metrics", nil},
		{"POST /v2/projects/{project}/dataconnectors/{dataconnector}:sync", "empty.json", "POST", dcPath + ":sync", nil},
		{"POST /v2/projects/{project}/dataconnectors", "dataconnector.json", "POST", "/v2/projects/" + p + "/dataconnectors", map[string]any{"displayName": "second", "events": []string{"touch"}, "labels": []string{"room"}, "httpConfig": map[string]any{"url": "https://hooks.example.com/second"}}},
		{"DELETE /v2/projects/{project}/dataconnectors/{dataconnector}", "empty.json", "DELETE", dcPath, nil},
		{"POST /emulator/v2/projects/{project}/devices", "device.json", "POST", "/emulator/v2/projects/" + p + "/devices", map[string]any{"type": "contact", "labels": map[string]string{"name": "door"}}},
		{"POST /emulator/v2/projects/{project}/devices/{device}:publish", "empty.json", "POST", "/emulator/v2/projects/" + p + "/devices/" + door + ":publish", map[string]any{"contact": map[string]any{"state": "OPEN"}}},
		{"DELETE /emulator/v2/projects/{project}/devices/{device}", "empty.json", "DELETE", "/emulator/v2/projects/" + p + "/devices/" + door, nil},
	}

	var doc openAPIDoc
	if err := json.Unmarshal(must[json.RawMessage](t, 200)(w.request("GET", "/v2/openapi.json", "", nil)), &doc); err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for _, c := range calls {
		covered[c.route] = true
		t.Run(c.route+" "+c.example, func(t *testing.T) {
			want := example(t, c.example)
			got := must[map[string]any](t, 200)(w.admin.call(c.method, c.path, c.body))
			for _, e := range conform("answer", want, got) {
				t.Errorf("%s %s: %s", c.method, c.path, e)
			}
			method, pattern, _ := strings.Cut(c.route, " ")
			s, err := doc.responseSchema(method, pattern)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range doc.declares("schema", s, want) {
				t.Errorf("%s: %s", c.route, e)
			}
		})
	}

	t.Run("stream frame", func(t *testing.T) {
		covered["GET /v2/projects/{project}/devices:stream"] = true
		var got any
		select {
		case line := <-frames:
			if err := json.Unmarshal(line, &got); err != nil {
				t.Fatalf("frame %s: %v", line, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no result frame within 30 s of an emulated device's publish")
		}
		want := example(t, "streamframe.json")
		for _, e := range conform("frame", want, got) {
			t.Error(e)
		}
		s, err := doc.responseSchema("GET", "/v2/projects/{project}/devices:stream")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range doc.declares("schema", s, want) {
			t.Error(e)
		}
	})

	// Every event type's data, as history gives it: the emulated
	// devices' published events, and the label changes' labelsChanged.
	t.Run("event data", func(t *testing.T) {
		seen := map[string]bool{}
		for _, dev := range append(slices.Collect(maps.Values(published)), sensors[0]) {
			list := must[map[string]any](t, 200)(w.admin.call("GET", "/v2/projects/"+p+"/devices/"+dev+"/events?pageSize=100&startTime=2026-01-01T00:00:00Z", nil))
			for _, ev := range list["events"].([]any) {
				typ, _ := ev.(map[string]any)["eventType"].(string)
				if _, err := os.Stat(filepath.Join("testdata", "dt", "events", typ+".json")); err != nil {
					continue // SealedSense's own event types
				}
				seen[typ] = true
				for _, e := range conform("event", example(t, "events/"+typ+".json"), ev) {
					t.Errorf("device %s, %s event: %s", dev, typ, e)
				}
			}
		}
		files, _ := filepath.Glob(filepath.Join("testdata", "dt", "events", "*.json"))
		for _, f := range files {
			if typ := strings.TrimSuffix(filepath.Base(f), ".json"); !seen[typ] {
				t.Errorf("no %s event in any history: its shape went unchecked", typ)
			}
		}
	})

	for pattern, ops := range doc["paths"].(map[string]any) {
		for method, op := range ops.(map[string]any) {
			route := strings.ToUpper(method) + " " + pattern
			summary, _ := op.(map[string]any)["summary"].(string)
			_, authenticated := op.(map[string]any)["security"]
			if isDTRoute(summary, authenticated) && !covered[route] {
				t.Errorf("%s is a DT route with no conformance row", route)
			}
		}
	}
}

// publishEveryType creates an emulated device of every type and, as it,
// publishes each event type it emits, with the data of the type's DT
// example; it returns a device per type.
func publishEveryType(t *testing.T, w *world, p string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, typ := range devicetype.All() {
		d := must[map[string]any](t, 200)(w.admin.call("POST", "/emulator/v2/projects/"+p+"/devices", map[string]any{"type": typ.Name, "labels": map[string]string{"name": "emulated " + typ.Name}}))
		id := strings.TrimPrefix(d["name"].(string), "projects/"+p+"/devices/")
		out[typ.Name] = id
		for _, et := range typ.Events {
			if !event.Publishable(et) {
				continue
			}
			ex := example(t, "events/"+et+".json").(map[string]any)
			must[map[string]any](t, 200)(w.admin.call("POST", "/emulator/v2/projects/"+p+"/devices/"+id+":publish", instance(ex["data"])))
		}
	}
	return out
}

// openRawStream opens the project's NDJSON stream and sends the raw
// lines of its result frames, pings left out.
func openRawStream(t *testing.T, w *world, p string) <-chan []byte {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", w.base+"/v2/projects/"+p+"/devices:stream?ping_interval=5s", nil)
	req.Header.Set("Authorization", "Bearer "+w.admin.token())
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("stream: %s", resp.Status)
	}
	out := make(chan []byte, 100)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"result"`) {
				out <- slices.Clone(sc.Bytes())
			}
		}
	}()
	return out
}
