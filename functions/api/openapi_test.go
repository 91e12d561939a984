package api_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sealedsense/sealedsense/functions/api"
)

var update = flag.Bool("update", false, "rewrite openapi.json from the route table")

// TestOpenAPIDocument keeps the committed openapi.json equal to what the
// route table generates, so the repository's copy cannot drift either.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	got, err := api.New(api.Config{BaseURL: "http://x"}, api.Deps{}).OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *update {
		if err := os.WriteFile("openapi.json", got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("openapi.json is stale: run go test ./functions/api -run TestOpenAPIDocument -update")
	}
	var doc openAPI
	if err := json.Unmarshal(got, &doc); err != nil {
		t.Fatal(err)
	}
	for _, r := range api.New(api.Config{BaseURL: "http://x"}, api.Deps{}).Routes() {
		method, path, _ := strings.Cut(r, " ")
		if _, ok := doc.Paths[path][strings.ToLower(method)]; !ok {
			t.Errorf("%s is not in the document", r)
		}
	}
}

type openAPI struct {
	Paths      map[string]map[string]operation `json:"paths"`
	Components struct {
		Schemas map[string]map[string]any `json:"schemas"`
	} `json:"components"`
}

type operation struct {
	Responses map[string]struct {
		Content map[string]struct {
			Schema map[string]any `json:"schema"`
		} `json:"content"`
	} `json:"responses"`
}

var (
	specOnce sync.Once
	spec     openAPI
	specErr  error
	patterns []*regexp.Regexp
	paths    []string
)

// recordResponse checks an answer against the committed document: the
// status must be one the operation lists, and the body must match its
// schema. Every request the tests send goes through it, so every route's
// answers are checked as they happen.
func recordResponse(t testing.TB, method, path string, code int, body []byte) {
	t.Helper()
	specOnce.Do(func() {
		b, err := os.ReadFile("openapi.json")
		if err != nil {
			specErr = err
			return
		}
		specErr = json.Unmarshal(b, &spec)
		for p := range spec.Paths {
			paths = append(paths, p)
		}
		// Literal paths first, so /devices:claim wins over /devices/{device}.
		slices.SortFunc(paths, func(a, b string) int { return strings.Count(a, "{") - strings.Count(b, "{") })
		for _, p := range paths {
			re := regexp.QuoteMeta(p)
			re = regexp.MustCompile(`\\\{[a-z]+\\\}`).ReplaceAllString(re, `[^/:]+`)
			patterns = append(patterns, regexp.MustCompile("^"+re+"$"))
		}
	})
	if specErr != nil {
		t.Fatal(specErr)
	}
	path, _, _ = strings.Cut(path, "?")
	for i, re := range patterns {
		if !re.MatchString(path) {
			continue
		}
		op, ok := spec.Paths[paths[i]][strings.ToLower(method)]
		if !ok {
			if code != 405 && code != 404 {
				t.Errorf("openapi: %s %s answered %d but the document has no such operation", method, path, code)
			}
			return
		}
		resp, ok := op.Responses[strconv.Itoa(code)]
		if !ok {
			t.Errorf("openapi: %s %s answered %d, which the document does not list", method, path, code)
			return
		}
		if code == 200 && resp.Content["application/json"].Schema == nil {
			return // a stream: its frames are checked by the stream tests
		}
		schema := resp.Content["application/json"].Schema
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Errorf("openapi: %s %s answered %d with a body that is not JSON: %.200s", method, path, code, body)
			return
		}
		if err := conforms(v, schema, "$"); err != nil {
			t.Errorf("openapi: %s %s answered %d: %v", method, path, code, err)
		}
		return
	}
	if code != 404 {
		t.Errorf("openapi: %s %s answered %d but matches no documented path", method, path, code)
	}
}

// conforms checks the subset of JSON Schema the generator emits.
func conforms(v any, schema map[string]any, at string) error {
	if ref, ok := schema["$ref"].(string); ok {
		return conforms(v, spec.Components.Schemas[strings.TrimPrefix(ref, "#/components/schemas/")], at)
	}
	switch schema["type"] {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: want an object, got %T", at, v)
		}
		req, _ := schema["required"].([]any)
		for _, r := range req {
			if _, ok := m[r.(string)]; !ok {
				return fmt.Errorf("%s: missing required %s", at, r)
			}
		}
		props, _ := schema["properties"].(map[string]any)
		for k, val := range m {
			if ps, ok := props[k].(map[string]any); ok {
				if err := conforms(val, ps, at+"."+k); err != nil {
					return err
				}
			} else if ap, ok := schema["additionalProperties"].(map[string]any); ok {
				if err := conforms(val, ap, at+"."+k); err != nil {
					return err
				}
			} else if schema["additionalProperties"] == false {
				return fmt.Errorf("%s: field %s is not in the document", at, k)
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: want an array, got %T", at, v)
		}
		items, _ := schema["items"].(map[string]any)
		for i, x := range a {
			if err := conforms(x, items, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	case "string":
		if _, ok := v.(string); !ok {
			return fmt.Errorf("%s: want a string, got %T", at, v)
		}
	case "integer", "number":
		if _, ok := v.(float64); !ok {
			return fmt.Errorf("%s: want a number, got %T", at, v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: want a boolean, got %T", at, v)
		}
	}
	return nil
}
