// Package terraform_test checks the Terraform root module's policies by
// parsing its HCL: no provider, plan or cloud account is needed.
package terraform_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// module is a parsed Terraform module, with enough evaluation to know
// what its variables' defaults and locals make of an attribute.
type module struct {
	files     map[string][]byte
	resources []*hclsyntax.Block // resource and data blocks
	variables map[string]*hclsyntax.Block
	locals    map[string]hclsyntax.Expression
	ctx       *hcl.EvalContext
}

// instance is one resource instance: a block and, under for_each, its key.
type instance struct {
	block *hclsyntax.Block
	key   string // "" without for_each
	ctx   *hcl.EvalContext
}

func (i instance) String() string {
	name := i.block.Labels[0] + "." + i.block.Labels[1]
	if i.key != "" {
		name += "[" + i.key + "]"
	}
	return name
}

func loadDir(t *testing.T, dir string) *module {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("no .tf files in %s", dir)
	}
	files := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files[filepath.Base(p)] = b
	}
	return load(t, files)
}

// load parses the files and evaluates variables' defaults and locals.
// Variables without a default get a placeholder, as a tfvars file would.
func load(t *testing.T, files map[string][]byte) *module {
	t.Helper()
	m := &module{files: files, variables: map[string]*hclsyntax.Block{}, locals: map[string]hclsyntax.Expression{}}
	p := hclparse.NewParser()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		f, diags := p.ParseHCL(files[name], name)
		if diags.HasErrors() {
			t.Fatalf("%s: %s", name, diags.Error())
		}
		for _, b := range f.Body.(*hclsyntax.Body).Blocks {
			switch b.Type {
			case "resource", "data":
				if len(b.Labels) != 2 {
					t.Fatalf("%s: %s block with labels %v", name, b.Type, b.Labels)
				}
				m.resources = append(m.resources, b)
			case "variable":
				m.variables[b.Labels[0]] = b
			case "locals":
				for k, a := range b.Body.Attributes {
					m.locals[k] = a.Expr
				}
			}
		}
	}
	m.ctx = m.evalContext(nil)
	return m
}

// evalContext builds var and local values; override replaces variables'
// values, so a test can ask what a validation makes of a bad value.
func (m *module) evalContext(override map[string]cty.Value) *hcl.EvalContext {
	vars := map[string]cty.Value{}
	for name, b := range m.variables {
		v := cty.StringVal("placeholder-" + name)
		if a, ok := b.Body.Attributes["default"]; ok {
			if dv, diags := a.Expr.Value(nil); !diags.HasErrors() {
				v = dv
			}
		}
		if o, ok := override[name]; ok {
			v = o
		}
		vars[name] = v
	}
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(vars), "path": cty.ObjectVal(map[string]cty.Value{"module": cty.StringVal(".")})},
		Functions: functions(),
	}
	// Resources' attributes are known only after apply.
	ctx.Variables["data"] = cty.DynamicVal
	for _, b := range m.resources {
		if b.Type == "resource" {
			ctx.Variables[b.Labels[0]] = cty.DynamicVal
		}
	}
	// Locals may refer to each other: evaluate until nothing changes.
	locals := map[string]cty.Value{}
	for range len(m.locals) + 1 {
		ctx.Variables["local"] = cty.ObjectVal(locals)
		next := map[string]cty.Value{}
		for k, e := range m.locals {
			v, diags := e.Value(ctx)
			if diags.HasErrors() {
				v = cty.DynamicVal
			}
			next[k] = v
		}
		locals = next
	}
	ctx.Variables["local"] = cty.ObjectVal(locals)
	return ctx
}

// functions are the Terraform functions the module may use. Functions of
// files and of the cloud are unknown here, as they would be before apply.
func functions() map[string]function.Function {
	unknown := function.New(&function.Spec{
		VarParam: &function.Parameter{Name: "args", Type: cty.DynamicPseudoType, AllowUnknown: true, AllowNull: true},
		Type:     function.StaticReturnType(cty.String),
		Impl:     func([]cty.Value, cty.Type) (cty.Value, error) { return cty.UnknownVal(cty.String), nil },
	})
	return map[string]function.Function{
		"contains": stdlib.ContainsFunc, "length": stdlib.LengthFunc, "distinct": stdlib.DistinctFunc,
		"merge": stdlib.MergeFunc, "keys": stdlib.KeysFunc, "values": stdlib.ValuesFunc, "lookup": stdlib.LookupFunc,
		"concat": stdlib.ConcatFunc, "flatten": stdlib.FlattenFunc, "format": stdlib.FormatFunc, "join": stdlib.JoinFunc,
		"lower": stdlib.LowerFunc, "upper": stdlib.UpperFunc, "substr": stdlib.SubstrFunc, "replace": stdlib.ReplaceFunc,
		"jsonencode": stdlib.JSONEncodeFunc, "setunion": stdlib.SetUnionFunc, "regex": stdlib.RegexFunc,
		"min": stdlib.MinFunc, "max": stdlib.MaxFunc, "startswith": startsWith(), "alltrue": allTrue(),
		"toset": toSet(), "tolist": toList(), "can": canFunc(),
		"filesha256": unknown, "filemd5": unknown, "file": unknown, "templatefile": unknown,
	}
}

func startsWith() function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "s", Type: cty.String}, {Name: "prefix", Type: cty.String}},
		Type:   function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			return cty.BoolVal(strings.HasPrefix(args[0].AsString(), args[1].AsString())), nil
		},
	})
}

func allTrue() function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "list", Type: cty.List(cty.Bool)}},
		Type:   function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			for it := args[0].ElementIterator(); it.Next(); {
				if _, v := it.Element(); !v.True() {
					return cty.False, nil
				}
			}
			return cty.True, nil
		},
	})
}

func toSet() function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "v", Type: cty.DynamicPseudoType}},
		Type:   func(args []cty.Value) (cty.Type, error) { return cty.Set(cty.String), nil },
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			vals := elements(args[0])
			if len(vals) == 0 {
				return cty.SetValEmpty(cty.String), nil
			}
			return cty.SetVal(vals), nil
		},
	})
}

func toList() function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "v", Type: cty.DynamicPseudoType}},
		Type:   func(args []cty.Value) (cty.Type, error) { return cty.List(cty.String), nil },
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			vals := elements(args[0])
			if len(vals) == 0 {
				return cty.ListValEmpty(cty.String), nil
			}
			return cty.ListVal(vals), nil
		},
	})
}

func canFunc() function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "v", Type: cty.DynamicPseudoType, AllowUnknown: true, AllowNull: true}},
		Type:   function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			return cty.BoolVal(args[0].IsWhollyKnown()), nil
		},
	})
}

func elements(v cty.Value) []cty.Value {
	var out []cty.Value
	if v.IsNull() || !v.IsKnown() || !v.CanIterateElements() {
		return nil
	}
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		out = append(out, e)
	}
	return out
}

// withVars is the module evaluated with some variables set to other values.
func (m *module) withVars(override map[string]cty.Value) *module {
	c := *m
	c.ctx = m.evalContext(override)
	return &c
}

// instances expands a resource block by its for_each, evaluated with the
// variables' defaults; a resource whose for_each is not known yields one
// instance whose each.key is unknown.
func (m *module) instances(b *hclsyntax.Block) []instance {
	fe, ok := b.Body.Attributes["for_each"]
	if !ok {
		return []instance{{block: b, ctx: m.ctx}}
	}
	unknown := []instance{{block: b, key: "?", ctx: m.with(cty.UnknownVal(cty.String), cty.DynamicVal)}}
	v, diags := fe.Expr.Value(m.ctx)
	// Terraform needs the keys at plan time; the values may wait for apply.
	t := v.Type()
	if diags.HasErrors() || !v.IsKnown() || v.IsNull() || !(t.IsMapType() || t.IsObjectType() || t.IsSetType()) {
		return unknown
	}
	var out []instance
	for it := v.ElementIterator(); it.Next(); {
		k, e := it.Element()
		if t.IsSetType() {
			k = e
		}
		if !k.IsKnown() || k.Type() != cty.String {
			return unknown
		}
		out = append(out, instance{block: b, key: k.AsString(), ctx: m.with(k, e)})
	}
	return out
}

func (m *module) with(key, value cty.Value) *hcl.EvalContext {
	c := m.ctx.NewChild()
	c.Variables = map[string]cty.Value{"each": cty.ObjectVal(map[string]cty.Value{"key": key, "value": value})}
	return c
}

// all returns every instance of resources of type typ ("" for all).
func (m *module) all(typ string) []instance {
	var out []instance
	for _, b := range m.resources {
		if b.Type == "resource" && (typ == "" || b.Labels[0] == typ) {
			out = append(out, m.instances(b)...)
		}
	}
	return out
}

// attr finds an attribute by path ("service_config.environment_variables").
func attr(b *hclsyntax.Block, path string) (*hclsyntax.Attribute, bool) {
	parts := strings.Split(path, ".")
	body := b.Body
	for _, p := range parts[:len(parts)-1] {
		var next *hclsyntax.Body
		for _, nb := range body.Blocks {
			if nb.Type == p {
				next = nb.Body
				break
			}
		}
		if next == nil {
			return nil, false
		}
		body = next
	}
	a, ok := body.Attributes[parts[len(parts)-1]]
	return a, ok
}

// value evaluates the attribute at path for the instance.
func (i instance) value(path string) (cty.Value, bool) {
	a, ok := attr(i.block, path)
	if !ok {
		return cty.NilVal, false
	}
	v, diags := a.Expr.Value(i.ctx)
	if diags.HasErrors() {
		return cty.DynamicVal, true
	}
	return v, true
}

// refers reports whether the attribute at path refers to a resource of
// type typ.
func (i instance) refers(path, typ string) bool {
	a, ok := attr(i.block, path)
	if !ok {
		return false
	}
	for _, tr := range a.Expr.Variables() {
		if tr.RootName() == typ {
			return true
		}
	}
	return false
}

// source is the attribute's expression as written.
func (m *module) source(a *hclsyntax.Attribute) string {
	r := a.Expr.Range()
	return string(m.files[r.Filename][r.Start.Byte:r.End.Byte])
}

// blocks returns the nested blocks of type typ anywhere under b.
func blocks(b *hclsyntax.Body, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, nb := range b.Blocks {
		if nb.Type == typ {
			out = append(out, nb)
		}
		out = append(out, blocks(nb.Body, typ)...)
	}
	return out
}

func strs(v cty.Value) ([]string, error) {
	if !v.IsWhollyKnown() || v.IsNull() {
		return nil, fmt.Errorf("not known before apply")
	}
	if v.Type() == cty.String {
		return []string{v.AsString()}, nil
	}
	if !v.CanIterateElements() {
		return nil, fmt.Errorf("a %s, not a string or a list of strings", v.Type().FriendlyName())
	}
	var out []string
	for _, e := range elements(v) {
		if e.Type() != cty.String {
			return nil, fmt.Errorf("a list holding a %s", e.Type().FriendlyName())
		}
		out = append(out, e.AsString())
	}
	return out, nil
}

// TestValidationsReferOnlyToTheirVariable: Terraform before 1.9 refuses a
// validation that refers to anything else, and the module supports 1.5.
func TestValidationsReferOnlyToTheirVariable(t *testing.T) {
	t.Parallel()
	m := loadDir(t, ".")
	for name, b := range m.variables {
		for _, vb := range b.Body.Blocks {
			if vb.Type != "validation" {
				continue
			}
			for _, a := range vb.Body.Attributes {
				for _, tr := range a.Expr.Variables() {
					if tr.RootName() != "var" || len(tr) < 2 || traversalAttr(tr[1]) != name {
						t.Errorf("var.%s: its validation refers to %s", name, m.source(a))
					}
				}
			}
		}
	}
}
