package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// threshold is a Nagios range: alert when the value is outside
// [lo, hi], or inside it with a leading "@". A nil threshold never alerts.
type threshold struct {
	lo, hi float64
	inside bool
}

func parseThreshold(s string) (*threshold, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	t := &threshold{lo: 0, hi: math.Inf(1)}
	if strings.HasPrefix(s, "@") {
		t.inside = true
		s = s[1:]
		if s == "" {
			return nil, fmt.Errorf("range %q: nothing after @", "@")
		}
	}
	lo, hi, hasColon := strings.Cut(s, ":")
	if !hasColon {
		lo, hi = "", lo // "10" means 0:10
	}
	var err error
	switch lo {
	case "":
	case "~":
		t.lo = math.Inf(-1)
	default:
		if t.lo, err = strconv.ParseFloat(lo, 64); err != nil {
			return nil, fmt.Errorf("range %q: bad start %q", s, lo)
		}
	}
	if hi != "" {
		if t.hi, err = strconv.ParseFloat(hi, 64); err != nil {
			return nil, fmt.Errorf("range %q: bad end %q", s, hi)
		}
	}
	if t.lo > t.hi {
		return nil, fmt.Errorf("range %q: start is greater than end", s)
	}
	return t, nil
}

func (t *threshold) alert(v float64) bool {
	if t == nil {
		return false
	}
	in := v >= t.lo && v <= t.hi
	if t.inside {
		return in
	}
	return !in
}
