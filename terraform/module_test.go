// Package terraform_test checks the Terraform root module's policies by
// parsing its files, HCL and JSON alike, and those of the local child
// modules it calls: no provider, plan or cloud account is needed.
package terraform_test

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/customdecode"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// module is a parsed Terraform module, with enough evaluation to know
// what its variables' values (defaults, or its caller's arguments) and its
// locals make of an attribute.
type module struct {
	addr      string             // "" for the root, "module.x[key]." for a child
	dir       string             // its directory, relative to the root ("." for the root)
	files     map[string][]byte  // every file read, by path relative to the root
	resources []*hclsyntax.Block // resource and data blocks
	providers []*hclsyntax.Block
	calls     []*hclsyntax.Block              // module blocks
	defs      map[*hclsyntax.Block]*module    // each local call's module, parsed
	remote    []string                        // calls of modules these tests cannot read
	variables map[string]*hclsyntax.Block     // by name
	locals    map[string]hclsyntax.Expression // by name
	children  []*module                       // every instance of every local call, evaluated
	ctx       *hcl.EvalContext
}

// instance is one instance of a block: under for_each or count, one of
// its keys.
type instance struct {
	block *hclsyntax.Block
	mod   string // the address of the module that holds it
	key   string // "" without for_each or count; "?" when they are not known
	ctx   *hcl.EvalContext
}

// addr is the instance's address as Terraform prints it, but with keys
// unquoted: module.m[a].google_x.y[b].
func (i instance) addr() string {
	b := i.block
	var s string
	switch b.Type {
	case "resource":
		s = b.Labels[0] + "." + b.Labels[1]
	case "data":
		s = "data." + b.Labels[0] + "." + b.Labels[1]
	default:
		s = strings.Join(append([]string{b.Type}, b.Labels...), ".")
	}
	if i.key != "" {
		s += "[" + i.key + "]"
	}
	return i.mod + s
}

func (i instance) String() string { return i.addr() + " " + at(i.block) }

// at is where a block is written: (file:line).
func at(b *hclsyntax.Block) string {
	r := b.TypeRange
	if len(b.LabelRanges) > 0 {
		r = b.LabelRanges[len(b.LabelRanges)-1]
	}
	return fmt.Sprintf("(%s:%d)", r.Filename, r.Start.Line)
}

// isConfig reports whether Terraform reads the file as configuration.
func isConfig(name string) bool {
	return strings.HasSuffix(name, ".tf") || strings.HasSuffix(name, ".tf.json")
}

// loadDir reads every .tf and .tf.json file under dir (but not under
// hidden directories such as .terraform) and loads the module in dir.
func loadDir(t *testing.T, dir string) *module {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !isConfig(d.Name()) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return load(t, files)
}

// load parses the files at the top of files (paths without a directory)
// as the root module, and the files of each local module it calls, then
// evaluates it with the variables' defaults.
func load(t *testing.T, files map[string][]byte) *module {
	t.Helper()
	return parse(t, files, ".", 0).evaluate(nil)
}

func parse(t *testing.T, files map[string][]byte, dir string, depth int) *module {
	t.Helper()
	if depth > 8 {
		t.Fatalf("%s: modules nested more than 8 deep: do they call each other?", dir)
	}
	m := &module{dir: dir, files: files, defs: map[*hclsyntax.Block]*module{},
		variables: map[string]*hclsyntax.Block{}, locals: map[string]hclsyntax.Expression{}}
	var names []string
	for n := range files {
		if path.Dir(n) == dir && isConfig(n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		t.Fatalf("no .tf or .tf.json files in %s", dir)
	}
	for _, name := range names {
		body, diags := parseFile(name, files[name])
		if diags.HasErrors() {
			t.Fatalf("%s: %s", name, diags.Error())
		}
		for _, b := range body.Blocks {
			switch b.Type {
			case "resource", "data":
				if len(b.Labels) != 2 {
					t.Fatalf("%s: %s block with labels %v", name, b.Type, b.Labels)
				}
				m.resources = append(m.resources, b)
			case "provider":
				m.providers = append(m.providers, b)
			case "module":
				m.calls = append(m.calls, b)
			case "variable":
				m.variables[b.Labels[0]] = b
			case "locals":
				for k, a := range b.Body.Attributes {
					m.locals[k] = a.Expr
				}
			}
		}
	}
	for _, c := range m.calls {
		src := ""
		if a, ok := c.Body.Attributes["source"]; ok {
			if v, diags := a.Expr.Value(nil); !diags.HasErrors() && v.IsKnown() && v.Type() == cty.String {
				src = v.AsString()
			}
		}
		if strings.HasPrefix(src, "./") || strings.HasPrefix(src, "../") {
			m.defs[c] = parse(t, files, path.Join(dir, src), depth+1)
		} else {
			m.remote = append(m.remote, fmt.Sprintf("module.%s %s comes from %q", c.Labels[0], at(c), src))
		}
	}
	return m
}

// parseFile parses HCL or, for .tf.json, Terraform's JSON syntax.
func parseFile(name string, src []byte) (*hclsyntax.Body, hcl.Diagnostics) {
	if strings.HasSuffix(name, ".tf.json") {
		return parseJSON(name, src)
	}
	f, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, diags
	}
	return f.Body.(*hclsyntax.Body), nil
}

// metaArgs are a module call's arguments that are not its variables.
var metaArgs = map[string]bool{"source": true, "version": true, "count": true, "for_each": true, "providers": true, "depends_on": true}

// evaluate binds the module's variables (override, else their defaults,
// else a placeholder as a tfvars file would give) and locals, and those
// of every instance of its local child modules, whose variables are the
// call's arguments.
func (m *module) evaluate(override map[string]cty.Value) *module {
	c := *m
	c.ctx = c.evalContext(override)
	c.children = nil
	for _, call := range c.calls {
		def, ok := c.defs[call]
		if !ok {
			continue
		}
		for _, inst := range c.instances(call) {
			args := map[string]cty.Value{}
			for name, a := range call.Body.Attributes {
				if !metaArgs[name] {
					v, diags := a.Expr.Value(inst.ctx)
					if diags.HasErrors() {
						v = cty.DynamicVal
					}
					args[name] = v
				}
			}
			child := *def
			child.addr = inst.addr() + "."
			c.children = append(c.children, child.evaluate(args))
		}
	}
	return &c
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
		Variables: map[string]cty.Value{
			"var":       cty.ObjectVal(vars),
			"path":      cty.ObjectVal(map[string]cty.Value{"module": cty.StringVal(m.dir), "root": cty.StringVal("."), "cwd": cty.StringVal(".")}),
			"terraform": cty.ObjectVal(map[string]cty.Value{"workspace": cty.StringVal("default")}),
			// Modules' outputs, data sources' and resources' attributes are
			// known only after apply.
			"module": cty.DynamicVal,
			"data":   cty.DynamicVal,
		},
		Functions: functions(),
	}
	for _, b := range m.resources {
		if b.Type == "resource" {
			ctx.Variables[b.Labels[0]] = cty.DynamicVal
		}
	}
	m.evalLocals(ctx)
	m.bindRefs(ctx)
	m.evalLocals(ctx)
	return ctx
}

// evalLocals sets local. Locals may refer to each other: evaluate until
// nothing changes.
func (m *module) evalLocals(ctx *hcl.EvalContext) {
	locals := map[string]cty.Value{}
	for range len(m.locals) + 1 {
		ctx.Variables["local"] = cty.ObjectVal(locals)
		next := map[string]cty.Value{}
		same := len(locals) == len(m.locals)
		for k, e := range m.locals {
			v, diags := e.Value(ctx)
			if diags.HasErrors() {
				v = cty.DynamicVal
			}
			next[k] = v
			same = same && v.RawEquals(locals[k])
		}
		locals = next
		if same {
			break
		}
	}
	ctx.Variables["local"] = cty.ObjectVal(locals)
}

// Stand-ins for the references policies must follow. A real id is known
// only after apply; these are known now and say what they name.
const (
	refSymmetricKey = "symmetric-kms-key:" // a google_kms_crypto_key for ENCRYPT_DECRYPT
	refOtherKey     = "kms-key-for-"       // a google_kms_crypto_key for another purpose
	refTopic        = "topic:"
	refSubscription = "subscription:"
	refRepository   = "repository:"
	refAgent        = "service-agent-of-" // a google_project_service_identity
)

// refs gives a few kinds of blocks known stand-in attributes, so that a
// policy can tell which key, topic, subscription, repository or service
// agent an attribute names, even through locals, for_each and
// conditionals. Every other attribute stays unknown, as before apply.
func refs(i instance) map[string]cty.Value {
	ref := func(kind string) map[string]cty.Value {
		s := cty.StringVal(kind + i.addr())
		return map[string]cty.Value{"id": s, "name": s}
	}
	typ := i.block.Labels[0]
	switch {
	case i.block.Type == "data" && typ == "google_project":
		return map[string]cty.Value{"number": cty.StringVal("PROJECT-NUMBER"), "project_id": cty.StringVal("PROJECT-ID"),
			"id": cty.StringVal("projects/PROJECT-ID"), "name": cty.StringVal("PROJECT-NAME")}
	case i.block.Type != "resource":
		return nil
	case typ == "google_kms_crypto_key":
		purpose := "ENCRYPT_DECRYPT"
		if v, ok := i.value("purpose"); ok {
			purpose = "unknown-purpose"
			if v.IsKnown() && !v.IsNull() && v.Type() == cty.String {
				purpose = v.AsString()
			}
		}
		if purpose == "ENCRYPT_DECRYPT" {
			return ref(refSymmetricKey)
		}
		return ref(refOtherKey + purpose + ":")
	case typ == "google_pubsub_topic":
		return ref(refTopic)
	case typ == "google_pubsub_subscription":
		return ref(refSubscription)
	case typ == "google_artifact_registry_repository":
		return ref(refRepository)
	case typ == "google_project_service_identity":
		svc := "unknown-service"
		if v, ok := i.value("service"); ok && v.IsKnown() && !v.IsNull() && v.Type() == cty.String {
			svc = v.AsString()
		}
		email := cty.StringVal(refAgent + svc)
		return map[string]cty.Value{"email": email, "member": cty.StringVal("serviceAccount:" + refAgent + svc), "id": email}
	}
	return nil
}

// bindRefs sets the stand-ins of refs in ctx.
func (m *module) bindRefs(ctx *hcl.EvalContext) {
	byType := map[string]map[string]cty.Value{} // "google_x" or "data.google_x" -> name -> value
	for _, b := range m.resources {
		typ := b.Labels[0]
		if b.Type == "data" {
			typ = "data." + typ
		}
		if byType[typ] == nil {
			byType[typ] = map[string]cty.Value{}
		}
		byType[typ][b.Labels[1]] = m.refValue(b, ctx)
	}
	data := map[string]cty.Value{}
	for typ, blocks := range byType {
		if d, ok := strings.CutPrefix(typ, "data."); ok {
			data[d] = cty.ObjectVal(blocks)
			continue
		}
		// A type with no stand-ins stays wholly unknown.
		for _, v := range blocks {
			if v != cty.DynamicVal {
				ctx.Variables[typ] = cty.ObjectVal(blocks)
				break
			}
		}
	}
	ctx.Variables["data"] = cty.ObjectVal(data)
}

// refValue is what a reference to the block's name evaluates to: its
// instance's stand-ins, or an object or tuple of them under for_each or
// count; unknown when it has no stand-ins or its keys are not known.
func (m *module) refValue(b *hclsyntax.Block, ctx *hcl.EvalContext) cty.Value {
	insts := m.expand(b, ctx)
	vals := make([]cty.Value, len(insts))
	for n, i := range insts {
		attrs := refs(i)
		if attrs == nil || i.key == "?" {
			return cty.DynamicVal
		}
		vals[n] = cty.ObjectVal(attrs)
	}
	switch {
	case b.Body.Attributes["count"] != nil:
		if len(vals) == 0 {
			return cty.EmptyTupleVal
		}
		return cty.TupleVal(vals)
	case b.Body.Attributes["for_each"] != nil:
		byKey := map[string]cty.Value{}
		for n, i := range insts {
			byKey[i.key] = vals[n]
		}
		return cty.ObjectVal(byKey)
	}
	return vals[0]
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

// canFunc is Terraform's can: it receives its argument unevaluated and
// is false when evaluating it fails (a refused regex, a missing attribute
// or variable), unknown while the value is, and true otherwise.
func canFunc() function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "expression", Type: customdecode.ExpressionClosureType}},
		Type:   function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			v, diags := customdecode.ExpressionClosureFromVal(args[0]).Value()
			switch {
			case diags.HasErrors():
				return cty.False, nil
			case !v.IsWhollyKnown():
				return cty.UnknownVal(cty.Bool), nil
			}
			return cty.True, nil
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
	return m.evaluate(override)
}

// instances expands a block by its count or for_each, evaluated with the
// module's values; a block whose count or for_each is not known yields
// one instance whose key ("?") is unknown.
func (m *module) instances(b *hclsyntax.Block) []instance {
	return m.expand(b, m.ctx)
}

func (m *module) expand(b *hclsyntax.Block, ctx *hcl.EvalContext) []instance {
	if ca, ok := b.Body.Attributes["count"]; ok {
		unknown := []instance{{block: b, mod: m.addr, key: "?", ctx: child(ctx, "count", cty.ObjectVal(map[string]cty.Value{"index": cty.UnknownVal(cty.Number)}))}}
		v, diags := ca.Expr.Value(ctx)
		if diags.HasErrors() || !v.IsKnown() || v.IsNull() || v.Type() != cty.Number {
			return unknown
		}
		n, _ := v.AsBigFloat().Int64()
		out := []instance{}
		for i := range n {
			c := child(ctx, "count", cty.ObjectVal(map[string]cty.Value{"index": cty.NumberIntVal(i)}))
			out = append(out, instance{block: b, mod: m.addr, key: strconv.FormatInt(i, 10), ctx: c})
		}
		return out
	}
	fe, ok := b.Body.Attributes["for_each"]
	if !ok {
		return []instance{{block: b, mod: m.addr, ctx: ctx}}
	}
	unknown := []instance{{block: b, mod: m.addr, key: "?", ctx: each(ctx, cty.UnknownVal(cty.String), cty.DynamicVal)}}
	v, diags := fe.Expr.Value(ctx)
	// Terraform needs the keys at plan time; the values may wait for apply.
	t := v.Type()
	if diags.HasErrors() || !v.IsKnown() || v.IsNull() || !(t.IsMapType() || t.IsObjectType() || t.IsSetType()) {
		return unknown
	}
	out := []instance{}
	for it := v.ElementIterator(); it.Next(); {
		k, e := it.Element()
		if t.IsSetType() {
			k = e
		}
		if !k.IsKnown() || k.Type() != cty.String {
			return unknown
		}
		out = append(out, instance{block: b, mod: m.addr, key: k.AsString(), ctx: each(ctx, k, e)})
	}
	return out
}

func each(ctx *hcl.EvalContext, key, value cty.Value) *hcl.EvalContext {
	return child(ctx, "each", cty.ObjectVal(map[string]cty.Value{"key": key, "value": value}))
}

func child(ctx *hcl.EvalContext, name string, v cty.Value) *hcl.EvalContext {
	c := ctx.NewChild()
	c.Variables = map[string]cty.Value{name: v}
	return c
}

// modules are the module and every instance of its child modules.
func (m *module) modules() []*module {
	out := []*module{m}
	for _, c := range m.children {
		out = append(out, c.modules()...)
	}
	return out
}

// all returns every instance of resources of type typ ("" for all), in
// the module and its child modules.
func (m *module) all(typ string) []instance {
	var out []instance
	for _, mm := range m.modules() {
		for _, b := range mm.resources {
			if b.Type == "resource" && (typ == "" || b.Labels[0] == typ) {
				out = append(out, mm.instances(b)...)
			}
		}
	}
	return out
}

// everything returns every instance of every resource, data source and
// provider, in the module and its child modules.
func (m *module) everything() []instance {
	var out []instance
	for _, mm := range m.modules() {
		for _, b := range append(append([]*hclsyntax.Block{}, mm.resources...), mm.providers...) {
			out = append(out, mm.instances(b)...)
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

// source is the attribute's expression as written (near enough for a
// JSON string, whose escapes the template parser does not see).
func (m *module) source(a *hclsyntax.Attribute) string {
	r := a.Expr.Range()
	f := m.files[r.Filename]
	end := min(r.End.Byte, len(f))
	return string(f[min(r.Start.Byte, end):end])
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
	for _, m := range loadDir(t, ".").modules() {
		for name, b := range m.variables {
			for _, vb := range b.Body.Blocks {
				if vb.Type != "validation" {
					continue
				}
				for _, a := range vb.Body.Attributes {
					for _, tr := range a.Expr.Variables() {
						if tr.RootName() != "var" || len(tr) < 2 || traversalAttr(tr[1]) != name {
							t.Errorf("%svar.%s %s: its validation refers to %s", m.addr, name, at(b), m.source(a))
						}
					}
				}
			}
		}
	}
}

// TestCan: can() is false, not an error, when its argument fails, so a
// validation built on it refuses a bad value instead of erroring.
func TestCan(t *testing.T) {
	t.Parallel()
	ctx := &hcl.EvalContext{Functions: functions(), Variables: map[string]cty.Value{
		"var": cty.ObjectVal(map[string]cty.Value{"id": cty.StringVal("conn-1"), "later": cty.UnknownVal(cty.String)}),
	}}
	for _, c := range []struct {
		expr string
		want cty.Value
	}{
		{`can(regex("^[a-z-0-9]+$", var.id))`, cty.True},
		{`can(regex("^[A-Z]+$", var.id))`, cty.False},
		{`can(var.missing)`, cty.False},
		{`can(var.id.nope)`, cty.False},
		{`can(var.later)`, cty.UnknownVal(cty.Bool)},
		{`alltrue([for c in ["a", "B"] : can(regex("^[a-z]$", c))])`, cty.False},
	} {
		t.Run(c.expr, func(t *testing.T) {
			e, diags := hclsyntax.ParseExpression([]byte(c.expr), "test", hcl.InitialPos)
			if diags.HasErrors() {
				t.Fatal(diags.Error())
			}
			got, diags := e.Value(ctx)
			if diags.HasErrors() {
				t.Fatalf("%s: error %s; want %#v", c.expr, diags.Error(), c.want)
			}
			if !got.RawEquals(c.want) {
				t.Fatalf("%s = %#v; want %#v", c.expr, got, c.want)
			}
		})
	}
}

// TestLoadReadsJSONAndChildModules: a resource is seen wherever
// Terraform would read it, with the values its caller gives it.
func TestLoadReadsJSONAndChildModules(t *testing.T) {
	t.Parallel()
	m := load(t, map[string][]byte{
		"main.tf": []byte(`
variable "region" {
  default = "europe-west1"
}
module "store" {
  for_each = toset(["a", "b"])
  source   = "./modules/store"
  location = var.region
  name     = each.key
}`),
		"extra.tf.json": []byte(`{
  "resource": {"google_pubsub_topic": {"t": {"name": "t-${var.region}", "message_storage_policy": {"allowed_persistence_regions": ["${var.region}"]}}}}
}`),
		"modules/store/main.tf": []byte(`
variable "location" {}
variable "name" {}
resource "google_storage_bucket" "b" {
  count    = 2
  name     = "${var.name}-${count.index}"
  location = var.location
}`),
	})
	got := map[string]string{}
	for _, i := range m.all("") {
		for _, p := range []string{"name", "location", "message_storage_policy.allowed_persistence_regions"} {
			if v, ok := i.value(p); ok {
				got[i.addr()+" "+p] = v.GoString()
			}
		}
	}
	want := map[string]string{
		"google_pubsub_topic.t name": `cty.StringVal("t-europe-west1")`,
		"google_pubsub_topic.t message_storage_policy.allowed_persistence_regions": `cty.TupleVal([]cty.Value{cty.StringVal("europe-west1")})`,
		"module.store[a].google_storage_bucket.b[0] name":                          `cty.StringVal("a-0")`,
		"module.store[a].google_storage_bucket.b[0] location":                      `cty.StringVal("europe-west1")`,
		"module.store[a].google_storage_bucket.b[1] name":                          `cty.StringVal("a-1")`,
		"module.store[a].google_storage_bucket.b[1] location":                      `cty.StringVal("europe-west1")`,
		"module.store[b].google_storage_bucket.b[0] name":                          `cty.StringVal("b-0")`,
		"module.store[b].google_storage_bucket.b[0] location":                      `cty.StringVal("europe-west1")`,
		"module.store[b].google_storage_bucket.b[1] name":                          `cty.StringVal("b-1")`,
		"module.store[b].google_storage_bucket.b[1] location":                      `cty.StringVal("europe-west1")`,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %s; want %s", k, got[k], w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %s = %s", k, g)
		}
	}
}
