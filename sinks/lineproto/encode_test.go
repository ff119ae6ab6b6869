package lineproto

import (
	"bytes"
	"flag"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/reconmon/recon/agent/model"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/lineproto")

func ptr(f float64) *float64 { return &f }

var (
	testID   = model.CheckID("agent1", "load")
	testTime = time.Unix(1700000000, 123456789)
)

// golden is one encoder golden case: the result, the skip count the
// encoder must report, and what decoding the line gives back (nil: the
// result itself, i.e. the case is lossless).
type golden struct {
	r       model.Result
	skipped int
	back    *model.Result
}

func goldenCases() map[string]golden {
	base := model.Result{CheckID: testID, Check: "load", Target: "db1", Time: testTime, Status: model.Warning,
		Tags: map[string]string{"role": "db", "dc": "ams"}}
	with := func(f func(r *model.Result)) model.Result {
		r := base
		r.Tags = maps.Clone(base.Tags)
		f(&r)
		return r
	}
	cases := map[string]golden{}
	cases["full"] = golden{r: with(func(r *model.Result) {
		// Unit, thresholds, output, duration are not line-protocol data
		// (SPEC §4): they must not leak into the line.
		r.Output, r.LongOutput, r.Duration, r.Attempt, r.StateType = "LOAD OK", "long\nmore", time.Second, 2, model.Soft
		r.Metrics = []model.Metric{
			{Name: "load1", Value: model.Float(0.42), Unit: "", Warn: "5", Crit: "10", Min: ptr(0)},
			{Name: "procs", Value: model.Int(-3)},
			{Name: "bytes", Value: model.Uint(math.MaxUint64)},
			{Name: "state", Value: model.String("up")},
			{Name: "big", Value: model.Float(1e21)},
			{Name: "tiny", Value: model.Float(-5e-324)},
			{Name: "whole", Value: model.Float(3)},
		}
	})}
	cases["no_metrics"] = golden{r: with(func(r *model.Result) { r.Target, r.Tags, r.Status = "", nil, model.Critical })}
	cases["escapes"] = golden{r: with(func(r *model.Result) {
		r.Check = "disk, usage=root"
		r.Target = "host with space,and=comma"
		r.Tags = map[string]string{"mount point": "/var,log", "zone=x": "eu=west", "quote\"d": "back\\slash mid"}
		r.Metrics = []model.Metric{
			{Name: "/ used", Value: model.Float(1e21)},
			{Name: "a,b=c", Value: model.Int(1)},
			{Name: `C:\ free`, Value: model.Int(2)},
			{Name: "msg", Value: model.String("say \"hi\"\\\nnext\tline\rend")},
			{Name: "empty", Value: model.String("")},
		}
	})}
	cases["unicode"] = golden{r: with(func(r *model.Result) {
		r.Check, r.Target = "Prüfung", "サーバー"
		r.Tags = map[string]string{"ort": "Zürich"}
		r.Metrics = []model.Metric{{Name: "température", Value: model.Float(21.5)}, {Name: "état", Value: model.String("très bien ✓")}}
	})}
	// Names that are keys already: renamed with a prefix, named back by
	// the decoder (see names.go).
	cases["reserved"] = golden{r: with(func(r *model.Result) {
		r.Tags = map[string]string{"target": "other", "check_id": "mine", "time": "t", "tag_target": "tt", "_field": "f", "tag_x": "x"}
		r.Metrics = []model.Metric{
			{Name: "status_code", Value: model.Int(7)},
			{Name: "metric_status_code", Value: model.Int(8)},
			{Name: "time", Value: model.Float(0.003)},
			{Name: "_measurement", Value: model.Int(1)},
			{Name: "metric_x", Value: model.Int(2)},
		}
	})}
	// What line protocol cannot carry as it is gets the smallest change
	// that makes it valid.
	sanitized := with(func(r *model.Result) {
		r.Check = "#not a comment"
		r.Target = "tab\there"
		r.Tags = map[string]string{"ctl\x01key": "bad\xffutf8", "empty": "", "drive": `C:\`}
		r.Metrics = []model.Metric{{Name: `C:\`, Value: model.Int(1)}, {Name: "", Value: model.Int(2)}, {Name: "new\nline", Value: model.Int(3)},
			{Name: "bin", Value: model.String("a\xffb")}}
	})
	back := with(func(r *model.Result) {
		r.Check = "_#not a comment"
		r.Target = "tab_here"
		r.Tags = map[string]string{"ctl_key": "bad\uFFFDutf8", "drive": "C:_"}
		r.Metrics = []model.Metric{{Name: "C:_", Value: model.Int(1)}, {Name: "metric", Value: model.Int(2)}, {Name: "new_line", Value: model.Int(3)},
			{Name: "bin", Value: model.String("a\uFFFDb")}}
	})
	cases["sanitized"] = golden{r: sanitized, back: &back}
	// Left out and counted: NaN, ±Inf, a second metric under one key.
	skipping := with(func(r *model.Result) {
		r.Tags = nil
		r.Metrics = []model.Metric{{Name: "nan", Value: model.Float(math.NaN())}, {Name: "inf", Value: model.Float(math.Inf(1))},
			{Name: "ninf", Value: model.Float(math.Inf(-1))}, {Name: "ok", Value: model.Int(1)}, {Name: "ok", Value: model.Int(2)},
			{Name: "a\x00", Value: model.Int(3)}, {Name: "a_", Value: model.Int(4)}}
	})
	skippedBack := with(func(r *model.Result) {
		r.Tags = nil
		r.Metrics = []model.Metric{{Name: "ok", Value: model.Int(1)}, {Name: "a_", Value: model.Int(3)}}
	})
	cases["skipped"] = golden{r: skipping, skipped: 5, back: &skippedBack}
	return cases
}

func TestGoldenEncoding(t *testing.T) {
	for name, c := range goldenCases() {
		t.Run(name, func(t *testing.T) {
			b, skipped, err := AppendResult(nil, &c.r)
			if err != nil {
				t.Fatal(err)
			}
			if skipped != c.skipped {
				t.Errorf("skipped %d, want %d", skipped, c.skipped)
			}
			path := filepath.Join("..", "..", "testdata", "lineproto", name+".lp")
			if *update {
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(b, want) {
				t.Errorf("encoding changed:\n got %q\nwant %q", b, want)
			}
			if bytes.Count(b, []byte("\n")) != 1 || b[len(b)-1] != '\n' {
				t.Errorf("not exactly one line: %q", b)
			}
			// The reference decoder accepts it, and ours gives the result
			// back (minus what line protocol does not carry).
			assertLibraryDecodes(t, b)
			rs, err := Decode(b, lineprotocol.Nanosecond, time.Unix(1, 0), "agent1")
			if err != nil || len(rs) != 1 {
				t.Fatalf("decode %q: %v", b, err)
			}
			want2 := c.r
			if c.back != nil {
				want2 = *c.back
			}
			assertSameResult(t, rs[0], want2)
		})
	}
}

// assertLibraryDecodes decodes b with the reference decoder alone.
func assertLibraryDecodes(t *testing.T, b []byte) {
	t.Helper()
	dec := lineprotocol.NewDecoderWithBytes(b)
	for dec.Next() {
		if _, err := dec.Measurement(); err != nil {
			t.Fatalf("reference decoder: %v in %q", err, b)
		}
		for {
			k, _, err := dec.NextTag()
			if err != nil {
				t.Fatalf("reference decoder: %v in %q", err, b)
			}
			if k == nil {
				break
			}
		}
		for {
			k, _, err := dec.NextField()
			if err != nil {
				t.Fatalf("reference decoder: %v in %q", err, b)
			}
			if k == nil {
				break
			}
		}
		if _, err := dec.Time(lineprotocol.Nanosecond, time.Time{}); err != nil {
			t.Fatalf("reference decoder: %v in %q", err, b)
		}
	}
}

// assertSameResult compares what line protocol carries.
func assertSameResult(t *testing.T, got, want model.Result) {
	t.Helper()
	if msg := diffResult(got, want); msg != "" {
		t.Errorf("%s\n got %+v\nwant %+v", msg, got, want)
	}
}

func diffResult(got, want model.Result) string {
	switch {
	case got.Check != want.Check:
		return fmt.Sprintf("check %q, want %q", got.Check, want.Check)
	case got.CheckID != want.CheckID:
		return fmt.Sprintf("check id %s, want %s", got.CheckID, want.CheckID)
	case got.Target != want.Target:
		return fmt.Sprintf("target %q, want %q", got.Target, want.Target)
	case !got.Time.Equal(want.Time):
		return fmt.Sprintf("time %v, want %v", got.Time, want.Time)
	case got.Status != want.Status:
		return fmt.Sprintf("status %v, want %v", got.Status, want.Status)
	case len(got.Tags) != len(want.Tags) || (len(got.Tags) > 0 && !maps.Equal(got.Tags, want.Tags)):
		return fmt.Sprintf("tags %q, want %q", got.Tags, want.Tags)
	case len(got.Metrics) != len(want.Metrics):
		return fmt.Sprintf("%d metrics, want %d", len(got.Metrics), len(want.Metrics))
	}
	for i := range got.Metrics {
		g, w := got.Metrics[i], want.Metrics[i]
		if g.Name != w.Name || !g.Value.Equal(w.Value) {
			return fmt.Sprintf("metric %d: %q=%v (%v), want %q=%v (%v)", i, g.Name, g.Value, g.Value.Kind(), w.Name, w.Value, w.Value.Kind())
		}
	}
	return ""
}

func TestNameMappingIsReversible(t *testing.T) {
	for _, name := range []string{"status_code", "metric_status_code", "metric_metric_status_code", "time", "metric_time",
		"_field", "_measurement", "metric_", "metric_x", "x", "statuscode", "status_code_x", "metric_metric_"} {
		key := FieldKey(name)
		if reservedField(key) {
			t.Errorf("metric %q written as reserved key %q", name, key)
		}
		if back := MetricName(key); back != name {
			t.Errorf("metric %q -> %q -> %q", name, key, back)
		}
	}
	for _, name := range []string{"check_id", "target", "tag_target", "tag_tag_check_id", "time", "_measurement", "tag_", "tag_x", "role"} {
		key := tagKey(name)
		if reservedTag(key) {
			t.Errorf("tag %q written as reserved key %q", name, key)
		}
		if back := tagName(key); back != name {
			t.Errorf("tag %q -> %q -> %q", name, key, back)
		}
	}
	if FieldKey("status_code") != "metric_status_code" || FieldKey("time") != "metric_time" || tagKey("target") != "tag_target" {
		t.Error("documented renames changed")
	}
}

func TestEncoderErrors(t *testing.T) {
	r := goldenCases()["full"].r
	for name, mutate := range map[string]func(*model.Result){
		"status out of range": func(r *model.Result) { r.Status = 4 },
		"time before 1677":    func(r *model.Result) { r.Time = time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC) },
		"time after 2262":     func(r *model.Result) { r.Time = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) },
	} {
		bad := r
		mutate(&bad)
		prefix := []byte("previous line\n")
		b, _, err := AppendResult(prefix, &bad)
		if err == nil {
			t.Errorf("%s: no error", name)
		}
		if !bytes.Equal(b, prefix) {
			t.Errorf("%s: buffer changed on error: %q", name, b)
		}
	}
	e := Encoder{Precision: 9}
	if _, _, err := e.Append(nil, &r); err == nil {
		t.Error("invalid precision accepted")
	}
}

func TestEncoderTimeAndPrecision(t *testing.T) {
	r := model.Result{CheckID: testID, Check: "c", Time: testTime}
	for prec, want := range map[lineprotocol.Precision]string{
		lineprotocol.Nanosecond:  " 1700000000123456789\n",
		lineprotocol.Microsecond: " 1700000000123456\n",
		lineprotocol.Millisecond: " 1700000000123\n",
		lineprotocol.Second:      " 1700000000\n",
	} {
		e := Encoder{Precision: prec}
		b, _, err := e.Append(nil, &r)
		if err != nil || !strings.HasSuffix(string(b), "status_code=0i"+want) {
			t.Errorf("%v: %q %v", prec, b, err)
		}
		rs, err := Decode(b, prec, time.Time{}, "")
		if err != nil || !rs[0].Time.Equal(testTime.Truncate(prec.Duration())) {
			t.Errorf("%v: decoded %v %v", prec, rs, err)
		}
	}
	// A result without a time is written without a timestamp: the
	// receiver's clock applies, as InfluxDB documents.
	r.Time = time.Time{}
	b, _, err := AppendResult(nil, &r)
	if err != nil || !strings.HasSuffix(string(b), " status_code=0i\n") {
		t.Errorf("zero time: %q %v", b, err)
	}
}

func TestEncoderReusesBufferAndAppends(t *testing.T) {
	var e Encoder
	var b []byte
	cases := goldenCases()
	names := []string{"full", "escapes", "no_metrics"}
	for _, n := range names {
		r := cases[n].r
		var err error
		if b, _, err = e.Append(b, &r); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := Decode(b, lineprotocol.Nanosecond, time.Time{}, "agent1")
	if err != nil || len(rs) != len(names) {
		t.Fatalf("%d results, %v", len(rs), err)
	}
	for i, n := range names {
		assertSameResult(t, rs[i], cases[n].r)
	}
}

func TestManyMetricsDuplicateDetection(t *testing.T) {
	r := model.Result{CheckID: uuid.New(), Check: "walk", Time: testTime}
	for i := range 100 {
		r.Metrics = append(r.Metrics, model.Metric{Name: fmt.Sprintf("if%d", i%60), Value: model.Int(int64(i))})
	}
	b, skipped, err := AppendResult(nil, &r)
	if err != nil || skipped != 40 {
		t.Fatalf("skipped %d, %v", skipped, err)
	}
	rs, err := Decode(b, lineprotocol.Nanosecond, time.Time{}, "")
	if err != nil || len(rs[0].Metrics) != 60 || rs[0].Metrics[59].Value.Int() != 59 {
		t.Fatalf("%v %+v", err, rs)
	}
}

// FuzzAppendResult: any result (any names, any values) encodes to a line
// both decoders accept, with every metric present except the ones counted
// as skipped.
func FuzzAppendResult(f *testing.F) {
	f.Add("load", "db1", "role", "db", "load1", 0.5, int64(-1), "s", int64(1700000000123456789), uint8(1))
	f.Add("#x", "", "check_id", "", "status_code", math.NaN(), int64(0), "a\xff", int64(0), uint8(3))
	f.Add("a\\", "t\\", "k\\", "v\\", "m\\", math.Inf(1), int64(5), "\"\\\n", int64(-1), uint8(0))
	f.Fuzz(func(t *testing.T, check, target, tk, tv, metric string, fv float64, iv int64, sv string, ns int64, st uint8) {
		r := model.Result{CheckID: model.CheckID("", check), Check: check, Target: target, Time: time.Unix(0, ns),
			Status: model.Status(st % 4), Tags: map[string]string{tk: tv},
			Metrics: []model.Metric{{Name: metric, Value: model.Float(fv)}, {Name: metric + "i", Value: model.Int(iv)},
				{Name: metric + "s", Value: model.String(sv)}}}
		b, skipped, err := AppendResult(nil, &r)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		assertLibraryDecodes(t, b)
		rs, err := Decode(b, lineprotocol.Nanosecond, time.Time{}, "")
		if err != nil || len(rs) != 1 {
			t.Fatalf("decode %q: %v", b, err)
		}
		if got := len(rs[0].Metrics) + skipped; got != len(r.Metrics) {
			t.Fatalf("%d metrics back + %d skipped, want %d: %q", len(rs[0].Metrics), skipped, len(r.Metrics), b)
		}
		if rs[0].Status != r.Status || rs[0].CheckID != r.CheckID || !rs[0].Time.Equal(r.Time) {
			t.Fatalf("identity lost: %q -> %+v", b, rs[0])
		}
		if validToken(check) && check[0] != '#' && rs[0].Check != check {
			t.Fatalf("valid check name %q came back as %q", check, rs[0].Check)
		}
	})
}

func TestUintAsInt(t *testing.T) {
	r := model.Result{CheckID: testID, Check: "snmp", Time: testTime, Metrics: []model.Metric{
		{Name: "small", Value: model.Uint(5)}, {Name: "max", Value: model.Uint(math.MaxInt64)}, {Name: "huge", Value: model.Uint(math.MaxInt64 + 1)}}}
	e := Encoder{UintAsInt: true}
	b, skipped, err := e.Append(nil, &r)
	if err != nil || skipped != 1 || !strings.Contains(string(b), " small=5i,max=9223372036854775807i,status_code=0i ") {
		t.Errorf("%q skipped %d %v", b, skipped, err)
	}
	e.UintAsInt = false
	if b, skipped, _ = e.Append(nil, &r); skipped != 0 || !strings.Contains(string(b), "huge=9223372036854775808u") {
		t.Errorf("%q skipped %d", b, skipped)
	}
}
