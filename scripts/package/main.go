// Command package builds the source archive of each deployable function
// for Terraform to upload: go run ./scripts/package [-out dir] [name...].
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sealedsense/sealedsense/shared/deploy"
)

func main() {
	out := flag.String("out", "terraform/build", "directory the archives are written to")
	module := flag.String("module", ".", "the module's root directory")
	flag.Parse()
	if err := run(context.Background(), *module, *out, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "package:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, module, out string, names []string) error {
	fns := deploy.Functions()
	if len(names) > 0 {
		fns = fns[:0]
		for _, n := range names {
			f, ok := deploy.Lookup(n)
			if !ok {
				return fmt.Errorf("no function named %q", n)
			}
			fns = append(fns, f)
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for _, f := range fns {
		var b bytes.Buffer
		if err := deploy.Archive(ctx, &b, module, f); err != nil {
			return err
		}
		p := filepath.Join(out, f.Name+".zip")
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			return err
		}
		fmt.Printf("%-8s %s  %7d bytes  sha256 %x\n", f.Name, p, b.Len(), sha256.Sum256(b.Bytes()))
	}
	return nil
}
