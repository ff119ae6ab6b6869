package host

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"
)

// Limits on what a plugin's stderr can make the agent hold.
const (
	maxLogLine   = 8 << 10 // longer lines are cut
	tailLines    = 20      // kept for crash reasons
	maxLogFields = 32
)

// stderrLog receives a plugin process's standard error, line by line, and
// logs each line to slog under the plugin's name: hclog JSON lines (what
// the SDK and go-plugin write) at their own level with their fields, plain
// lines at INFO, and Go panics / Python tracebacks at ERROR. It keeps the
// last lines so that a crash can be explained in the checks' output.
type stderrLog struct {
	log *slog.Logger

	mu      sync.Mutex
	partial []byte
	cut     bool // the current line was longer than maxLogLine
	inPanic bool
	tail    []string
}

func newStderrLog(l *slog.Logger) *stderrLog { return &stderrLog{log: l} }

func (s *stderrLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if room := maxLogLine - len(s.partial); len(chunk) > room {
			s.partial = append(s.partial, chunk[:max(room, 0)]...)
			s.cut = true
		} else {
			s.partial = append(s.partial, chunk...)
		}
		if i < 0 {
			break
		}
		s.lineLocked(s.partial, s.cut)
		s.partial, s.cut = s.partial[:0], false
		p = p[i+1:]
	}
	return n, nil
}

// flush logs an unterminated last line (the process has exited).
func (s *stderrLog) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.partial) > 0 {
		s.lineLocked(s.partial, s.cut)
		s.partial, s.cut = s.partial[:0], false
	}
}

func (s *stderrLog) lineLocked(b []byte, cut bool) {
	line := strings.ToValidUTF8(strings.TrimRight(string(b), "\r"), "\uFFFD")
	if strings.TrimSpace(line) == "" {
		return
	}
	if cut {
		line += " …(line cut)"
	}
	if len(s.tail) == tailLines {
		copy(s.tail, s.tail[1:])
		s.tail = s.tail[:tailLines-1]
	}
	s.tail = append(s.tail, line)
	e := parseLogLine(line)
	switch {
	case e.json:
	case strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ") ||
		strings.HasPrefix(line, "Traceback (most recent call last)"):
		s.inPanic = true
		e.level = slog.LevelError
	case s.inPanic:
		e.level = slog.LevelError
	}
	s.log.Log(context.Background(), e.level, e.msg, e.attrs...)
}

// lastLines returns the kept tail of stderr.
func (s *stderrLog) lastLines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.tail...)
}

// crashLine picks the line of the tail that best explains a crash: the
// first line of a Go panic or the last line of a Python traceback, else
// the last line.
func crashLine(tail []string) string {
	for _, l := range tail {
		if strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ") {
			return l
		}
	}
	for i := len(tail) - 1; i >= 0; i-- {
		if e := parseLogLine(tail[i]); e.json {
			if e.level >= slog.LevelError {
				return e.msg
			}
			continue
		}
		return tail[i]
	}
	return ""
}

type logEntry struct {
	json  bool
	level slog.Level
	msg   string
	attrs []any
}

// parseLogLine reads one stderr line: an hclog JSON object ("@level",
// "@message", other fields as attributes) or plain text. Anything that is
// not exactly that shape is logged as plain text; it never fails.
func parseLogLine(line string) logEntry {
	e := logEntry{level: slog.LevelInfo, msg: line}
	t := strings.TrimSpace(line)
	if !strings.HasPrefix(t, "{") || !utf8.ValidString(t) {
		return e
	}
	var raw map[string]json.RawMessage
	if json.Unmarshal([]byte(t), &raw) != nil {
		return e
	}
	var msg, level string
	if v, ok := raw["@message"]; ok && json.Unmarshal(v, &msg) != nil {
		return e
	}
	if v, ok := raw["@level"]; ok && json.Unmarshal(v, &level) != nil {
		return e
	}
	if _, ok := raw["@message"]; !ok {
		return e
	}
	e.json, e.msg = true, msg
	switch strings.ToLower(strings.TrimSpace(level)) {
	case "trace":
		e.level = slog.LevelDebug - 4
	case "debug":
		e.level = slog.LevelDebug
	case "warn", "warning":
		e.level = slog.LevelWarn
	case "error":
		e.level = slog.LevelError
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		switch k {
		case "@message", "@level", "@timestamp", "@module", "@caller":
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		if i == maxLogFields {
			e.attrs = append(e.attrs, "fields_omitted", len(keys)-maxLogFields)
			break
		}
		var v any
		_ = json.Unmarshal(raw[k], &v)
		switch v.(type) {
		case string, float64, bool:
		default:
			v = string(raw[k]) // objects, arrays, null: as JSON text
		}
		e.attrs = append(e.attrs, k, v)
	}
	return e
}
