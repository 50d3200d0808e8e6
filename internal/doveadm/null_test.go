package doveadm

import (
	"fmt"
	"strings"
	"testing"
)

// TestNullIsAbsent checks, for every parameter of every command (hidden ones included, so
// every declared type), that a JSON null answers exactly what leaving the parameter out
// answers, as in Dovecot 2.3; and that a null next to a given value does not change that
// value's answer. Each request runs on fresh services so no command's effect leaks into
// the next.
func TestNullIsAbsent(t *testing.T) {
	answer := func(body string) (int, string, []string) {
		f := newFakeServices()
		s := NewServer(goldenConfig(), f)
		status, out := s.Exec(t.Context(), []byte(body))
		return status, string(out), f.dir.lines()
	}
	types := map[paramType]int{}
	n := 0
	for _, c := range NewServer(goldenConfig(), newFakeServices()).reg.cmds {
		name := camelCase(c.name)
		ps := c.allParams()
		var allNull []string
		for _, p := range ps {
			types[p.typ]++
			allNull = append(allNull, fmt.Sprintf("%q:null", camelCase(p.name)))
		}
		wantStatus, want, wantLines := answer(fmt.Sprintf(`[[%q,{},"t"]]`, name))
		if wantStatus != 200 {
			t.Fatalf("%s with no parameters: status %d %s", name, wantStatus, want)
		}
		bodies := []string{fmt.Sprintf(`[[%q,{%s},"t"]]`, name, strings.Join(allNull, ","))}
		for _, p := range ps {
			bodies = append(bodies, fmt.Sprintf(`[[%q,{%q:null},"t"]]`, name, camelCase(p.name)))
		}
		for _, body := range bodies {
			n++
			status, got, lines := answer(body)
			if status != wantStatus || got != want || strings.Join(lines, "|") != strings.Join(wantLines, "|") {
				t.Errorf("%s\n got %d %s %q\nwant %d %s %q (parameters left out)", body, status, got, lines, wantStatus, want, wantLines)
			}
		}
	}
	for _, typ := range []paramType{typeStr, typeBool, typeInt, typeArray} {
		if types[typ] == 0 {
			t.Errorf("no parameter of type %s was checked", typ)
		}
	}
	// A null beside given values: the given ones still count, the null one is absent.
	for _, c := range []struct{ withNull, without string }{
		{`[["directorStatus",{"user":null},"t"]]`, `[["directorStatus",{},"t"]]`},
		{`[["directorAdd",{"host":"127.0.0.13","vhostCount":null,"tag":null},"t"]]`, `[["directorAdd",{"host":"127.0.0.13"},"t"]]`},
		{`[["directorMap",{"host":null,"hashMap":true,"socketPath":null},"t"]]`, `[["directorMap",{"hashMap":true},"t"]]`},
		{`[["who",{"mask":null,"separateConnections":null},"t"]]`, `[["who",{},"t"]]`},
		{`[["serviceStop",{"service":null},"t"],["stop",{},"u"]]`, `[["serviceStop",{},"t"],["stop",{},"u"]]`},
	} {
		n++
		gs, got, gl := answer(c.withNull)
		ws, want, wl := answer(c.without)
		if gs != ws || got != want || strings.Join(gl, "|") != strings.Join(wl, "|") {
			t.Errorf("%s\n got %d %s %q\nwant %d %s %q (%s)", c.withNull, gs, got, gl, ws, want, wl, c.without)
		}
	}
	// A parameter given twice is still a grammar error, whether the first one was null or not.
	if status, out, _ := answer(`[["directorStatus",{"user":null,"user":"a"},"t"]]`); status != 400 || !strings.Contains(out, "duplicated") {
		t.Errorf("duplicate after null: %d %s", status, out)
	}
	t.Logf("%d requests with null compared", n)
}
