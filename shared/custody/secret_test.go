package custody_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/sealedsense/sealedsense/shared/custody"
)

func TestSecretNeverPrints(t *testing.T) {
	t.Parallel()
	s := custody.Secret("hunter2-very-secret")
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("m", "key", s, "group", struct{ K custody.Secret }{s})
	js, err := json.Marshal(struct{ K custody.Secret }{s})
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"%v":   fmt.Sprintf("%v", s),
		"%s":   fmt.Sprintf("%s", s),
		"%x":   fmt.Sprintf("%x", s),
		"%q":   fmt.Sprintf("%q", s),
		"%#v":  fmt.Sprintf("%#v", s),
		"%+v":  fmt.Sprintf("%+v", struct{ K custody.Secret }{s}),
		"err":  fmt.Errorf("wrap: %v", s).Error(),
		"slog": logged.String(),
		"json": string(js),
	}
	for name, out := range outputs {
		if strings.Contains(out, "hunter2") || strings.Contains(out, fmt.Sprintf("%x", []byte(s))) {
			t.Errorf("%s prints the secret: %q", name, out)
		}
		if !strings.Contains(out, "redacted") {
			t.Errorf("%s = %q, want a redaction marker", name, out)
		}
	}
}

func TestSecretClear(t *testing.T) {
	t.Parallel()
	s := custody.Secret{1, 2, 3}
	s.Clear()
	if !bytes.Equal(s, []byte{0, 0, 0}) {
		t.Fatalf("Clear left %v", []byte(s))
	}
}
