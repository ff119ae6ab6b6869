package config

import (
	"fmt"
	"strings"
)

// Error is one configuration problem with its location.
type Error struct {
	File string
	Line int // 0 when the problem has no single line
	Msg  string
}

func (e Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Errors is every problem found in a configuration; the loader keeps going
// after the first so the operator can fix them all in one pass.
type Errors []Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (es *Errors) add(file string, line int, format string, args ...any) {
	*es = append(*es, Error{File: file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (es Errors) err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}
