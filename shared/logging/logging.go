// Package logging makes slog loggers that write Cloud Logging's structured
// JSON (severity, message, time), which is what every SealedSense process
// logs with, locally and on Cloud Run.
package logging

import (
	"io"
	"log/slog"
)

// New returns a JSON logger for w at the given minimum level.
func New(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: cloudFields}))
}

// cloudFields renames slog's keys to Cloud Logging's and maps levels to its
// severity names (WARN is WARNING there).
func cloudFields(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.LevelKey:
		a.Key = "severity"
		if l, ok := a.Value.Any().(slog.Level); ok {
			a.Value = slog.StringValue(severity(l))
		}
	case slog.MessageKey:
		a.Key = "message"
	}
	return a
}

func severity(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARNING"
	case l >= slog.LevelInfo:
		return "INFO"
	default:
		return "DEBUG"
	}
}
