package main

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/reconmon/recon/plugins/sdk"
)

func TestParseThreshold(t *testing.T) {
	inf := math.Inf(1)
	good := []struct {
		in     string
		lo, hi float64
		inside bool
	}{
		{"10", 0, 10, false}, {"10:", 10, inf, false}, {"~:10", math.Inf(-1), 10, false},
		{"10:20", 10, 20, false}, {"@10:20", 10, 20, true}, {" 5 ", 0, 5, false}, {"-5:-1", -5, -1, false},
	}
	for _, g := range good {
		th, err := parseThreshold(g.in)
		if err != nil || th.lo != g.lo || th.hi != g.hi || th.inside != g.inside {
			t.Errorf("%q: %+v %v", g.in, th, err)
		}
	}
	for _, bad := range []string{"abc", "10:5", "1:x", "@", "x:1", "::"} {
		if _, err := parseThreshold(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if th, err := parseThreshold(""); th != nil || err != nil || th.alert(1e9) {
		t.Errorf("empty threshold")
	}
	th, _ := parseThreshold("10:20")
	if th.alert(15) || !th.alert(9) || !th.alert(21) {
		t.Errorf("10:20 alerting wrong")
	}
	th, _ = parseThreshold("@10:20")
	if !th.alert(15) || th.alert(9) {
		t.Errorf("@10:20 alerting wrong")
	}
}

func FuzzParseThreshold(f *testing.F) {
	for _, s := range []string{"10", "@~:5", "1:2", "", "@", "1e309:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		th, err := parseThreshold(s)
		if err == nil && th != nil && th.lo > th.hi {
			t.Fatalf("%q: lo %v > hi %v", s, th.lo, th.hi)
		}
		th.alert(1)
	})
}

func TestLookup(t *testing.T) {
	dec := json.NewDecoder(strings.NewReader(`{"a": {"b": [10, {"c": "x"}]}, "n": null}`))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]any{"a.b.0": json.Number("10"), "a.b.1.c": "x", "n": nil} {
		if v, err := lookup(doc, strings.Split(path, ".")); err != nil || v != want {
			t.Errorf("%s: %v %v", path, v, err)
		}
	}
	for path, want := range map[string]string{
		"a.x": `no field "x"`, "a.b.2": "not an index of the 2-element array", "a.b.0.z": "is a number, cannot descend",
		"a.b.-1": "not an index",
	} {
		if _, err := lookup(doc, strings.Split(path, ".")); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", path, err, want)
		}
	}
}

func TestCheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Token") != "s3cret" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.Write([]byte(`{"load": 2.5, "big": 12345678901234, "up": true, "obj": {}}`))
	}))
	defer srv.Close()
	run := func(c config) sdk.Result {
		c.URL = srv.URL
		if c.Headers == nil {
			c.Headers = map[string]string{"X-Token": "s3cret"}
		}
		if err := (httpJSON{}).Configure(&c); err != nil {
			t.Fatal(err)
		}
		res, err := httpJSON{}.Check(context.Background(), &c, sdk.Request{})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if r := run(config{Field: "load", Warning: "2", Critical: "3"}); r.Status != sdk.StatusWarning || r.Metrics[0].Value.Kind() != sdk.KindFloat {
		t.Errorf("load: %+v", r)
	}
	if r := run(config{Field: "big"}); r.Status != sdk.StatusOK || r.Metrics[0].Value.Int() != 12345678901234 {
		t.Errorf("big: %+v", r)
	}
	if r := run(config{Field: "up"}); r.Status != sdk.StatusOK || r.Metrics[0].Value.Int() != 1 {
		t.Errorf("up: %+v", r)
	}
	if r := run(config{Field: "obj"}); r.Status != sdk.StatusUnknown || !strings.Contains(r.Output, "is a object") {
		t.Errorf("obj: %+v", r)
	}
	if r := run(config{Field: "load", Headers: map[string]string{}}); r.Status != sdk.StatusCritical || !strings.Contains(r.Output, "HTTP 403") {
		t.Errorf("no token: %+v", r)
	}
	if r := run(config{Field: "load", MaxBodyBytes: 5}); r.Status != sdk.StatusUnknown || !strings.Contains(r.Output, "larger than 5 bytes") {
		t.Errorf("body limit: %+v", r)
	}
}
