// Command httpjson is an example recon check plugin: it GETs a URL,
// reads one field of the JSON answer by path and compares it with Nagios
// thresholds.
//
//	[[check]]
//	name   = "queue"
//	type   = "plugin"
//	path   = "/usr/local/lib/recon/plugins/httpjson"
//	sha256 = "…"            # recon plugin inspect prints it
//	config = { url = "http://127.0.0.1:8080/stats", field = "queue.depth", warning = "100", critical = "500" }
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/reconmon/recon/plugins/sdk"
)

// config is the check's `config` table. Unexported fields hold what
// Configure prepares once per config.
type config struct {
	URL          string            `json:"url"`
	Field        string            `json:"field"`
	Warning      string            `json:"warning,omitempty"`
	Critical     string            `json:"critical,omitempty"`
	Expect       *string           `json:"expect,omitempty"`
	Metric       string            `json:"metric,omitempty"`
	Unit         string            `json:"unit,omitempty"`
	Headers      map[string]string `json:"headers,omitempty"`
	ExpectStatus int               `json:"expect_status,omitempty"`
	MaxBodyBytes int64             `json:"max_body_bytes,omitempty"`

	path       []string
	warn, crit *threshold
	client     *http.Client
}

const schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "httpjson check config",
  "type": "object",
  "additionalProperties": false,
  "required": ["url", "field"],
  "properties": {
    "url":            {"type": "string", "format": "uri", "pattern": "^https?://", "description": "URL to GET"},
    "field":          {"type": "string", "minLength": 1, "description": "dot path into the JSON answer, e.g. queue.depth or items.0.count"},
    "warning":        {"$ref": "#/$defs/range"},
    "critical":       {"$ref": "#/$defs/range"},
    "expect":         {"type": "string", "description": "for string fields: CRITICAL unless equal"},
    "metric":         {"type": "string", "minLength": 1, "description": "metric name (default: the field path)"},
    "unit":           {"type": "string"},
    "headers":        {"type": "object", "additionalProperties": {"type": "string"}},
    "expect_status":  {"type": "integer", "minimum": 100, "maximum": 599, "default": 200},
    "max_body_bytes": {"type": "integer", "minimum": 1, "default": 1048576}
  },
  "$defs": {
    "range": {"type": "string", "pattern": "^@?(~|[-+]?[0-9.]+)?(:([-+]?[0-9.]+)?)?$", "description": "Nagios threshold range: 10, 10:, ~:10, 10:20, @10:20"}
  }
}`

type httpJSON struct{}

func (httpJSON) Info() sdk.Info {
	return sdk.Info{Name: "httpjson", Version: "1.0.0", Description: "GET a URL and check a field of the JSON answer against thresholds"}
}

func (httpJSON) ConfigSchema() string { return schema }

// Configure parses thresholds and the path once per config.
func (httpJSON) Configure(c *config) error {
	var err error
	if c.warn, err = parseThreshold(c.Warning); err != nil {
		return fmt.Errorf("warning: %w", err)
	}
	if c.crit, err = parseThreshold(c.Critical); err != nil {
		return fmt.Errorf("critical: %w", err)
	}
	c.path = strings.Split(c.Field, ".")
	if c.Metric == "" {
		c.Metric = c.Field
	}
	if c.ExpectStatus == 0 {
		c.ExpectStatus = http.StatusOK
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	c.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return nil
}

func (httpJSON) Check(ctx context.Context, c *config, req sdk.Request) (sdk.Result, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	if err != nil {
		return sdk.Result{}, err
	}
	for k, v := range c.Headers {
		hr.Header.Set(k, v)
	}
	hr.Header.Set("Accept", "application/json")
	start := time.Now()
	resp, err := c.client.Do(hr)
	if err != nil {
		return sdk.Critical("GET %s: %v", c.URL, err), nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.MaxBodyBytes+1))
	elapsed := time.Since(start)
	if err != nil {
		return sdk.Critical("GET %s: reading the answer: %v", c.URL, err), nil
	}
	rt := sdk.FloatMetric("response_time", elapsed.Seconds()).WithUnit("s")
	if resp.StatusCode != c.ExpectStatus {
		return sdk.Critical("GET %s: HTTP %d, want %d", c.URL, resp.StatusCode, c.ExpectStatus).With(rt), nil
	}
	if int64(len(body)) > c.MaxBodyBytes {
		return sdk.Unknown("GET %s: answer larger than %d bytes", c.URL, c.MaxBodyBytes).With(rt), nil
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return sdk.Unknown("GET %s: answer is not JSON: %v", c.URL, err).With(rt), nil
	}
	v, err := lookup(doc, c.path)
	if err != nil {
		return sdk.Unknown("%s: %v", c.Field, err).With(rt), nil
	}
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return sdk.Unknown("%s: %q is not a number", c.Field, x), nil
		}
		m := sdk.FloatMetric(c.Metric, f).WithUnit(c.Unit).WithThresholds(c.Warning, c.Critical)
		if i, err := x.Int64(); err == nil {
			m.Value = sdk.Int(i)
		}
		switch {
		case c.crit.alert(f):
			return sdk.Critical("%s = %s (critical %s)", c.Field, x, c.Critical).With(m, rt), nil
		case c.warn.alert(f):
			return sdk.Warning("%s = %s (warning %s)", c.Field, x, c.Warning).With(m, rt), nil
		}
		return sdk.OK("%s = %s", c.Field, x).With(m, rt), nil
	case string:
		m := sdk.StringMetric(c.Metric, x)
		if c.Expect != nil && x != *c.Expect {
			return sdk.Critical("%s = %q, want %q", c.Field, x, *c.Expect).With(m, rt), nil
		}
		return sdk.OK("%s = %q", c.Field, x).With(m, rt), nil
	case bool:
		n := int64(0)
		if x {
			n = 1
		}
		return sdk.OK("%s = %t", c.Field, x).With(sdk.IntMetric(c.Metric, n), rt), nil
	case nil:
		return sdk.Unknown("%s is null", c.Field).With(rt), nil
	}
	return sdk.Unknown("%s is a %s, not a number or string", c.Field, kindOf(v)).With(rt), nil
}

// lookup follows a dot path through objects and (by index) arrays.
func lookup(doc any, path []string) (any, error) {
	cur := doc
	for i, seg := range path {
		switch x := cur.(type) {
		case map[string]any:
			v, ok := x[seg]
			if !ok {
				return nil, fmt.Errorf("no field %q at %s", seg, strings.Join(path[:i], ".")+"/")
			}
			cur = v
		case []any:
			n, err := strconv.Atoi(seg)
			if err != nil || n < 0 || n >= len(x) {
				return nil, fmt.Errorf("%q is not an index of the %d-element array at %s", seg, len(x), strings.Join(path[:i], "."))
			}
			cur = x[n]
		default:
			return nil, fmt.Errorf("%s is a %s, cannot descend into %q", strings.Join(path[:i], "."), kindOf(cur), seg)
		}
	}
	return cur, nil
}

func kindOf(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	}
	return "null"
}

func main() { sdk.ServeCheck[config](httpJSON{}) }
