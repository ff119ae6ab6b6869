package sdk

import (
	"io"
	"log/slog"
)

// Logger returns a logger whose records recon receives on the plugin's
// standard error and re-logs in the agent's log, at the same level, with
// the plugin's name. Use it rather than printing: go-plugin hands
// os.Stdout and os.Stderr writes to recon as plain text without levels.
func Logger() *slog.Logger { return newLogger(stderr, slog.LevelDebug) }

// newLogger writes JSON lines in the hclog format go-plugin hosts parse:
// "@level", "@message", "@timestamp" and the attributes as fields.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.LevelKey:
				return slog.String("@level", levelName(a.Value.Any()))
			case slog.MessageKey:
				return slog.String("@message", a.Value.String())
			case slog.TimeKey:
				return slog.String("@timestamp", a.Value.Time().Format("2006-01-02T15:04:05.000000Z07:00"))
			}
			return a
		},
	}))
}

func levelName(v any) string {
	l, _ := v.(slog.Level)
	switch {
	case l < slog.LevelDebug:
		return "trace"
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warn"
	}
	return "error"
}
