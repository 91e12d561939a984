package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/sealedsense/sealedsense/shared/dataconnector"
	"github.com/sealedsense/sealedsense/shared/store"
)

func TestDataConnectors(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	p := w.tenant.Project
	dev := w.account(p, "roles/project.developer")
	base := "/v2/projects/" + p + "/dataconnectors"
	const secret = "the customer's own signature secret"

	// Created with the customer's secret: it is never answered.
	c := must[map[string]any](t, 200)(dev.call("POST", base, map[string]any{"displayName": "warehouse", "events": []string{"temperature"}, "labels": []string{"room"},
		"httpConfig": map[string]any{"url": "https://hooks.example.com/in", "signatureSecret": secret, "headers": map[string]string{"Authorization": "Bearer x"}}}))
	name := "/v2/" + c["name"].(string)
	if c["status"] != "ACTIVE" || c["type"] != "HTTP_PUSH" {
		t.Fatalf("created %v", c)
	}
	// Without one, a secret is made and shown once.
	gen := must[map[string]any](t, 200)(dev.call("POST", base, map[string]any{"httpConfig": map[string]any{"url": "https://hooks.example.com/other"}}))
	if s, _ := gen["httpConfig"].(map[string]any)["signatureSecret"].(string); len(s) < 32 {
		t.Fatalf("generated secret not returned once: %v", gen)
	}
	// DT's clients read the field from every answer: it is there, empty.
	genSecret := gen["httpConfig"].(map[string]any)["signatureSecret"].(string)
	for _, path := range []string{name, base, "/v2/" + gen["name"].(string)} {
		code, b := dev.call("GET", path, nil)
		if code != 200 || bytes.Contains(b, []byte(secret)) || bytes.Contains(b, []byte(genSecret)) || !bytes.Contains(b, []byte(`"signatureSecret":""`)) {
			t.Fatalf("GET %s answered a secret, or no empty signatureSecret: %d %s", path, code, b)
		}
	}
	// Firestore holds it only wrapped.
	snap, err := w.fs.Collection(store.DataConnectorsCollection).Doc(c["name"].(string)[strings.LastIndex(c["name"].(string), "/")+1:]).Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(snap.Data())
	if bytes.Contains(js, []byte(secret)) || len(snap.Data()["wrappedSecret"].([]byte)) == 0 {
		t.Fatal("the secret is stored in plaintext, or not at all")
	}

	t.Run("bad input", func(t *testing.T) {
		for _, tc := range []struct {
			name, method, path string
			body               any
			want               int
		}{
			{"plain http", "POST", base, map[string]any{"httpConfig": map[string]any{"url": "http://hooks.example.com"}}, 400},
			{"loopback", "POST", base, map[string]any{"httpConfig": map[string]any{"url": "https://127.0.0.1/x"}}, 400},
			{"private", "POST", base, map[string]any{"httpConfig": map[string]any{"url": "https://10.0.0.1/x"}}, 400},
			{"metadata", "POST", base, map[string]any{"httpConfig": map[string]any{"url": "https://169.254.169.254/computeMetadata/v1/"}}, 400},
			{"v6 loopback", "POST", base, map[string]any{"httpConfig": map[string]any{"url": "https://[::1]/x"}}, 400},
			{"credentials in url", "POST", base, map[string]any{"httpConfig": map[string]any{"url": "https://u:p@hooks.example.com"}}, 400},
			{"our signature header", "POST", base, map[string]any{"httpConfig": map[string]any{"url": "https://hooks.example.com", "headers": map[string]string{"X-Dt-Signature": "forged"}}}, 400},
			{"host header", "POST", base, map[string]any{"httpConfig": map[string]any{"url": "https://hooks.example.com", "headers": map[string]string{"Host": "internal"}}}, 400},
			{"short secret", "POST", base, map[string]any{"httpConfig": map[string]any{"url": "https://hooks.example.com", "signatureSecret": "short"}}, 400},
			{"unknown event type", "POST", base, map[string]any{"events": []string{"smell"}, "httpConfig": map[string]any{"url": "https://hooks.example.com"}}, 400},
			{"unknown field", "POST", base, map[string]any{"colour": "red", "httpConfig": map[string]any{"url": "https://hooks.example.com"}}, 400},
			{"other type", "POST", base, map[string]any{"type": "MQTT", "httpConfig": map[string]any{"url": "https://hooks.example.com"}}, 400},
			{"system status", "PATCH", name, map[string]any{"status": "SYSTEM_DISABLED"}, 400},
			{"backfill without enabling", "PATCH", name + "?backfill=true", map[string]any{"displayName": "x"}, 400},
			{"oversized", "POST", base, map[string]any{"displayName": strings.Repeat("x", 70<<10)}, 413},
			{"unknown id", "GET", "/v2/projects/" + p + "/dataconnectors/nope", nil, 404},
			{"update of an unknown id", "PATCH", "/v2/projects/" + p + "/dataconnectors/nope", map[string]any{"httpConfig": map[string]any{"signatureSecret": "a long enough new secret"}}, 404},
		} {
			if code, b := dev.call(tc.method, tc.path, tc.body); code != tc.want {
				t.Errorf("%s: %d %s, want %d", tc.name, code, b, tc.want)
			}
		}
	})

	t.Run("disable, re-enable with backfill", func(t *testing.T) {
		d := must[map[string]any](t, 200)(dev.call("PATCH", name, map[string]any{"status": "USER_DISABLED"}))
		if d["status"] != "USER_DISABLED" || d["disabledTime"] == nil {
			t.Fatalf("disabled: %v", d)
		}
		d = must[map[string]any](t, 200)(dev.call("PATCH", name+"?backfill=true", map[string]any{"status": "ACTIVE"}))
		if d["status"] != "ACTIVE" || d["disabledTime"] != nil {
			t.Fatalf("enabled: %v", d)
		}
		jobs, err := w.fs.Collection(store.DeliveryJobsCollection).Where("kind", "==", dataconnector.Backfill).Documents(context.Background()).GetAll()
		if err != nil || len(jobs) != 1 {
			t.Fatalf("%d backfill jobs (%v), want 1", len(jobs), err)
		}
		must[map[string]any](t, 200)(dev.call("POST", name+":sync", nil))
		m := must[map[string]map[string]any](t, 200)(dev.call("GET", name+":metrics", nil))["metrics"]
		if m["successCount"] != float64(0) || m["errorCount"] != float64(0) || m["latency99p"] != "0s" {
			t.Fatalf("metrics of a connector that sent nothing: %v", m)
		}
	})

	t.Run("another project cannot see it", func(t *testing.T) {
		other := w.newProject(w.tenant.Organization, "other")
		id := c["name"].(string)[strings.LastIndex(c["name"].(string), "/")+1:]
		if code, b := w.admin.call("GET", "/v2/projects/"+other+"/dataconnectors/"+id, nil); code != 404 {
			t.Fatalf("read through another project: %d %s", code, b)
		}
	})

	t.Run("audited", func(t *testing.T) {
		log := must[map[string]any](t, 200)(w.admin.call("GET", "/v2/projects/"+p+"/auditLog", nil))
		b, _ := json.Marshal(log)
		if !bytes.Contains(b, []byte("dataconnectors")) {
			t.Fatalf("no audit entry names the data connectors: %s", b)
		}
	})

	logs, _ := os.ReadFile(w.logPath)
	if bytes.Contains(logs, []byte(secret)) {
		t.Fatal("the functions log holds the secret")
	}
	must[map[string]any](t, 200)(dev.call("DELETE", name, nil))
	if code, _ := dev.call("GET", name, nil); code != 404 {
		t.Fatal("deleted connector still answers")
	}
}
