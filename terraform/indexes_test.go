package terraform_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/sealedsense/sealedsense/shared/store"
)

// TestIndexesMatchTheDataModel: every composite index a query of
// shared/store declares exists in firestore.tf, and firestore.tf declares
// no composite index that no query needs (each costs a write per document).
func TestIndexesMatchTheDataModel(t *testing.T) {
	m := loadDir(t, ".")
	declared := map[string]string{} // index key -> resource instance
	for _, in := range m.all("google_firestore_index") {
		key, err := indexKey(in)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		declared[key] = in.String()
	}
	needed := map[string]bool{}
	for _, ix := range store.Indexes() {
		key := storeKey(ix)
		needed[key] = true
		if _, ok := declared[key]; !ok {
			t.Errorf("shared/store queries need the index %s; terraform/firestore.tf does not declare it", key)
		}
	}
	for key, res := range declared {
		if !needed[key] {
			t.Errorf("%s declares the index %s, which no query of shared/store declares that it needs", res, key)
		}
	}
	if len(needed) == 0 {
		t.Fatal("shared/store declares no index at all")
	}
}

func storeKey(ix store.Index) string {
	parts := make([]string, len(ix.Fields))
	for i, f := range ix.Fields {
		parts[i] = f.Path + " " + string(f.Order)
	}
	return ix.Collection + "(" + strings.Join(parts, ", ") + ")"
}

// indexKey evaluates an index resource's collection and its fields, plain
// and dynamic blocks alike, in the order written.
func indexKey(in instance) (string, error) {
	coll, ok := in.value("collection")
	if !ok || !coll.IsKnown() || coll.Type() != cty.String {
		return "", fmt.Errorf("collection is not a known string")
	}
	var parts []string
	for _, b := range in.block.Body.Blocks {
		switch {
		case b.Type == "fields":
			p, err := fieldPart(b.Body, in.ctx)
			if err != nil {
				return "", err
			}
			parts = append(parts, p)
		case b.Type == "dynamic" && slices.Equal(b.Labels, []string{"fields"}):
			ps, err := dynamicFields(b, in.ctx)
			if err != nil {
				return "", err
			}
			parts = append(parts, ps...)
		}
	}
	return coll.AsString() + "(" + strings.Join(parts, ", ") + ")", nil
}

func dynamicFields(b *hclsyntax.Block, ctx *hcl.EvalContext) ([]string, error) {
	fe, diags := b.Body.Attributes["for_each"].Expr.Value(ctx)
	if diags.HasErrors() || !fe.IsWhollyKnown() {
		return nil, fmt.Errorf("dynamic fields: for_each is not known")
	}
	var content *hclsyntax.Body
	for _, nb := range b.Body.Blocks {
		if nb.Type == "content" {
			content = nb.Body
		}
	}
	var out []string
	for _, e := range elements(fe) {
		c := ctx.NewChild()
		c.Variables = map[string]cty.Value{"fields": cty.ObjectVal(map[string]cty.Value{"value": e})}
		p, err := fieldPart(content, c)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func fieldPart(body *hclsyntax.Body, ctx *hcl.EvalContext) (string, error) {
	var vals [2]string
	for i, name := range []string{"field_path", "order"} {
		a, ok := body.Attributes[name]
		if !ok {
			return "", fmt.Errorf("fields without %s", name)
		}
		v, diags := a.Expr.Value(ctx)
		if diags.HasErrors() || !v.IsKnown() || v.Type() != cty.String {
			return "", fmt.Errorf("fields: %s is not a known string", name)
		}
		vals[i] = v.AsString()
	}
	return vals[0] + " " + vals[1], nil
}

// risingUnindexed: every field that shared/store declares rising (its
// values grow with each write, so its single-field index takes every
// write at one end, which Firestore limits to about 500 a second per
// collection) is exempted from single-field indexing by a
// google_firestore_field with an empty index_config, unless a query uses
// it alone; and no field a query uses alone is exempted.
func risingUnindexed(t *testing.T, m *module) []string {
	exempt := map[store.FieldRef]string{}
	for _, in := range m.all("google_firestore_field") {
		coll, ok1 := in.value("collection")
		field, ok2 := in.value("field")
		if !ok1 || !ok2 || !coll.IsKnown() || !field.IsKnown() || coll.Type() != cty.String || field.Type() != cty.String {
			continue
		}
		ic := blocks(in.block.Body, "index_config")
		if len(ic) == 1 && len(blocks(ic[0].Body, "indexes")) == 0 {
			exempt[store.FieldRef{Collection: coll.AsString(), Path: field.AsString()}] = in.String()
		}
	}
	queried := map[store.FieldRef]bool{}
	for _, f := range store.SingleFieldQueries() {
		queried[f] = true
	}
	var out []string
	for _, f := range store.RisingFields() {
		res, isExempt := exempt[f]
		switch {
		case queried[f] && isExempt:
			out = append(out, fmt.Sprintf("%s exempts %s.%s from single-field indexing, which a query of shared/store uses alone", res, f.Collection, f.Path))
		case !queried[f] && !isExempt:
			out = append(out, fmt.Sprintf("%s.%s rises with every write and no query uses it alone, but no google_firestore_field exempts it from single-field indexing (a hot spot of about 500 writes a second for the collection)", f.Collection, f.Path))
		}
	}
	return out
}

// TestRisingFieldsAreDeclared: the collections written per packet or per
// event declare their rising fields, so that the policy above has them to
// check and cannot pass on an empty list.
func TestRisingFieldsAreDeclared(t *testing.T) {
	declared := map[string][]string{}
	for _, f := range store.RisingFields() {
		declared[f.Collection] = append(declared[f.Collection], f.Path)
	}
	for _, c := range []string{"events", "receptions", "sessions", "deliveries", "devices"} {
		if len(declared[c]) == 0 {
			t.Errorf("shared/store declares no rising field of %s", c)
		}
	}
}
