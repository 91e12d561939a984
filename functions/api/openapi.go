package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// OpenAPI builds the OpenAPI 3 document from the route table and the Go
// types of the bodies, so the document cannot leave out a route or a field.
func (s *Service) OpenAPI() ([]byte, error) {
	g := &schemaGen{defs: map[string]any{}, names: map[reflect.Type]string{}}
	paths := map[string]map[string]any{}
	for _, rt := range s.routes() {
		op := map[string]any{"summary": rt.Summary, "operationId": operationID(rt)}
		var params []any
		for _, name := range wildcards(rt.Pattern) {
			params = append(params, map[string]any{"name": name, "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, q := range rt.Query {
			params = append(params, map[string]any{"name": q, "in": "query", "schema": map[string]any{"type": "string"}})
		}
		if rt.ETag && rt.Request != nil {
			params = append(params, map[string]any{"name": "If-Match", "in": "header", "description": "the etag last read; a stale one answers 412", "schema": map[string]any{"type": "string"}})
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if rt.Request != nil {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(rt.Request))}}}
		}
		if rt.Pattern == "/oauth2/token" {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/x-www-form-urlencoded": map[string]any{"schema": map[string]any{
				"type": "object", "required": []string{"grant_type", "assertion"},
				"properties": map[string]any{"grant_type": map[string]any{"type": "string", "enum": []string{jwtBearerGrant}}, "assertion": map[string]any{"type": "string"}},
			}}}}
		}
		ok := map[string]any{"description": "OK"}
		switch {
		case rt.Stream:
			frame := g.schema(reflect.TypeOf(rt.Response))
			ok["content"] = map[string]any{"application/x-ndjson": map[string]any{"schema": frame},
				"text/event-stream": map[string]any{"schema": map[string]any{"type": "string", "description": "SSE: an id: line and a data: line holding a frame, per event"}}}
		case rt.Response != nil:
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(rt.Response))}}
		default:
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}
		}
		if rt.ETag {
			ok["headers"] = map[string]any{"ETag": map[string]any{"description": "the desired version, for If-Match", "schema": map[string]any{"type": "string"}}}
		}
		responses := map[string]any{strconv.Itoa(rt.Status): ok}
		// The failures every authenticated route can answer.
		codes := []int{400, 401, 403, 404, 409, 413, 429, 503}
		if rt.Stream {
			codes = []int{400, 401, 403, 406, 410, 429, 503}
		}
		if rt.ETag && rt.Request != nil {
			codes = append(codes, http.StatusPreconditionFailed)
		}
		if rt.Public {
			codes = []int{503}
			if rt.Pattern == "/oauth2/token" {
				codes = []int{400, 401, 413, 429, 503}
			}
		} else {
			op["security"] = []any{map[string]any{"bearer": []string{}}, map[string]any{"basic": []string{}}}
		}
		for _, code := range codes {
			schema := g.schema(reflect.TypeOf(errorBody{}))
			if rt.Pattern == "/oauth2/token" && (code == 400 || code == 401) {
				schema = g.schema(reflect.TypeOf(oauthError{}))
			}
			responses[strconv.Itoa(code)] = map[string]any{"description": http.StatusText(code), "content": map[string]any{"application/json": map[string]any{"schema": schema}}}
		}
		op["responses"] = responses
		if paths[rt.Pattern] == nil {
			paths[rt.Pattern] = map[string]any{}
		}
		paths[rt.Pattern][strings.ToLower(rt.Method)] = op
	}
	doc := map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{"title": "SealedSense API", "version": "v2",
			"description": "Compatible with the DT v2 REST API: change the base URL and the token endpoint."},
		"servers": []any{map[string]any{"url": "/"}},
		"paths":   paths,
		"components": map[string]any{
			"schemas": g.defs,
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
				"basic":  map[string]any{"type": "http", "scheme": "basic", "description": "key id and secret; only for accounts with enableBasicAuth"},
			},
		},
	}
	return json.MarshalIndent(doc, "", "  ")
}

func operationID(rt route) string {
	s := strings.NewReplacer("/emulator/v2/", "emulator_", "/v2/", "", "{", "", "}", "", "/", "_", ":", "_", ".", "_", "-", "_").Replace(rt.Pattern)
	return strings.ToLower(rt.Method) + "_" + strings.Trim(s, "_")
}

// schemaGen turns Go types into OpenAPI schemas, named structs as
// components.
type schemaGen struct {
	defs  map[string]any
	names map[reflect.Type]string
}

func (g *schemaGen) schema(t reflect.Type) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeFor[time.Time]():
		return map[string]any{"type": "string", "format": "date-time"}
	case t == reflect.TypeFor[json.RawMessage]():
		return map[string]any{"type": "object", "description": "a DT event", "required": []string{"eventId", "targetName", "eventType", "data", "timestamp"}}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint32:
		return map[string]any{"type": "integer"}
	case reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Map:
		if t.Elem().Kind() == reflect.Interface {
			return map[string]any{"type": "object"}
		}
		return map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem())}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		return g.structSchema(t)
	}
	return map[string]any{}
}

// structSchema is a reference to a struct's component, defined on first
// use.
func (g *schemaGen) structSchema(t reflect.Type) map[string]any {
	name := t.Name()
	if name == "" {
		name = "anonymous"
	}
	name = strings.ToUpper(name[:1]) + name[1:]
	if known, ok := g.names[t]; ok {
		return map[string]any{"$ref": "#/components/schemas/" + known}
	}
	if _, taken := g.defs[name]; taken {
		// Two packages' types of one name: the later is qualified.
		pkg := t.PkgPath()[strings.LastIndex(t.PkgPath(), "/")+1:]
		name = strings.ToUpper(pkg[:1]) + pkg[1:] + name
	}
	g.names[t] = name
	ref := map[string]any{"$ref": "#/components/schemas/" + name}
	g.defs[name] = nil // recursion guard
	props := map[string]any{}
	required := []string{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		jname, opts, _ := strings.Cut(tag, ",")
		if tag == "-" || !f.IsExported() {
			continue
		}
		if jname == "" {
			jname = f.Name
		}
		props[jname] = g.schema(f.Type)
		if !strings.Contains(opts, "omitempty") && f.Type.Kind() != reflect.Pointer {
			required = append(required, jname)
		}
	}
	slices.Sort(required)
	def := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		def["required"] = required
	}
	g.defs[name] = def
	return ref
}

func (s *Service) handleOpenAPI(w http.ResponseWriter, _ *http.Request) {
	b, err := s.openapi()
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}
