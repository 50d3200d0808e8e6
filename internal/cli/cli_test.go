package cli

import (
	"strings"
	"testing"
)

func TestParseResponseKeepsOrder(t *testing.T) {
	body := `[["doveadmResponse",[{"z":"1","a":"x","n":2.50,"b":null}],"t1"]]`
	res, err := ParseResponse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := []Field{{"z", "1", false}, {"a", "x", false}, {"n", "2.50", true}, {"b", "", false}}
	got := res[0].Rows[0]
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("field %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if res[0].Tag != "t1" {
		t.Errorf("tag %q", res[0].Tag)
	}
}

func TestParseResponseError(t *testing.T) {
	res, err := ParseResponse([]byte(`[["error",{"type":"exitCode", "exitCode":68},"t"]]`))
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Error != "exitCode" || res[0].ExitCode != 68 {
		t.Errorf("got %+v", res[0])
	}
	for _, bad := range []string{``, `[`, `[["x",[],"t"]]`, `[["doveadmResponse",[1],"t"]]`, `[] []`,
		`[["doveadmResponse",[{"a":[]}],"t"]]`} {
		if _, err := ParseResponse([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestRequestBody(t *testing.T) {
	b, err := RequestBody("directorFlush", []Param{{"host", "a\"b"}, {"forceFlush", true},
		{"maxParallel", int64(3)}, {"mask", []string{"u*", "10.0.0.0/8"}}}, "t")
	if err != nil {
		t.Fatal(err)
	}
	want := `[["directorFlush",{"host":"a\"b","forceFlush":true,"maxParallel":3,"mask":["u*","10.0.0.0/8"]},"t"]]`
	if string(b) != want {
		t.Errorf("got %s", b)
	}
	if _, err := RequestBody("x", []Param{{"p", 1.5}}, "t"); err == nil {
		t.Error("float accepted")
	}
}

func TestBuildAddsUnknownKeys(t *testing.T) {
	out := Build(hdrs("a"), [][]Field{{{"b", "2", true}, {"a", "1", false}}})
	var b strings.Builder
	Write(&b, out, JSON, 0, "")
	if got := b.String(); got != `[{"a":"1","b":2}]` {
		t.Errorf("got %s", got)
	}
}

// A narrow terminal shrinks columns towards their shortest value; values overflow, never cut.
func TestTableNarrow(t *testing.T) {
	out := &Output{Headers: hdrs("username", "service", "address"),
		Rows: rows("|", "alice@example.com|imap|192.0.2.1", "b|pop3|192.0.2.200")}
	var b strings.Builder
	Write(&b, out, Table, 30, "")
	// widths 10, 6, 9: the last two columns are halved towards their minimum, then the
	// first absorbs the rest of the excess.
	want := "username   service address  \n" +
		"alice@example.com imap   192.0.2.1\n" +
		"b          pop3   192.0.2.200\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestFlowAndHidden(t *testing.T) {
	out := &Output{Headers: hdrs("hash!h", "user"), Rows: rows("|", "1|a b")}
	var b strings.Builder
	Write(&b, out, Flow, 0, "")
	if b.String() != "1 user=a b\n" {
		t.Errorf("got %q", b.String())
	}
}

func FuzzParseResponse(f *testing.F) {
	f.Add([]byte(`[["doveadmResponse",[{"a":"1","n":2}],"t"]]`))
	f.Add([]byte(`[["error",{"type":"exitCode", "exitCode":75},"t"]]`))
	f.Add([]byte(`[["doveadmResponse",[],"t"],["error",{},"u"]]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := ParseResponse(body)
		if err != nil {
			return
		}
		for _, r := range res {
			out := Build(nil, r.Rows)
			for _, f := range []Format{Table, Tab, Flow, JSON} {
				var b strings.Builder
				if err := Write(&b, out, f, 40, ""); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}
