package host

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/reconmon/recon/agent/model"
	pb "github.com/reconmon/recon/plugins/proto"
)

// DefaultOutputLimit caps each output string a plugin returns, like the
// Nagios runner's cap on plugin output.
const DefaultOutputLimit = 64 << 10

// maxMetrics caps the metrics of one result; more are reported, not kept.
const maxMetrics = 10000

// resultFromPB turns what a plugin returned into a model result. The
// plugin is outside input: an unset or invalid status, metrics without a
// name or value, invalid UTF-8 and oversized strings are all reported in
// the result (UNKNOWN, with the reason in the long output), never dropped
// silently and never a panic.
func resultFromPB(r *pb.Result, limit int) model.Result {
	if limit <= 0 {
		limit = DefaultOutputLimit
	}
	var problems []string
	out := model.Result{
		Output:     clean(r.GetOutput(), limit, "output", &problems),
		LongOutput: clean(r.GetLongOutput(), limit, "long output", &problems),
	}
	// A plugin may put several lines in output; the first is the output.
	if i := strings.IndexByte(out.Output, '\n'); i >= 0 {
		rest := out.Output[i+1:]
		out.Output = strings.TrimRight(out.Output[:i], "\r")
		out.LongOutput = joinLines(rest, out.LongOutput)
	}
	switch r.GetStatus() {
	case pb.Status_STATUS_OK:
		out.Status = model.OK
	case pb.Status_STATUS_WARNING:
		out.Status = model.Warning
	case pb.Status_STATUS_CRITICAL:
		out.Status = model.Critical
	case pb.Status_STATUS_UNKNOWN:
		out.Status = model.Unknown
	case pb.Status_STATUS_UNSPECIFIED:
		out.Status = model.Unknown
		problems = append(problems, "plugin returned no status")
	default:
		out.Status = model.Unknown
		problems = append(problems, fmt.Sprintf("plugin returned invalid status %d", r.GetStatus()))
	}
	if d := r.GetDurationNs(); d > 0 {
		out.Duration = time.Duration(d)
	}
	ms := r.GetMetrics()
	if len(ms) > maxMetrics {
		problems = append(problems, fmt.Sprintf("plugin returned %d metrics; only the first %d are kept", len(ms), maxMetrics))
		ms = ms[:maxMetrics]
	}
	if len(ms) > 0 {
		out.Metrics = make([]model.Metric, 0, len(ms))
	}
	for i, m := range ms {
		mm, err := metricFromPB(m, limit)
		if err != nil {
			problems = append(problems, fmt.Sprintf("metric #%d: %v", i+1, err))
			continue
		}
		out.Metrics = append(out.Metrics, mm)
	}
	if len(problems) > 0 {
		if out.Status != model.Critical {
			out.Status = model.Unknown
		}
		out.LongOutput = joinLines(out.LongOutput, "recon: "+strings.Join(problems, "; "))
	}
	return out
}

func metricFromPB(m *pb.Metric, limit int) (model.Metric, error) {
	var problems []string
	name := clean(m.GetName(), 1024, "name", &problems)
	if name == "" {
		return model.Metric{}, fmt.Errorf("no name")
	}
	out := model.Metric{
		Name: name,
		Unit: clean(m.GetUnit(), 64, "unit", &problems),
		Warn: clean(m.GetWarn(), 256, "warn", &problems),
		Crit: clean(m.GetCrit(), 256, "crit", &problems),
		Min:  m.Min,
		Max:  m.Max,
	}
	switch v := m.GetValue().(type) {
	case *pb.Metric_FloatValue:
		out.Value = model.Float(v.FloatValue)
	case *pb.Metric_IntValue:
		out.Value = model.Int(v.IntValue)
	case *pb.Metric_UintValue:
		out.Value = model.Uint(v.UintValue)
	case *pb.Metric_StringValue:
		out.Value = model.String(clean(v.StringValue, limit, "value", &problems))
	default:
		return model.Metric{}, fmt.Errorf("%q has no value", name)
	}
	if len(problems) > 0 {
		return model.Metric{}, fmt.Errorf("%q: %s", name, strings.Join(problems, ", "))
	}
	return out, nil
}

// clean makes s valid UTF-8 of at most limit bytes, noting what it fixed.
func clean(s string, limit int, what string, problems *[]string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
		*problems = append(*problems, what+" is not valid UTF-8")
	}
	if len(s) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		*problems = append(*problems, fmt.Sprintf("%s cut to %d of %d bytes", what, cut, len(s)))
		s = s[:cut]
	}
	return s
}

func joinLines(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "\n" + b
}

func statusToPB(s model.Status) pb.Status {
	switch s {
	case model.OK:
		return pb.Status_STATUS_OK
	case model.Warning:
		return pb.Status_STATUS_WARNING
	case model.Critical:
		return pb.Status_STATUS_CRITICAL
	}
	return pb.Status_STATUS_UNKNOWN
}

// utf8s makes s fit a protobuf string field, which must be valid UTF-8
// (a Nagios plugin may well have printed Latin-1).
func utf8s(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func utf8map(m map[string]string) map[string]string {
	for k, v := range m {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			out := make(map[string]string, len(m))
			for k, v := range m {
				out[utf8s(k)] = utf8s(v)
			}
			return out
		}
	}
	return m
}

func metricToPB(m *model.Metric) *pb.Metric {
	out := &pb.Metric{Name: utf8s(m.Name), Unit: utf8s(m.Unit), Warn: utf8s(m.Warn), Crit: utf8s(m.Crit), Min: m.Min, Max: m.Max}
	switch m.Value.Kind() {
	case model.KindInt:
		out.Value = &pb.Metric_IntValue{IntValue: m.Value.Int()}
	case model.KindUint:
		out.Value = &pb.Metric_UintValue{UintValue: m.Value.Uint()}
	case model.KindString:
		out.Value = &pb.Metric_StringValue{StringValue: utf8s(m.Value.Str())}
	default:
		f, _ := m.Value.Float()
		out.Value = &pb.Metric_FloatValue{FloatValue: f}
	}
	return out
}

// resultToPB carries a model result to a plugin in full: sinks get every
// field, checks get their previous result.
func resultToPB(r *model.Result) *pb.Result {
	out := &pb.Result{
		Status:     statusToPB(r.Status),
		Output:     utf8s(r.Output),
		LongOutput: utf8s(r.LongOutput),
		DurationNs: int64(r.Duration),
		CheckId:    r.CheckID.String(),
		Check:      utf8s(r.Check),
		Type:       utf8s(r.Type),
		Agent:      utf8s(r.Agent),
		Target:     utf8s(r.Target),
		Attempt:    int32(r.Attempt),
		Tags:       utf8map(r.Tags),
	}
	if !r.Time.IsZero() {
		out.TimeUnixNano = r.Time.UnixNano()
	}
	if r.StateType == model.Soft {
		out.StateType = pb.StateType_STATE_TYPE_SOFT
	}
	if len(r.Metrics) > 0 {
		out.Metrics = make([]*pb.Metric, len(r.Metrics))
		for i := range r.Metrics {
			out.Metrics[i] = metricToPB(&r.Metrics[i])
		}
	}
	return out
}
