package lineproto

import (
	"strings"
	"unicode/utf8"
)

// Names that cannot be written as they are.
//
// A metric becomes a field and a check tag becomes a tag, but some keys
// already mean something: status_code is our status field, check_id and
// target are our identity tags, and InfluxDB discards a whole point that
// uses time, _field or _measurement as a key (check_http's "time" metric
// would lose every check_http result). Such a name gets a prefix
// (metric_ for fields, tag_ for tags). To keep the mapping reversible a
// name that is already prefix+reserved (metric_status_code, metric_metric_time…)
// gets one more prefix, and the decoder strips exactly one.
const (
	// StatusField is the field that carries the Nagios status code 0-3.
	StatusField = "status_code"
	// CheckIDTag and TargetTag carry the result's identity.
	CheckIDTag = "check_id"
	TargetTag  = "target"

	metricPrefix = "metric_"
	tagPrefix    = "tag_"
)

func reservedField(s string) bool {
	switch s {
	case StatusField, "time", "_field", "_measurement":
		return true
	}
	return false
}

func reservedTag(s string) bool {
	switch s {
	case CheckIDTag, TargetTag, "time", "_field", "_measurement":
		return true
	}
	return false
}

// protect returns the key under which name is written: prefix+name when
// name is (prefix)*reserved, else name itself.
func protect(name, prefix string, reserved func(string) bool) string {
	rest := name
	for strings.HasPrefix(rest, prefix) {
		rest = rest[len(prefix):]
	}
	if reserved(rest) {
		return prefix + name
	}
	return name
}

// unprotect inverts protect: a key that is (prefix)+reserved loses one
// prefix; any other key is the name itself.
func unprotect(key, prefix string, reserved func(string) bool) string {
	if !strings.HasPrefix(key, prefix) {
		return key
	}
	rest := key
	for strings.HasPrefix(rest, prefix) {
		rest = rest[len(prefix):]
	}
	if reserved(rest) {
		return key[len(prefix):]
	}
	return key
}

// FieldKey is the field key a metric named name is written under.
func FieldKey(name string) string {
	switch name { // the common cases, without allocating
	case "time":
		return "metric_time"
	case StatusField:
		return "metric_status_code"
	}
	return protect(sanitize(name, "metric"), metricPrefix, reservedField)
}

// MetricName is the metric name a decoded field key stands for (the
// inverse of FieldKey for every valid key).
func MetricName(key string) string { return unprotect(key, metricPrefix, reservedField) }

func tagKey(name string) string { return protect(sanitize(name, "tag"), tagPrefix, reservedTag) }

func tagName(key string) string { return unprotect(key, tagPrefix, reservedTag) }

// measurement is the measurement a check name is written as. A line that
// starts with '#' is a comment, so such a name gets a leading '_' (the
// decoder never sees a measurement starting with '#').
func measurement(check string) string {
	m := sanitize(check, "check")
	if m[0] == '#' {
		return "_" + m
	}
	return m
}

// sanitize makes s acceptable to the line-protocol encoder, which refuses
// (rather than escapes) what line protocol cannot carry in a name or a tag
// value: invalid UTF-8 (becomes U+FFFD), ASCII control characters (become
// '_') and a trailing backslash (it would escape the separator after it;
// becomes '_'). An empty s becomes empty, the fallback for names. Valid
// input is returned as is, without allocating.
func sanitize(s, empty string) string {
	if s == "" {
		return empty
	}
	if validToken(s) {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '_'
		}
		return r
	}, s)
	if strings.HasSuffix(s, `\`) {
		s = s[:len(s)-1] + "_"
	}
	return s
}

// validToken reports whether the encoder accepts s as a measurement, key
// or tag value as it is.
func validToken(s string) bool {
	if s == "" || s[len(s)-1] == '\\' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return utf8.ValidString(s)
}
