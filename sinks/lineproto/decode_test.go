package lineproto

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/reconmon/recon/agent/model"
)

var now = time.Unix(1700000500, 987654321)

func TestDecodeGood(t *testing.T) {
	id := uuid.MustParse("0b6e4b1c-3c1f-4f5e-9d7a-1f2e3d4c5b6a")
	cases := []struct {
		name string
		in   string
		prec lineprotocol.Precision
		want []model.Result
	}{
		{"minimal, defaults", "load x=1", lineprotocol.Nanosecond, []model.Result{
			{CheckID: model.CheckID("a1", "load"), Check: "load", Time: now, Status: model.OK,
				Metrics: []model.Metric{{Name: "x", Value: model.Float(1)}}}}},
		{"every kind, identity tags", "load,check_id=" + id.String() + ",target=db1,role=db load1=0.5,procs=-3i,bytes=18446744073709551615u,state=\"up\",ok=true,bad=F,status_code=2i 1700000000123456789",
			lineprotocol.Nanosecond, []model.Result{{CheckID: id, Check: "load", Target: "db1", Tags: map[string]string{"role": "db"},
				Time: time.Unix(1700000000, 123456789), Status: model.Critical, Metrics: []model.Metric{
					{Name: "load1", Value: model.Float(0.5)}, {Name: "procs", Value: model.Int(-3)}, {Name: "bytes", Value: model.Uint(math.MaxUint64)},
					{Name: "state", Value: model.String("up")}, {Name: "ok", Value: model.Int(1)}, {Name: "bad", Value: model.Int(0)}}}}},
		{"status as float, uint", "a status_code=3.0 1\nb status_code=1u 2", lineprotocol.Second, []model.Result{
			{CheckID: model.CheckID("a1", "a"), Check: "a", Time: time.Unix(1, 0), Status: model.Unknown},
			{CheckID: model.CheckID("a1", "b"), Check: "b", Time: time.Unix(2, 0), Status: model.Warning}}},
		{"status only, no metrics", "c status_code=0i", lineprotocol.Millisecond, []model.Result{
			{CheckID: model.CheckID("a1", "c"), Check: "c", Time: now.Truncate(time.Millisecond), Status: model.OK}}},
		{"comments, blank lines, CRLF, unsorted tags", "# hello\n\n  \r\nm,z=1,a=2 v=1i 5\r\n# bye\n", lineprotocol.Microsecond, []model.Result{
			{CheckID: model.CheckID("a1", "m"), Check: "m", Tags: map[string]string{"z": "1", "a": "2"}, Time: time.Unix(0, 5000),
				Metrics: []model.Metric{{Name: "v", Value: model.Int(1)}}}}},
		{"escapes", `disk\,\ usage,mount\ point=/var\,log,zone\=x=eu\=west a\ b\,c\=d="say \"hi\"\\ and\nmore" -1`, lineprotocol.Nanosecond, []model.Result{
			{CheckID: model.CheckID("a1", "disk, usage"), Check: "disk, usage", Tags: map[string]string{"mount point": "/var,log", "zone=x": "eu=west"},
				Time: time.Unix(0, -1), Metrics: []model.Metric{{Name: "a b,c=d", Value: model.String("say \"hi\"\\ and\nmore")}}}}},
		{"renamed keys named back", "m,tag_target=t,tag_tag_check_id=c,time=x metric_status_code=7i,metric_time=0.5,_field=1i,status_code=1i 0", lineprotocol.Nanosecond, []model.Result{
			{CheckID: model.CheckID("a1", "m"), Check: "m", Tags: map[string]string{"target": "t", "tag_check_id": "c", "time": "x"},
				Time: time.Unix(0, 0), Status: model.Warning, Metrics: []model.Metric{{Name: "status_code", Value: model.Int(7)},
					{Name: "time", Value: model.Float(0.5)}, {Name: "_field", Value: model.Int(1)}}}}},
		{"nil check_id derives", "m,check_id=00000000-0000-0000-0000-000000000000 v=1", lineprotocol.Nanosecond, []model.Result{
			{CheckID: model.CheckID("a1", "m"), Check: "m", Time: now, Metrics: []model.Metric{{Name: "v", Value: model.Float(1)}}}}},
		{"check_id in other UUID forms", "m,check_id=urn:uuid:" + id.String() + " v=1", lineprotocol.Nanosecond, []model.Result{
			{CheckID: id, Check: "m", Time: now, Metrics: []model.Metric{{Name: "v", Value: model.Float(1)}}}}},
		{"raw newline inside a string", "m s=\"a\nb\" 7\nn v=1i 8", lineprotocol.Nanosecond, []model.Result{
			{CheckID: model.CheckID("a1", "m"), Check: "m", Time: time.Unix(0, 7), Metrics: []model.Metric{{Name: "s", Value: model.String("a\nb")}}},
			{CheckID: model.CheckID("a1", "n"), Check: "n", Time: time.Unix(0, 8), Metrics: []model.Metric{{Name: "v", Value: model.Int(1)}}}}},
		{"empty input", "", lineprotocol.Nanosecond, nil},
		{"only comments", "# a\n# b\n", lineprotocol.Nanosecond, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rs, err := Decode([]byte(c.in), c.prec, now, "a1")
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) != len(c.want) {
				t.Fatalf("%d results, want %d: %+v", len(rs), len(c.want), rs)
			}
			for i := range rs {
				assertSameResult(t, rs[i], c.want[i])
			}
		})
	}
}

// TestDecodeBad: every bad input is rejected whole with an error that
// names the line and, where it can, the column.
func TestDecodeBad(t *testing.T) {
	uuidStr := uuid.NewString()
	cases := []struct{ in, want string }{
		{"m", "line 1:2: "},
		{"m ", "line 1:"},
		{"m x=", "line 1:5: expected field value"},
		{"m x=1 notatime", "line 1:7: invalid timestamp"},
		{"m x=1 1 extra", "line 1:9: unexpected text after timestamp"},
		{",t=1 x=1", "line 1:1:"},
		{"m,t x=1", "line 1:3: expected '=' after tag key"},
		{"m,t= x=1", "line 1:5: expected tag value"},
		{"m x=1i2", "line 1:5: cannot parse value"},
		{"m x=99999999999999999999i", "line 1:5: cannot parse value for field key \"x\": line-protocol value out of range"},
		{"m x=1e999", "line 1:5: cannot parse value"},
		{"m x=\"unterminated", "line 1:5: expected closing quote"},
		{"m x=yes", "line 1:5: field value has unrecognized type"},
		{"m\xff x=1", "line 1:1: invalid utf-8"},
		{"m s=\"\xff\"", "line 1:6: invalid utf-8"},
		{"m x=1 99999999999999999999", "line 1:7: timestamp \"99999999999999999999\" out of range"},
		{"m x=1 -", "line 1:7: invalid timestamp \"-\""},
		{"m,check_id=nope x=1", `line 1:12: tag check_id "nope" is not a UUID`},
		{"m,check_id=" + uuidStr + ",check_id=" + uuidStr + " x=1", "line 1:49: tag check_id given twice"},
		{"m,target=a,target=b x=1", "line 1:12: tag target given twice"},
		{"m,a=1,a=2 x=1", `line 1:7: tag "a" given twice`},
		{"m,time=1,tag_time=2 x=1", `line 1:10: tag "time" given twice`},
		{"m status_code=7i", "line 1:3: field status_code must be 0, 1, 2 or 3, got 7i"},
		{"m status_code=-1i", "line 1:3: field status_code must be 0, 1, 2 or 3"},
		{"m status_code=1.5", "line 1:3: field status_code must be 0, 1, 2 or 3, got 1.5"},
		{"m status_code=\"bad\"", `line 1:3: field status_code must be a number 0-3, got "bad"`},
		{"m status_code=true", "line 1:3: field status_code must be a number 0-3, got true"},
		{"m status_code=1i,status_code=1i", "line 1:18: field status_code given twice"},
		{"m x=1,x=2", `line 1:7: field "x": metric "x" given twice`},
		{"m time=1,metric_time=2", `line 1:10: field "metric_time": metric "time" given twice`},
		{`m\ x=1`, "line 1:"},
		{`m\\ x=1`, "line 1:"},
		{`m,t=v\\ x=1`, "line 1:"},
		{`m a\\=1`, "line 1:"},
		{"# ok\n\nm x=1\nm x=", "line 4:5:"},
		{"m s=\"multi\nline\",x=1,x=2 5", `line 2:`},
		{"m x=1 \x01", "line 1:"},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%q", c.in), func(t *testing.T) {
			rs, err := Decode([]byte(c.in), lineprotocol.Nanosecond, now, "a")
			if err == nil {
				t.Fatalf("accepted: %+v", rs)
			}
			if rs != nil {
				t.Errorf("results returned with the error: %+v", rs)
			}
			var de *Error
			if !errors.As(err, &de) || de.Bad != 1 || len(de.Lines) != 1 {
				t.Fatalf("want one bad line in an *Error, got %#v", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
			if de.Lines[0].Line == 0 {
				t.Errorf("line not located: %v", err)
			}
		})
	}
}

func TestDecodeListsEveryBadLine(t *testing.T) {
	var in strings.Builder
	for i := range 30 {
		if i%2 == 0 {
			fmt.Fprintf(&in, "good v=%di %d\n", i, i)
		} else {
			fmt.Fprintf(&in, "bad status_code=%di\n", 10+i)
		}
	}
	rs, err := Decode([]byte(in.String()), lineprotocol.Nanosecond, now, "")
	var de *Error
	if rs != nil || !errors.As(err, &de) {
		t.Fatalf("%v %v", rs, err)
	}
	if de.Bad != 15 || de.Points != 30 || len(de.Lines) != maxListed {
		t.Errorf("bad %d points %d listed %d", de.Bad, de.Points, len(de.Lines))
	}
	for i, l := range de.Lines {
		if l.Line != 2*i+2 || l.Column != 5 || l.Point != 2*i+2 {
			t.Errorf("listed %d: %+v", i, l)
		}
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "line protocol: 15 of 30 points invalid, none accepted: line 2:5: ") || !strings.HasSuffix(msg, "; and 5 more") {
		t.Errorf("message: %s", msg)
	}
}

func TestDecodeErrorsAreShort(t *testing.T) {
	long := strings.Repeat("x", 100000)
	_, err := Decode([]byte("m,check_id="+long+" v=1"), lineprotocol.Nanosecond, now, "")
	if err == nil || len(err.Error()) > 300 {
		t.Errorf("error of %d bytes", len(err.Error()))
	}
}

func TestDecodeInvalidPrecision(t *testing.T) {
	if _, err := Decode([]byte("m v=1"), lineprotocol.Precision(9), now, ""); err == nil {
		t.Error("accepted")
	}
	for _, p := range []string{"h", "m", "sec", "NS"} {
		if _, err := ParsePrecision(p); err == nil {
			t.Errorf("precision %q accepted", p)
		}
	}
	for p, want := range map[string]lineprotocol.Precision{"": lineprotocol.Nanosecond, "n": lineprotocol.Nanosecond,
		"u": lineprotocol.Microsecond, "us": lineprotocol.Microsecond, "ms": lineprotocol.Millisecond, "s": lineprotocol.Second} {
		if got, err := ParsePrecision(p); err != nil || got != want {
			t.Errorf("%q: %v %v", p, got, err)
		}
	}
}

// TestRoundTrip: encoder output decodes to the same results, batch-wise.
func TestRoundTrip(t *testing.T) {
	var all []model.Result
	var b []byte
	var e Encoder
	for _, c := range goldenCases() {
		if c.back != nil {
			continue // lossy on purpose; covered by the golden test
		}
		var err error
		if b, _, err = e.Append(b, &c.r); err != nil {
			t.Fatal(err)
		}
		all = append(all, c.r)
	}
	rs, err := Decode(b, lineprotocol.Nanosecond, now, "agent1")
	if err != nil || len(rs) != len(all) {
		t.Fatalf("%d results, %v", len(rs), err)
	}
	for i := range rs {
		assertSameResult(t, rs[i], all[i])
	}
}

// FuzzDecode: no panic on any input; whatever decodes re-encodes to line
// protocol that decodes to the same results.
func FuzzDecode(f *testing.F) {
	for _, c := range goldenCases() {
		b, _, _ := AppendResult(nil, &c.r)
		f.Add(b)
	}
	for _, s := range []string{
		"m,a=b x=1i,y=\"s\",z=t 1",
		"m status_code=3.0,metric_status_code=1u",
		"# c\n\nm\\ x,t\\=1=v\\,w f\\ k=\"a\\\"b\\\\c\nd\" -9223372036854775808",
		"m,check_id=urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8 v=1",
		"m,tag_target=x,time=y metric_time=1,time=2",
		"m v=1\r\nn v=2\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		rs, err := Decode(in, lineprotocol.Nanosecond, time.Unix(0, 42), "a")
		if err != nil {
			var de *Error
			if !errors.As(err, &de) || de.Bad == 0 || len(de.Lines) == 0 {
				t.Fatalf("error is not a located *Error: %v", err)
			}
			return
		}
		var out []byte
		var e Encoder
		for i := range rs {
			var skipped int
			out, skipped, err = e.Append(out, &rs[i])
			if err != nil || skipped != 0 {
				t.Fatalf("decoded result does not re-encode: %v, skipped %d: %+v", err, skipped, rs[i])
			}
		}
		again, err := Decode(out, lineprotocol.Nanosecond, time.Unix(0, 99), "other")
		if err != nil || len(again) != len(rs) {
			t.Fatalf("re-encoded input does not decode: %v\n%q", err, out)
		}
		for i := range rs {
			if msg := diffResult(again[i], rs[i]); msg != "" {
				t.Fatalf("round trip changed point %d: %s\nin  %q\nout %q", i, msg, in, out)
			}
		}
	})
}

// A large write with a bad line on every line is rejected in linear time:
// only the listed errors are located (a scan each), not every one.
func TestDecodeManyBadLines(t *testing.T) {
	const n = 200000
	in := []byte(strings.Repeat("m status_code=9i 1\n", n))
	_, err := Decode(in, lineprotocol.Nanosecond, now, "")
	var de *Error
	if !errors.As(err, &de) || de.Bad != n || len(de.Lines) != maxListed || de.Lines[9].Line != 10 {
		t.Fatalf("%v", err)
	}
}
