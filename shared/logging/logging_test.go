package logging_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/sealedsense/sealedsense/shared/logging"
)

func TestCloudLoggingFields(t *testing.T) {
	t.Parallel()
	tests := []struct {
		log  func(*slog.Logger)
		want string
	}{
		{func(l *slog.Logger) { l.Debug("m") }, "DEBUG"},
		{func(l *slog.Logger) { l.Info("m") }, "INFO"},
		{func(l *slog.Logger) { l.Warn("m") }, "WARNING"},
		{func(l *slog.Logger) { l.Error("m") }, "ERROR"},
	}
	for _, tc := range tests {
		var buf bytes.Buffer
		tc.log(logging.New(&buf, slog.LevelDebug))
		var entry map[string]any
		if err := json.Unmarshal(buf.Bytes(), &entry); err != nil {
			t.Fatalf("not JSON: %q", buf.String())
		}
		if entry["severity"] != tc.want || entry["message"] != "m" {
			t.Errorf("entry = %v, want severity %s and message m", entry, tc.want)
		}
		if _, ok := entry["level"]; ok {
			t.Errorf("slog's level key leaked: %v", entry)
		}
	}
}
