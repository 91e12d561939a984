package deploy_test

import (
	"bytes"
	"context"
	"go/parser"
	"go/token"
	"strings"
	"testing"

	"github.com/sealedsense/sealedsense/shared/deploy"
)

func TestArchiveIsReproducible(t *testing.T) {
	t.Parallel()
	root := moduleRoot(t)
	f, ok := deploy.Lookup("ingest")
	if !ok {
		t.Fatal("no ingest function")
	}
	var a, b bytes.Buffer
	if err := deploy.Archive(context.Background(), &a, root, f); err != nil {
		t.Fatal(err)
	}
	if err := deploy.Archive(context.Background(), &b, root, f); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two archives of the same source differ, so Terraform would redeploy an unchanged function")
	}
}

func TestArchiveRefuses(t *testing.T) {
	t.Parallel()
	root := moduleRoot(t)
	for _, tc := range []struct {
		name string
		fn   deploy.Function
		want string
	}{
		{"package outside the module", deploy.Function{Name: "x", Entry: "X", Kind: deploy.HTTP, Package: "net/http", Handler: "X"}, "not a package of the module"},
		{"no such package", deploy.Function{Name: "x", Entry: "X", Kind: deploy.HTTP, Package: "github.com/sealedsense/sealedsense/functions/nothere", Handler: "X"}, "nothere"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := deploy.Archive(context.Background(), &bytes.Buffer{}, root, tc.fn)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestFunctionsAreDistinctAndTheirRootsParse(t *testing.T) {
	t.Parallel()
	names, entries := map[string]bool{}, map[string]bool{}
	for _, f := range deploy.Functions() {
		if names[f.Name] || entries[f.Entry] {
			t.Errorf("%s/%s is listed twice", f.Name, f.Entry)
		}
		names[f.Name], entries[f.Entry] = true, true
		src, err := deploy.RootSource(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parser.ParseFile(token.NewFileSet(), deploy.RootFile, src, 0); err != nil {
			t.Errorf("%s: generated root does not parse: %v", f.Name, err)
		}
		if !bytes.Contains(src, []byte(`"`+f.Entry+`"`)) {
			t.Errorf("%s: generated root does not register %s", f.Name, f.Entry)
		}
	}
}
