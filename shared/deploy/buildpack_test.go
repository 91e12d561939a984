package deploy_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/emulators/platform"
	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/emulators/stack"
	"github.com/sealedsense/sealedsense/shared/deploy"
	"github.com/sealedsense/sealedsense/shared/logging/logtest"
)

func TestMain(m *testing.M) { platformtest.Main(m) }

const (
	frameworkModule    = "github.com/GoogleCloudPlatform/functions-framework-go"
	frameworkFunctions = frameworkModule + "/functions"
	// The names the buildpack (cmd/go/functions_framework) uses.
	sourceDir = "serverless_function_source_code"
	appModule = "functions.local/app"
)

// mainSource is the main the buildpack generates for a root package that
// registers its functions itself: it blank-imports that package, answers
// 404 for the two reserved paths, and serves on $PORT (8080 by default).
func mainSource(pkg string) string {
	return fmt.Sprintf(`package main

import (
	"log"
	"net/http"
	"os"

	_ %q

	"%s/funcframework"
)

func main() {
	http.HandleFunc("/robots.txt", http.NotFound)
	http.HandleFunc("/favicon.ico", http.NotFound)
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	if err := funcframework.Start(port); err != nil {
		log.Fatalf("Function failed to start: %%v\n", err)
	}
}
`, pkg, frameworkModule)
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// goCmd runs the go command in dir as the buildpack would: outside any
// workspace, free to update go.mod and go.sum.
func goCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s in %s: %v\n%s", strings.Join(args, " "), dir, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

func unzip(t *testing.T, data []byte, dir string) []string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		if strings.Contains(f.Name, "..") || filepath.IsAbs(f.Name) {
			t.Fatalf("archive entry %q escapes the upload", f.Name)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, f.Name)
	}
	return names
}

// rootPackage is what the buildpack's get_package step reads: the one
// package in the source root, and its imports.
func rootPackage(t *testing.T, dir string) (string, map[string]bool) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names, imports := map[string]bool{}, map[string]bool{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, e.Name()), nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		names[f.Name.Name] = true
		for _, im := range f.Imports {
			imports[strings.Trim(im.Path.Value, `"`)] = true
		}
	}
	if len(names) != 1 {
		t.Fatalf("the archive root holds packages %v; the buildpack needs exactly one", names)
	}
	for name := range names {
		return name, imports
	}
	panic("unreachable")
}

// TestArchiveBuildsAsTheBuildpackDoes reproduces, offline, what the Cloud
// Run Go buildpack does with each function's archive, then runs the result
// as Cloud Run would and sends it a request.
func TestArchiveBuildsAsTheBuildpackDoes(t *testing.T) {
	root := moduleRoot(t)
	for _, f := range deploy.Functions() {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			var zipped bytes.Buffer
			if err := deploy.Archive(context.Background(), &zipped, root, f); err != nil {
				t.Fatal(err)
			}
			ws := t.TempDir()
			entries := unzip(t, zipped.Bytes(), ws)
			for _, name := range entries {
				if strings.HasSuffix(name, "_test.go") || strings.Contains(name, "testdata/") {
					t.Errorf("archive holds %s, which no build needs", name)
				}
			}

			// The buildpack moves the upload into a subdirectory.
			src := filepath.Join(ws, sourceDir)
			top, err := os.ReadDir(ws)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(src, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, e := range top {
				if err := os.Rename(filepath.Join(ws, e.Name()), filepath.Join(src, e.Name())); err != nil {
					t.Fatal(err)
				}
			}

			pkgName, imports := rootPackage(t, src)
			if !imports[frameworkFunctions] {
				t.Fatalf("the root package does not import %s, so the buildpack would expect an exported %s in it instead of a registration", frameworkFunctions, f.Entry)
			}
			mod := goCmd(t, src, "list", "-m")
			if first, _, _ := strings.Cut(mod, "/"); !strings.Contains(first, ".") {
				t.Fatalf("module path %q: the buildpack needs a dot in its first element", mod)
			}
			// The buildpack imports module/<package name> when the
			// workspace holds a directory of that name, else the module.
			pkg := mod
			if _, err := os.Stat(filepath.Join(ws, pkgName)); err == nil {
				pkg = mod + "/" + pkgName
			}
			if v := goCmd(t, src, "list", "-m", "-f", "{{.Version}}", frameworkModule); v == "" {
				t.Fatal("go.mod does not require functions-framework-go; the buildpack would inject its own version")
			}
			app := filepath.Join(src, filepath.FromSlash(appModule))
			if err := os.MkdirAll(app, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(app, "main.go"), []byte(mainSource(pkg)), 0o644); err != nil {
				t.Fatal(err)
			}
			goCmd(t, src, "mod", "tidy")
			bin := filepath.Join(t.TempDir(), f.Name)
			// -trimpath keeps the build cache shared between the archives, each
			// unpacked in a directory of its own; the build is the same.
			goCmd(t, src, "build", "-trimpath", "-o", bin, "./"+appModule)

			// Everything the archive carries is compiled into the function.
			built := map[string]bool{}
			for _, p := range strings.Fields(goCmd(t, src, "list", "-deps", "-f", "{{.Dir}}", "./"+appModule)) {
				built[p] = true
			}
			for _, name := range entries {
				if strings.HasSuffix(name, ".go") && !built[filepath.Dir(filepath.Join(src, filepath.FromSlash(name)))] {
					t.Errorf("archive holds %s, which the function does not import", name)
				}
			}

			answer(t, f, bin)
		})
	}
}

// answer starts the built function as Cloud Run does (PORT and
// FUNCTION_TARGET set) against the emulators, and sends it the request its
// trigger sends.
func answer(t *testing.T, f deploy.Function, bin string) {
	t.Helper()
	addr, err := platform.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(addr, ":")
	project := platformtest.ProjectID(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), platformtest.Platform().Env()...)
	cmd.Env = append(cmd.Env, "PORT="+port, "FUNCTION_TARGET="+f.Entry, "K_SERVICE="+f.Name,
		"GOOGLE_CLOUD_PROJECT="+project,
		"SEALEDSENSE_DEVICE_KEY=projects/"+project+"/locations/europe/keyRings/r/cryptoKeys/device",
		"SEALEDSENSE_SESSION_KEK_KEY=projects/"+project+"/locations/europe/keyRings/r/cryptoKeys/kek",
		"SEALEDSENSE_API_SECRETS_KEY=projects/"+project+"/locations/europe/keyRings/r/cryptoKeys/api",
		"SEALEDSENSE_SIGNING_KEY=projects/"+project+"/locations/europe/keyRings/r/cryptoKeys/signing",
		"SEALEDSENSE_WEBHOOK_SECRETS_KEY=projects/"+project+"/locations/europe/keyRings/r/cryptoKeys/webhook-secrets",
		"SEALEDSENSE_WEBHOOK_SIGNING_KEY=projects/"+project+"/locations/europe/keyRings/r/cryptoKeys/webhook-signing",
		"SEALEDSENSE_API_BASE_URL=http://"+addr, "SEALEDSENSE_EXPORT_BUCKET="+project+"-exports",
		"SEALEDSENSE_STUDIO_URL=http://"+addr+"/studio")
	if f.Name == "backup" {
		cmd.Env = append(cmd.Env, backupEnv(t, project)...)
	}
	var logs logtest.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s's output:\n%s", f.Name, logs.String())
		}
	})

	var req func() (*http.Response, error)
	want := http.StatusOK
	switch f.Kind {
	case deploy.HTTP:
		// The API answers its OpenAPI document without credentials or
		// keys, the stream refuses a stream without credentials in DT's
		// error shape, and the sweeps answer a POST on any path.
		// The operators' routes refuse a rollout id that is no id (their
		// own 400, not the mux's 404 for a route they do not serve).
		// Studio, having started the API in-process, refuses its session
		// route to a browser that has not signed in.
		path := map[string]string{"api": "/v2/openapi.json", "stream": "/v2/projects/p/devices:stream", "operator": "/rollouts/not-an-id",
			"studio": "/studio/session"}[f.Name]
		switch f.Name {
		case "stream", "studio":
			want = http.StatusUnauthorized
		case "operator":
			want = http.StatusBadRequest
		}
		req = func() (*http.Response, error) {
			if path != "" {
				return http.Get("http://" + addr + path)
			}
			return http.Post("http://"+addr+"/", "application/json", nil)
		}
	case deploy.CloudEvent:
		// What a push subscription sends: a message that is not an
		// uplink envelope, which ingest must refuse and acknowledge.
		body, _ := json.Marshal(map[string]any{
			"message": map[string]any{
				"data": base64.StdEncoding.EncodeToString([]byte("not an envelope")), "messageId": "1",
				"publishTime": time.Now().UTC().Format(time.RFC3339Nano), "attributes": map[string]string{},
			},
			"subscription": "projects/" + project + "/subscriptions/ingest-uplinks",
		})
		req = func() (*http.Response, error) {
			return http.Post("http://"+addr+"/projects/"+project+"/topics/uplinks", "application/json", bytes.NewReader(body))
		}
	default:
		t.Fatalf("no request for kind %q", f.Kind)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := req()
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Fatalf("%s answered %s: %s", f.Name, resp.Status, b)
			}
			if f.Kind == deploy.HTTP && !json.Valid(b) {
				t.Fatalf("%s answered %q, not JSON", f.Name, b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer within 30s: %v", f.Name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if f.Kind == deploy.CloudEvent {
		// The answer came from the function, not from a handler that
		// accepts anything: it says why it refused the message.
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(logs.String(), `"rejected":`) {
			if time.Now().After(deadline) {
				t.Fatalf("%s acknowledged the message without logging its rejection", f.Name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// backupEnv makes what the backup function writes to — its KMS key and
// two buckets — so that its answer is a real backup, not a refusal.
func backupEnv(t *testing.T, project string) []string {
	t.Helper()
	ctx := context.Background()
	keys, err := stack.EnsureKMS(ctx, platformtest.KMS(t), "projects/"+project+"/locations/europe/keyRings/backup")
	if err != nil {
		t.Fatal(err)
	}
	buckets := []string{project + "-keys-1", project + "-keys-2"}
	for _, b := range buckets {
		if err := platformtest.Storage(t).Bucket(b).Create(ctx, "test", nil); err != nil {
			t.Fatal(err)
		}
	}
	return []string{"SEALEDSENSE_BACKUP_KEY=" + keys.Backup, "SEALEDSENSE_BACKUP_BUCKETS=" + strings.Join(buckets, ",")}
}
