package terraform_test

import (
	"sort"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	hcljson "github.com/hashicorp/hcl/v2/json"
	"github.com/zclconf/go-cty/cty"
)

// parseJSON reads a file in Terraform's JSON syntax into the shape the
// native syntax parses to, so that every policy sees both alike. Strings
// are templates, as Terraform reads them. Without the providers' schemas
// an object may be a nested block or an object-valued argument: it becomes
// both, a block of the key's type and an attribute of the same name.
func parseJSON(name string, src []byte) (*hclsyntax.Body, hcl.Diagnostics) {
	f, diags := hcljson.Parse(src, name)
	if diags.HasErrors() {
		return nil, diags
	}
	attrs, diags := f.Body.JustAttributes()
	if diags.HasErrors() {
		return nil, diags
	}
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	sort.Strings(names)
	j := &jsonReader{}
	body := &hclsyntax.Body{Attributes: hclsyntax.Attributes{}}
	for _, n := range names {
		a := attrs[n]
		switch n {
		case "resource", "data":
			for _, typ := range j.pairs(a.Expr) {
				for _, name := range j.pairs(typ.value) {
					for _, o := range j.objects(name.value) {
						body.Blocks = append(body.Blocks, j.block(n, []pair{typ, name}, o))
					}
				}
			}
		case "variable", "module", "provider", "output":
			for _, name := range j.pairs(a.Expr) {
				for _, o := range j.objects(name.value) {
					body.Blocks = append(body.Blocks, j.block(n, []pair{name}, o))
				}
			}
		case "locals":
			for _, o := range j.objects(a.Expr) {
				body.Blocks = append(body.Blocks, j.block(n, nil, o))
			}
		}
	}
	return body, j.diags
}

type jsonReader struct{ diags hcl.Diagnostics }

// pair is one property of a JSON object.
type pair struct {
	key      string
	keyRange hcl.Range
	value    hcl.Expression
}

func (j *jsonReader) pairs(e hcl.Expression) []pair {
	kvs, diags := hcl.ExprMap(e)
	j.diags = append(j.diags, diags...)
	var out []pair
	for _, kv := range kvs {
		k, diags := kv.Key.Value(nil)
		j.diags = append(j.diags, diags...)
		if diags.HasErrors() || k.Type() != cty.String || k.AsString() == "//" {
			continue
		}
		out = append(out, pair{key: k.AsString(), keyRange: kv.Key.Range(), value: kv.Value})
	}
	return out
}

// objects is e if it is an object, or its objects if it is an array: a
// block, or a list of blocks of one type.
func (j *jsonReader) objects(e hcl.Expression) []hcl.Expression {
	v, _ := e.Value(nil)
	switch {
	case v.Type().IsObjectType():
		return []hcl.Expression{e}
	case v.Type().IsTupleType():
		l, diags := hcl.ExprList(e)
		j.diags = append(j.diags, diags...)
		var out []hcl.Expression
		for _, el := range l {
			if ev, _ := el.Value(nil); ev.Type().IsObjectType() {
				out = append(out, el)
			}
		}
		return out
	}
	return nil
}

func (j *jsonReader) block(typ string, labels []pair, o hcl.Expression) *hclsyntax.Block {
	r := o.Range()
	b := &hclsyntax.Block{Type: typ, Body: j.body(o), TypeRange: r, OpenBraceRange: r, CloseBraceRange: r}
	for _, l := range labels {
		b.Labels = append(b.Labels, l.key)
		b.LabelRanges = append(b.LabelRanges, l.keyRange)
	}
	return b
}

func (j *jsonReader) body(o hcl.Expression) *hclsyntax.Body {
	b := &hclsyntax.Body{Attributes: hclsyntax.Attributes{}, SrcRange: o.Range(), EndRange: o.Range()}
	for _, p := range j.pairs(o) {
		if p.key == "dynamic" {
			for _, l := range j.pairs(p.value) {
				for _, c := range j.objects(l.value) {
					b.Blocks = append(b.Blocks, j.block("dynamic", []pair{l}, c))
				}
			}
			continue
		}
		b.Attributes[p.key] = &hclsyntax.Attribute{Name: p.key, Expr: j.expr(p.value),
			SrcRange: hcl.RangeBetween(p.keyRange, p.value.Range()), NameRange: p.keyRange, EqualsRange: p.keyRange}
		for _, c := range j.objects(p.value) {
			nb := j.block(p.key, nil, c)
			nb.TypeRange = p.keyRange
			b.Blocks = append(b.Blocks, nb)
		}
	}
	return b
}

func (j *jsonReader) expr(e hcl.Expression) hclsyntax.Expression {
	r := e.Range()
	v, _ := e.Value(nil)
	switch t := v.Type(); {
	case t == cty.String && v.IsKnown() && !v.IsNull():
		// The template starts after the opening quote; escapes shift
		// later columns a little.
		start := hcl.Pos{Line: r.Start.Line, Column: r.Start.Column + 1, Byte: r.Start.Byte + 1}
		x, diags := hclsyntax.ParseTemplate([]byte(v.AsString()), r.Filename, start)
		j.diags = append(j.diags, diags...)
		if diags.HasErrors() || x == nil {
			return &hclsyntax.LiteralValueExpr{Val: cty.DynamicVal, SrcRange: r}
		}
		return x
	case t.IsObjectType():
		o := &hclsyntax.ObjectConsExpr{SrcRange: r, OpenRange: r}
		for _, p := range j.pairs(e) {
			o.Items = append(o.Items, hclsyntax.ObjectConsItem{
				KeyExpr:   &hclsyntax.ObjectConsKeyExpr{Wrapped: &hclsyntax.LiteralValueExpr{Val: cty.StringVal(p.key), SrcRange: p.keyRange}},
				ValueExpr: j.expr(p.value),
			})
		}
		return o
	case t.IsTupleType():
		l, diags := hcl.ExprList(e)
		j.diags = append(j.diags, diags...)
		tup := &hclsyntax.TupleConsExpr{SrcRange: r, OpenRange: r}
		for _, el := range l {
			tup.Exprs = append(tup.Exprs, j.expr(el))
		}
		return tup
	}
	return &hclsyntax.LiteralValueExpr{Val: v, SrcRange: r}
}

// FuzzParseJSON: any JSON, however far from Terraform's shape, is read or
// refused with diagnostics, and whatever is read evaluates without a panic.
func FuzzParseJSON(f *testing.F) {
	for _, seed := range []string{
		`{"resource": {"google_storage_bucket": {"b": {"location": "US", "encryption": {"default_kms_key_name": "${google_kms_crypto_key.k.id}"}}}}}`,
		`{"resource": {"t": {"n": [1, {"a": 1}, null, "x"]}}, "locals": [{"a": "${1 + }"}]}`,
		`{"variable": {"region": {"default": "europe-west1", "validation": [{"condition": "${startswith(var.region, \"europe-\")}"}]}}}`,
		`{"module": {"m": {"source": "./m", "dynamic": {"x": {"for_each": [1], "content": {}}}}}, "//": "comment"}`,
		`[]`, `{"resource": "x"}`, `{"data": {"google_project": {"this": {}}}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		body, diags := parseJSON("fuzz.tf.json", src)
		if diags.HasErrors() || body == nil {
			return
		}
		ctx := &hcl.EvalContext{Functions: functions()}
		var walk func(b *hclsyntax.Body)
		walk = func(b *hclsyntax.Body) {
			for _, a := range b.Attributes {
				_, _ = a.Expr.Value(ctx)
				_ = a.Expr.Variables()
			}
			for _, nb := range b.Blocks {
				walk(nb.Body)
			}
		}
		walk(body)
	})
}
