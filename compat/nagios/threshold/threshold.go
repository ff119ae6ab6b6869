// Package threshold implements Nagios threshold ranges as defined by the
// Monitoring Plugins development guidelines: "10", "10:", "~:10", "10:20",
// "@10:20". Nagios, Lua and SNMP checks all evaluate thresholds with this one
// type, so a range means the same thing everywhere.
package threshold

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/reconmon/recon/agent/model"
)

// Range is a parsed threshold. A value outside [Start, End] raises an alert,
// or inside it when Inside is set (the "@" prefix). The zero Range is unset
// and never alerts.
type Range struct {
	Start, End float64 // -Inf / +Inf when open
	Inside     bool
	set        bool
	text       string
}

// Parse parses a range. The empty string is a valid unset range. Commas are
// accepted as decimal separators, as some locales make plugins print them.
func Parse(s string) (Range, error) {
	text := strings.TrimSpace(s)
	if text == "" {
		return Range{}, nil
	}
	r := Range{set: true, text: text, Start: 0, End: math.Inf(1)}
	body := text
	if strings.HasPrefix(body, "@") {
		r.Inside = true
		body = body[1:]
	}
	body = strings.ReplaceAll(body, ",", ".")
	lo, hi, hasColon := strings.Cut(body, ":")
	if strings.Contains(hi, ":") {
		return Range{}, fmt.Errorf("threshold %q: more than one ':'", text)
	}
	if !hasColon {
		// "10" means 0:10.
		v, err := parseNum(lo)
		if err != nil {
			return Range{}, fmt.Errorf("threshold %q: %w", text, err)
		}
		r.End = v
	} else {
		switch lo {
		case "~":
			r.Start = math.Inf(-1)
		case "":
			r.Start = 0
		default:
			v, err := parseNum(lo)
			if err != nil {
				return Range{}, fmt.Errorf("threshold %q: start: %w", text, err)
			}
			r.Start = v
		}
		if hi != "" {
			v, err := parseNum(hi)
			if err != nil {
				return Range{}, fmt.Errorf("threshold %q: end: %w", text, err)
			}
			r.End = v
		}
	}
	if r.Start > r.End {
		return Range{}, fmt.Errorf("threshold %q: start %v is greater than end %v", text, r.Start, r.End)
	}
	return r, nil
}

// MustParse is Parse for constant ranges in tests and defaults.
func MustParse(s string) Range {
	r, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return r
}

func parseNum(s string) (float64, error) {
	if s == "" {
		return 0, fmt.Errorf("missing number")
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) {
		return 0, fmt.Errorf("invalid number %q", s)
	}
	return v, nil
}

// IsSet reports whether the range was given.
func (r Range) IsSet() bool { return r.set }

// String returns the range as it was written.
func (r Range) String() string { return r.text }

// Alert reports whether v violates the range. NaN always alerts: a value
// that cannot be compared must not pass silently.
func (r Range) Alert(v float64) bool {
	if !r.set {
		return false
	}
	if math.IsNaN(v) {
		return true
	}
	inside := v >= r.Start && v <= r.End
	if r.Inside {
		return inside
	}
	return !inside
}

// Evaluate returns CRITICAL if crit alerts, else WARNING if warn alerts,
// else OK, the order check_* plugins use.
func Evaluate(v float64, warn, crit Range) model.Status {
	if crit.Alert(v) {
		return model.Critical
	}
	if warn.Alert(v) {
		return model.Warning
	}
	return model.OK
}
