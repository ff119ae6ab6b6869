package model

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func ptr(f float64) *float64 { return &f }

func sample() Result {
	return Result{
		CheckID: CheckID("agent1", "load"), Check: "load", Type: "nagios", Agent: "agent1", Target: "db1",
		Time: time.Unix(1700000000, 123456789), Duration: 12300 * time.Microsecond,
		Status: Warning, StateType: Soft, Attempt: 2,
		Output: "LOAD WARNING - \"quoted\" \u00e9", LongOutput: "line2\nline3",
		Tags: map[string]string{"dc": "ams", "role": "db"},
		Metrics: []Metric{
			{Name: "load1", Value: Float(0.12), Warn: "5", Crit: "10", Min: ptr(0)},
			{Name: "procs", Value: Int(-3)},
			{Name: "bytes", Value: Uint(math.MaxUint64), Unit: "B", Max: ptr(1e20)},
			{Name: "state", Value: String("up")},
			{Name: "nan", Value: Float(math.NaN())},
		},
	}
}

func TestStatus(t *testing.T) {
	for in, want := range map[string]Status{"ok": OK, "WARN": Warning, "2": Critical, "unknown": Unknown, "DOWN": Critical} {
		if got, err := ParseStatus(in); err != nil || got != want {
			t.Errorf("ParseStatus(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseStatus("5"); err == nil {
		t.Error("ParseStatus(5) accepted")
	}
	if Worst(Critical, Unknown) != Critical || Worst(Warning, Unknown) != Unknown || Worst(OK, Warning) != Warning {
		t.Error("Worst ordering")
	}
}

func TestCheckID(t *testing.T) {
	if CheckID("a", "x") != CheckID("a", "x") {
		t.Error("not stable")
	}
	if CheckID("a", "x") == CheckID("b", "x") || CheckID("a", "x") == CheckID("a", "y") {
		t.Error("collision across agents or names")
	}
	if v := CheckID("a", "x").Version(); v != 5 {
		t.Errorf("version %d", v)
	}
}

func TestBinaryRoundTrip(t *testing.T) {
	r := sample()
	b := r.AppendBinary(nil)
	got, err := DecodeBinary(b)
	if err != nil {
		t.Fatal(err)
	}
	if !equalResults(r, got) {
		t.Errorf("round trip:\n%+v\n%+v", r, got)
	}
	// Every truncation is an error, never a panic or a partial result.
	for i := 0; i < len(b); i++ {
		if _, err := DecodeBinary(b[:i]); err == nil {
			t.Fatalf("truncated at %d decoded without error", i)
		}
	}
	if _, err := DecodeBinary(append(b, 0)); err == nil {
		t.Error("trailing byte accepted")
	}
}

func equalResults(a, b Result) bool {
	// NaN != NaN, so compare the encodings.
	return string(a.AppendBinary(nil)) == string(b.AppendBinary(nil)) && a.Time.Equal(b.Time)
}

func TestJSONFormat(t *testing.T) {
	r := sample()
	r.Metrics = r.Metrics[:1]
	got := string(r.AppendJSON(nil))
	want := `{"check":"load","id":"` + r.CheckID.String() + `","target":"db1","time":"2023-11-14T22:13:20.123456789Z","duration_ms":12.3,"status":"WARNING","state_type":"SOFT","output":"LOAD WARNING - \"quoted\" é","long_output":"line2\nline3","metrics":[{"name":"load1","value":0.12,"type":"float","unit":"","warn":"5","crit":"10","min":0,"max":null}],"check_type":"nagios","agent":"agent1","attempt":2,"tags":{"dc":"ams","role":"db"}}`
	if got != want {
		t.Errorf("JSON:\n got %s\nwant %s", got, want)
	}
	if !json.Valid([]byte(got)) {
		t.Error("invalid JSON")
	}
}

func TestJSONRoundTrip(t *testing.T) {
	r := sample()
	b := r.AppendJSON(nil)
	if !json.Valid(b) {
		t.Fatalf("invalid JSON: %s", b)
	}
	got, err := DecodeJSON(b, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got.Duration = r.Duration // JSON keeps microseconds
	if !equalResults(r, got) {
		t.Errorf("round trip:\n%+v\n%+v", r, got)
	}
}

func TestDecodeJSONErrors(t *testing.T) {
	cases := map[string]string{
		`{}`:                           `"check" is required`,
		`{"check":"x"}`:                `"status" is required`,
		`{"check":"x","status":"BAD"}`: "invalid status",
		`{"check":"x","status":7}`:     "want a state name or 0-3",
		`{"check":"x","status":"OK","time":"yesterday"}`:                                "time",
		`{"check":"x","status":"OK","id":"nope"}`:                                       "id",
		`{"check":"x","status":"OK","bogus":1}`:                                         "unknown field",
		`{"check":"x","status":"OK","metrics":[{"name":"m"}]}`:                          `"value" is required`,
		`{"check":"x","status":"OK","metrics":[{"value":1}]}`:                           `"name" is required`,
		`{"check":"x","status":"OK","metrics":[{"name":"m","value":1.5,"type":"int"}]}`: "invalid int value",
		`{"check":"x","status":"OK","metrics":[{"name":"m","value":1,"type":"bool"}]}`:  "invalid metric type",
		`{"check":"x","status":"OK","duration_ms":-1}`:                                  "duration_ms",
		`{"check":"x","status":"OK"} {}`:                                                "trailing data",
		`[1,2]`:                                                                         "decode result",
	}
	for in, want := range cases {
		_, err := DecodeJSON([]byte(in), time.Now())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("DecodeJSON(%s) = %v, want error containing %q", in, err, want)
		}
	}
}

func TestDecodeJSONInference(t *testing.T) {
	r, err := DecodeJSON([]byte(`{"check":"x","status":1,"metrics":[{"name":"a","value":3},{"name":"b","value":-3},{"name":"c","value":18446744073709551615},{"name":"d","value":1.5},{"name":"e","value":"s"}]}`), time.Unix(5, 0))
	if err != nil {
		t.Fatal(err)
	}
	kinds := []Kind{KindInt, KindInt, KindUint, KindFloat, KindString}
	for i, k := range kinds {
		if r.Metrics[i].Value.Kind() != k {
			t.Errorf("metric %s kind %v, want %v", r.Metrics[i].Name, r.Metrics[i].Value.Kind(), k)
		}
	}
	if r.Status != Warning || !r.Time.Equal(time.Unix(5, 0)) || r.CheckID != CheckID("", "x") {
		t.Errorf("defaults: %+v", r)
	}
}

func FuzzDecodeBinary(f *testing.F) {
	r := sample()
	f.Add(r.AppendBinary(nil))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := DecodeBinary(b)
		if err != nil {
			return
		}
		// Anything accepted re-encodes to the same bytes.
		if again := res.AppendBinary(nil); string(again) != string(b) {
			// Tag order may differ only if the input had unsorted or duplicate tags.
			res2, err := DecodeBinary(again)
			if err != nil || !reflect.DeepEqual(res2.Tags, res.Tags) || res2.Check != res.Check {
				t.Fatalf("re-encode mismatch: %v", err)
			}
		}
	})
}

func FuzzDecodeJSON(f *testing.F) {
	r := sample()
	f.Add(r.AppendJSON(nil))
	f.Add([]byte(`{"check":"x","status":"OK","metrics":[{"name":"m","value":"1","type":"uint"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := DecodeJSON(b, time.Unix(0, 0))
		if err != nil {
			return
		}
		if !res.Status.Valid() || res.Check == "" {
			t.Fatalf("invalid result accepted: %+v", res)
		}
		if !json.Valid(res.AppendJSON(nil)) {
			t.Fatalf("re-encoded JSON invalid")
		}
	})
}
