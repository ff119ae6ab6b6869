package host

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// configJSON turns a check's or sink's `config` table (as the TOML decoder
// left it) into canonical JSON (sorted keys) and the handle that names it:
// equal configs share one handle and are configured once per plugin
// process.
func configJSON(cfg map[string]any) (data []byte, handle string, err error) {
	if cfg == nil {
		cfg = map[string]any{}
	}
	v, err := toJSONValue(cfg, "config")
	if err != nil {
		return nil, "", err
	}
	data, err = json.Marshal(v)
	if err != nil {
		return nil, "", fmt.Errorf("config: %w", err)
	}
	sum := sha256.Sum256(data)
	return data, hex.EncodeToString(sum[:16]), nil
}

// toJSONValue maps TOML values to JSON ones. Dates and times become
// RFC 3339 strings (what JSON Schema's "date-time"/"date"/"time" formats
// expect); NaN and infinities, which JSON cannot carry, are errors.
func toJSONValue(v any, path string) (any, error) {
	switch x := v.(type) {
	case nil, string, bool, int64, int, uint64, int32, uint32:
		return x, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("%s: %v cannot be passed to a plugin (JSON has no NaN or infinity)", path, x)
		}
		return x, nil
	case time.Time:
		return x.Format(time.RFC3339Nano), nil
	case fmt.Stringer: // toml.LocalDate, LocalTime, LocalDateTime
		return x.String(), nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			j, err := toJSONValue(e, path+"."+k)
			if err != nil {
				return nil, err
			}
			out[k] = j
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			j, err := toJSONValue(e, path+"["+strconv.Itoa(i)+"]")
			if err != nil {
				return nil, err
			}
			out[i] = j
		}
		return out, nil
	case []map[string]any:
		out := make([]any, len(x))
		for i, e := range x {
			j, err := toJSONValue(e, path+"["+strconv.Itoa(i)+"]")
			if err != nil {
				return nil, err
			}
			out[i] = j
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: unsupported value of type %T", path, v)
}

// schemaURL names a plugin's schema inside the compiler; nothing is
// fetched from it.
const schemaURL = "urn:recon:plugin-config-schema"

// noLoader refuses every $ref that leaves the schema document: a plugin's
// schema must not make the agent read files or fetch URLs.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("external $ref %q not allowed in a plugin config schema", url)
}

// maxSchemaBytes bounds the schema a plugin may send.
const maxSchemaBytes = 1 << 20

// compileSchema compiles a plugin's config schema (JSON Schema, draft
// 2020-12 unless $schema says otherwise; formats are asserted). An empty
// schema accepts any JSON object.
func compileSchema(src string) (*jsonschema.Schema, error) {
	if strings.TrimSpace(src) == "" {
		src = `{"type": "object"}`
	}
	if len(src) > maxSchemaBytes {
		return nil, fmt.Errorf("config schema is %d bytes (limit %d)", len(src), maxSchemaBytes)
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(src))
	if err != nil {
		return nil, fmt.Errorf("config schema is not JSON: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(noLoader{})
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, fmt.Errorf("config schema: %w", err)
	}
	s, err := c.Compile(schemaURL)
	if err != nil {
		return nil, fmt.Errorf("config schema does not compile: %w", err)
	}
	return s, nil
}

// validateConfig checks config JSON against a compiled schema and returns
// an error listing every violation as "config.path: message".
func validateConfig(s *jsonschema.Schema, data []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	err = s.Validate(inst)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("config: %w", err)
	}
	return errors.New("invalid config: " + strings.Join(violations(ve), "; "))
}

// violations flattens a validation error into its leaf messages, each
// with the place in the config it concerns.
func violations(ve *jsonschema.ValidationError) []string {
	p := message.NewPrinter(language.English)
	seen := map[string]bool{}
	var out []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		msg := configPath(e.InstanceLocation) + ": " + e.ErrorKind.LocalizedString(p)
		if !seen[msg] {
			seen[msg] = true
			out = append(out, msg)
		}
	}
	walk(ve)
	sort.Strings(out)
	const maxShown = 10
	if len(out) > maxShown {
		out = append(out[:maxShown], fmt.Sprintf("and %d more", len(out)-maxShown))
	}
	return out
}

// configPath renders an instance location as the TOML path an operator
// wrote: config.http.headers[0].
func configPath(loc []string) string {
	var b strings.Builder
	b.WriteString("config")
	for _, tok := range loc {
		if _, err := strconv.Atoi(tok); err == nil {
			b.WriteString("[" + tok + "]")
			continue
		}
		b.WriteString(".")
		b.WriteString(tok)
	}
	return b.String()
}
